"""Replays the S3 traffic of Pulumi's DIY backend against statehouse's S3 endpoint.

The sequences are those of pulumi/pulumi's pkg/backend/diy (see shared/pulumi-s3.md §5):
login on an empty bucket, stack init, an `up` of 50 checkpoints of a growing stack (the last
over 16 MiB, so it goes as a multipart upload as gocloud's upload manager sends it), the
end-of-update history and backup writes, stack ls over 200 stacks, export/import, cancel,
stack rename, stack rm, and two concurrent updates where the second sees the first's lock.

Run by crates/statehouse/tests/s3_pulumi.rs with the endpoint, bucket and keys in the
environment; prints one JSON line of facts for the Rust test and exits non-zero on the first
failed check.
"""

import concurrent.futures
import io
import json
import os
import sys
import uuid

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3_ENDPOINT"]
BUCKET = os.environ["S3_BUCKET"]
CHECKSUMS = os.environ.get("S3_CHECKSUMS", "when_supported")
PROJECT = "web"
MIB = 1024 * 1024


def client(key_id, secret):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation=CHECKSUMS,
            response_checksum_validation=CHECKSUMS,
            retries={"max_attempts": 1},
        ),
    )


S3 = client(os.environ["S3_KEY_ID"], os.environ["S3_SECRET"])
# A second CLI process of another user, with a key of its own.
OTHER = client(os.environ["S3_OTHER_KEY_ID"], os.environ["S3_OTHER_SECRET"])
# gocloud's upload manager: one PutObject below 16 MiB, else parts of 8 MiB.
UPLOADS = TransferConfig(multipart_threshold=16 * MIB, multipart_chunksize=8 * MIB, use_threads=False)


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def code_of(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


def keys(s3, prefix, delimiter=None):
    """Every key (and common prefix) under prefix, all pages, as gocloud lists."""
    found, prefixes, token = [], [], None
    while True:
        args = {"Bucket": BUCKET, "Prefix": prefix, "MaxKeys": 1000}
        if delimiter:
            args["Delimiter"] = delimiter
        if token:
            args["ContinuationToken"] = token
        page = s3.list_objects_v2(**args)
        for entry in page.get("Contents", []):
            check("LastModified" in entry, f"every listed object has LastModified: {entry}")
            found.append(entry["Key"])
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page.get("IsTruncated"):
            return found, prefixes
        token = page["NextContinuationToken"]


def stack_key(stack):
    return f".pulumi/stacks/{PROJECT}/{stack}.json"


def lock_dir(stack):
    return f".pulumi/locks/organization/{PROJECT}/{stack}/"


def lock(s3, stack, who="alice"):
    """Pulumi's lock: refuse when a lock file exists, write ours, list again."""
    existing, _ = keys(s3, lock_dir(stack), "/")
    if existing:
        holders = [json.loads(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in existing]
        return None, holders
    lock_id = str(uuid.uuid4())
    body = json.dumps({"pid": 4242, "username": who, "hostname": "laptop", "timestamp": "2026-12-03T10:00:00Z"})
    try:
        s3.put_object(Bucket=BUCKET, Key=f"{lock_dir(stack)}{lock_id}.json", Body=body.encode())
    except ClientError as e:
        return None, [e.response["Error"]]
    after, _ = keys(s3, lock_dir(stack), "/")
    check(after == [f"{lock_dir(stack)}{lock_id}.json"], f"exactly our lock file is listed: {after}")
    return lock_id, []


def unlock(s3, stack, lock_id):
    s3.delete_object(Bucket=BUCKET, Key=f"{lock_dir(stack)}{lock_id}.json")


def resource(stack, i, size):
    return {
        "urn": f"urn:pulumi:{stack}::{PROJECT}::aws:s3/bucket:Bucket::bucket-{i}",
        "custom": True,
        "id": f"bucket-{i}-a1b2c3",
        "type": "aws:s3/bucket:Bucket",
        "inputs": {"bucket": f"bucket-{i}", "tags": {"env": stack}, "padding": "x" * size},
        "outputs": {"arn": f"arn:aws:s3:::bucket-{i}", "bucket": f"bucket-{i}", "tags": {"env": stack}},
        "parent": f"urn:pulumi:{stack}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{stack}",
        "provider": f"urn:pulumi:{stack}::{PROJECT}::pulumi:providers:aws::default_6_0_0::04da6b54-80e4-46f7-96ec-b56ff0331ba9",
    }


def checkpoint(stack, count, size=200, marker="", website="https://example.com"):
    root = {
        "urn": f"urn:pulumi:{stack}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{stack}",
        "custom": False,
        "type": "pulumi:pulumi:Stack",
        "outputs": {"website": website, "marker": marker},
    }
    doc = {
        "version": 3,
        "checkpoint": {
            "stack": f"organization/{PROJECT}/{stack}",
            "latest": {
                "manifest": {"time": "2026-12-03T10:00:00Z", "magic": "m", "version": "v3.259.0"},
                "secrets_providers": {"type": "passphrase", "state": {"salt": "v1:abc"}},
                "resources": [root] + [resource(stack, i, size) for i in range(count)],
                "metadata": {},
            },
        },
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def save(s3, stack, body):
    """One checkpoint as Pulumi saves it: LIST + HEAD, COPY to .bak, PUT (multipart when large)."""
    key = stack_key(stack)
    listed, _ = keys(s3, key, "/")
    if key in listed:
        s3.head_object(Bucket=BUCKET, Key=key)
        s3.copy_object(Bucket=BUCKET, Key=key + ".bak", CopySource={"Bucket": BUCKET, "Key": key})
    s3.upload_fileobj(io.BytesIO(body), BUCKET, key, Config=UPLOADS, ExtraArgs={"ContentType": "text/plain; charset=utf-8"})


def get(s3, key):
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def end_of_update(s3, stack, nanos):
    history = f".pulumi/history/{PROJECT}/{stack}/{stack}-{nanos}"
    s3.put_object(Bucket=BUCKET, Key=history + ".history.json", Body=json.dumps({"kind": "update", "result": "succeeded"}).encode())
    s3.copy_object(Bucket=BUCKET, Key=history + ".checkpoint.json", CopySource={"Bucket": BUCKET, "Key": stack_key(stack)})
    keys(s3, stack_key(stack), "/")
    body = get(s3, stack_key(stack))
    s3.put_object(Bucket=BUCKET, Key=f".pulumi/backups/{PROJECT}/{stack}/{stack}.{nanos}.json", Body=body)


def main():
    facts = {}
    # login on an empty bucket
    check(code_of(lambda: S3.get_object(Bucket=BUCKET, Key=".pulumi/meta.yaml")) == ("NoSuchKey", 404), "meta.yaml is absent at first")
    check(keys(S3, ".pulumi/stacks/", "/") == ([], []), "no stacks at first")
    S3.put_object(Bucket=BUCKET, Key=".pulumi/meta.yaml", Body=b"version: 1\n")
    check(get(S3, ".pulumi/meta.yaml") == b"version: 1\n", "meta.yaml reads back exactly")

    # stack init
    lock_id, held = lock(S3, "dev")
    check(lock_id and not held, f"stack init takes the lock: {held}")
    check(code_of(lambda: S3.head_object(Bucket=BUCKET, Key=stack_key("dev")))[1] == 404, "no stack file before init")
    save(S3, "dev", json.dumps({"version": 0, "checkpoint": {"stack": f"organization/{PROJECT}/dev"}}).encode())
    unlock(S3, "dev", lock_id)
    check(keys(S3, lock_dir("dev"), "/") == ([], []), "unlocked: no lock file left")

    # up: 50 checkpoints of a growing stack, the last one over 16 MiB
    lock_id, _ = lock(S3, "dev")
    sizes = []
    for step in range(1, 51):
        body = checkpoint("dev", step * 100, size=3300, marker=f"step-{step}")
        sizes.append(len(body))
        save(S3, "dev", body)
        if step == 1:
            facts["first_md5_body"] = len(body)
    save(S3, "dev", body)  # an identical checkpoint adds no version
    check(sizes[-1] > 16 * MIB and sizes[-1] < 24 * MIB, f"the last checkpoint is 16-24 MiB: {sizes[-1]}")
    check(get(S3, stack_key("dev")) == body, "the stack file reads back as the last checkpoint, byte for byte")
    bak = get(S3, stack_key("dev") + ".bak")
    check(json.loads(bak)["checkpoint"]["latest"]["resources"][0]["outputs"]["marker"] == "step-50", ".bak holds the checkpoint before the last save")
    end_of_update(S3, "dev", 1764756000000000000)
    unlock(S3, "dev", lock_id)
    history, _ = keys(S3, f".pulumi/history/{PROJECT}/dev/")
    check(len(history) == 2, f"one history file and one checkpoint copy: {history}")
    facts["last_checkpoint_bytes"] = sizes[-1]

    # two concurrent updates: the second sees the first's lock
    first, _ = lock(S3, "dev", "alice")
    second, holders = lock(OTHER, "dev", "bob")
    check(first and second is None, "the second update does not get the lock")
    check(holders and holders[0].get("username") == "alice", f"the second sees the first's lock: {holders}")
    # Racing past the LIST, its PUT is refused: statehouse's lock is atomic.
    racing = f"{lock_dir('dev')}{uuid.uuid4()}.json"
    code = code_of(lambda: OTHER.put_object(Bucket=BUCKET, Key=racing, Body=b'{"pid":1,"username":"bob","hostname":"h","timestamp":"t"}'))
    check(code == ("PreconditionFailed", 412), f"a second lock file is refused: {code}")
    code = code_of(lambda: OTHER.put_object(Bucket=BUCKET, Key=stack_key("dev"), Body=checkpoint("dev", 1)))
    check(code == ("PreconditionFailed", 412), f"another key cannot write the locked stack: {code}")
    # cancel: delete every lock file (the holder's own key)
    for key in keys(S3, lock_dir("dev"), "/")[0]:
        S3.delete_object(Bucket=BUCKET, Key=key)
    check(keys(S3, lock_dir("dev"), "/") == ([], []), "cancel removed the lock")

    # export / import
    exported = get(S3, stack_key("dev"))
    lock_id, _ = lock(S3, "dev")
    imported = checkpoint("dev", 3, marker="imported", website="https://imported.example.com")
    save(S3, "dev", imported)
    unlock(S3, "dev", lock_id)
    check(get(S3, stack_key("dev")) == imported, "import wrote the stack")
    facts["exported_bytes"] = len(exported)

    # stack ls over 200 stacks
    for i in range(200):
        S3.put_object(Bucket=BUCKET, Key=stack_key(f"s{i:03}"), Body=checkpoint(f"s{i:03}", 1))
        if i % 2 == 0:
            S3.copy_object(Bucket=BUCKET, Key=stack_key(f"s{i:03}") + ".bak", CopySource={"Bucket": BUCKET, "Key": stack_key(f"s{i:03}")})
    S3.put_object(Bucket=BUCKET, Key=f".pulumi/stacks/{PROJECT}/s000.pulumi-tags", Body=b'{"version":1,"tags":{"team":"web"}}')
    listed, _ = keys(S3, ".pulumi/stacks/")
    stacks = [k for k in listed if k.endswith(".json")]
    check(len(stacks) == 201, f"201 stacks listed: {len(stacks)}")
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        bodies = list(pool.map(lambda k: get(S3, k), stacks))
    check(all(json.loads(b)["checkpoint"]["stack"].startswith("organization/web/") for b in bodies), "every stack reads")

    # stack rename s001 -> renamed
    lock_id, _ = lock(S3, "s001")
    check(code_of(lambda: S3.head_object(Bucket=BUCKET, Key=stack_key("renamed")))[1] == 404, "the new name is free")
    old = json.loads(get(S3, stack_key("s001")))
    old["checkpoint"]["stack"] = f"organization/{PROJECT}/renamed"
    save(S3, "renamed", json.dumps(old).encode())
    S3.copy_object(Bucket=BUCKET, Key=stack_key("s001") + ".bak", CopySource={"Bucket": BUCKET, "Key": stack_key("s001")})
    S3.delete_object(Bucket=BUCKET, Key=stack_key("s001"))
    unlock(S3, "s001", lock_id)
    check(code_of(lambda: S3.head_object(Bucket=BUCKET, Key=stack_key("s001")))[1] == 404, "the old name is gone")
    check(json.loads(get(S3, stack_key("renamed")))["checkpoint"]["stack"].endswith("/renamed"), "renamed")

    # stack rm s002 (with its history)
    lock_id, _ = lock(S3, "s002")
    get(S3, stack_key("s002"))
    S3.head_object(Bucket=BUCKET, Key=stack_key("s002"))
    S3.copy_object(Bucket=BUCKET, Key=stack_key("s002") + ".bak", CopySource={"Bucket": BUCKET, "Key": stack_key("s002")})
    S3.delete_object(Bucket=BUCKET, Key=stack_key("s002"))
    S3.delete_object(Bucket=BUCKET, Key=f".pulumi/stacks/{PROJECT}/s002.pulumi-tags")
    for key in keys(S3, f".pulumi/history/{PROJECT}/s002/")[0]:
        S3.delete_object(Bucket=BUCKET, Key=key)
    unlock(S3, "s002", lock_id)
    check(code_of(lambda: S3.get_object(Bucket=BUCKET, Key=stack_key("s002"))) == ("NoSuchKey", 404), "removed stack is gone")
    check(get(S3, stack_key("s002") + ".bak") == checkpoint("s002", 1), "its .bak stays")

    print(json.dumps(facts))


if __name__ == "__main__":
    main()
