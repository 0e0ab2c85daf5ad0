"""Writes a small Pulumi stack through statehouse's S3 endpoint, as the Pulumi CLI would, for
the web UI's tests and screenshots: project `shop`, stack `dev`.

    python ui_stack.py checkpoint 1   # login (meta.yaml), then the first checkpoint
    python ui_stack.py checkpoint 2   # a second one: a bucket more, an output changed
    python ui_stack.py lock           # a lock file of alice@laptop, pid 4242

Endpoint, bucket and key come from S3_ENDPOINT, S3_BUCKET, S3_KEY_ID and S3_SECRET. A refusal
prints `REFUSED <code> <status>` on stdout and exits with 3; any other failure exits non-zero.
"""

import json
import os
import sys
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

PROJECT = "shop"
STACK = "dev"
# What Pulumi writes for a secret: the ciphertext must never reach a page.
SECRET_SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
CIPHERTEXT = "v1:c2VjcmV0:CIPHERTEXT-MUST-NOT-SHOW"


def client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id=os.environ["S3_KEY_ID"],
        aws_secret_access_key=os.environ["S3_SECRET"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def urn(qualified_type, name):
    return f"urn:pulumi:{STACK}::{PROJECT}::{qualified_type}::{name}"


def checkpoint(step):
    provider = urn("pulumi:providers:aws", "default_6_66_2")
    provider_id = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    root = {
        "urn": urn("pulumi:pulumi:Stack", f"{PROJECT}-{STACK}"),
        "custom": False,
        "type": "pulumi:pulumi:Stack",
        "outputs": {
            "url": f"https://shop.example.com/v{step}",
            "dbPassword": dict(SECRET_SIG, ciphertext=CIPHERTEXT),
            "note": "<b>not bold</b>",
        },
    }
    resources = [
        root,
        {
            "urn": provider,
            "custom": True,
            "id": provider_id,
            "type": "pulumi:providers:aws",
            "inputs": {"region": "eu-west-1"},
            "outputs": {"region": "eu-west-1"},
        },
    ]
    for i in range(step):
        resources.append({
            "urn": urn("aws:s3/bucket:Bucket", f"assets-{i}"),
            "custom": True,
            "id": f"assets-{i}-a1b2c3",
            "type": "aws:s3/bucket:Bucket",
            "inputs": {"bucket": f"assets-{i}"},
            "outputs": {"arn": f"arn:aws:s3:::assets-{i}", "bucket": f"assets-{i}"},
            "parent": root["urn"],
            "provider": f"{provider}::{provider_id}",
        })
    doc = {
        "version": 3,
        "checkpoint": {
            "stack": f"organization/{PROJECT}/{STACK}",
            "latest": {
                "manifest": {"time": "2026-12-03T10:00:00Z", "magic": "m", "version": "v3.259.0"},
                "secrets_providers": {"type": "passphrase", "state": {"salt": "v1:abc"}},
                "resources": resources,
                "metadata": {},
            },
        },
    }
    return json.dumps(doc, indent=4).encode()


def main():
    s3, bucket = client(), os.environ["S3_BUCKET"]
    action = sys.argv[1]
    try:
        if action == "checkpoint":
            step = int(sys.argv[2])
            if step == 1:
                s3.put_object(Bucket=bucket, Key=".pulumi/meta.yaml", Body=b"version: 1\n")
            s3.put_object(
                Bucket=bucket,
                Key=f".pulumi/stacks/{PROJECT}/{STACK}.json",
                Body=checkpoint(step),
                ContentType="text/plain; charset=utf-8",
            )
        elif action == "lock":
            body = {"pid": 4242, "username": "alice", "hostname": "laptop", "timestamp": "2026-12-03T10:00:00Z"}
            s3.put_object(
                Bucket=bucket,
                Key=f".pulumi/locks/organization/{PROJECT}/{STACK}/{uuid.uuid4()}.json",
                Body=json.dumps(body).encode(),
            )
        else:
            sys.exit(f"unknown action {action!r}: checkpoint N or lock")
    except ClientError as e:
        error = e.response["Error"]
        print(f"REFUSED {error.get('Code')} {e.response['ResponseMetadata']['HTTPStatusCode']}")
        sys.exit(3)


if __name__ == "__main__":
    main()
