"""Every S3 operation statehouse serves, with boto3 and with hand-signed requests for the wire
forms boto3 does not send over plain HTTP (aws-chunked bodies with trailers or chunk
signatures, Pulumi's copy-source encodings, virtual-host addressing).

Run by crates/statehouse/tests/s3_clients.rs, which passes the endpoint, buckets and keys in
the environment. Exits non-zero with the failed check on stderr.
"""

import base64
import datetime
import hashlib
import hmac
import io
import json
import os
import sys
import urllib.parse
import urllib.request
import zlib

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3_ENDPOINT"]
BUCKET = os.environ["S3_BUCKET"]
KEY_ID, SECRET = os.environ["S3_KEY_ID"], os.environ["S3_SECRET"]
MIB = 1024 * 1024
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def client(key_id=KEY_ID, secret=SECRET, checksums="when_supported", style="path"):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(
            s3={"addressing_style": style},
            request_checksum_calculation=checksums,
            response_checksum_validation=checksums,
            retries={"max_attempts": 1},
        ),
    )


S3 = client()


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def error_of(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"].get("Code"), e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


# ---- hand-signed requests (SigV4 as the AWS SDKs compute it) ------------------------------

def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret, day):
    key = _hmac(("AWS4" + secret).encode(), day)
    for part in ("us-east-1", "s3", "aws4_request"):
        key = _hmac(key, part)
    return key


def raw(method, path, body=b"", headers=None, payload_hash=None, host=None, key_id=KEY_ID, secret=SECRET, when=None):
    """Sends a request signed with SigV4 over the given headers; returns (status, body, headers)."""
    parsed = urllib.parse.urlparse(ENDPOINT)
    host = host or parsed.netloc
    when = when or datetime.datetime.now(datetime.timezone.utc)
    stamp, day = when.strftime("%Y%m%dT%H%M%SZ"), when.strftime("%Y%m%d")
    headers = dict(headers or {})
    headers["host"] = host
    headers["x-amz-date"] = stamp
    headers["x-amz-content-sha256"] = payload_hash or hashlib.sha256(body).hexdigest()
    path_part, _, query = path.partition("?")
    canonical_query = "&".join(sorted(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True)
    ))
    names = sorted(k.lower() for k in headers)
    canonical_headers = "".join(f"{n}:{str(headers[next(k for k in headers if k.lower() == n)]).strip()}\n" for n in names)
    signed = ";".join(names)
    canonical = "\n".join([method, path_part, canonical_query, canonical_headers, signed, headers["x-amz-content-sha256"]])
    scope = f"{day}/us-east-1/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = signing_key(secret, day)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={signed}, Signature={signature}"
    request = urllib.request.Request(f"{parsed.scheme}://{parsed.netloc}{path}", data=body if method in ("PUT", "POST") else None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read(), dict(response.headers), (key, signature, stamp, scope)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers), (key, signature, stamp, scope)


def crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def main():
    # ---- put, get, head, range, metadata ----
    body = b"hello statehouse\n" * 100
    put = S3.put_object(Bucket=BUCKET, Key="docs/a.txt", Body=body, ContentType="text/plain", Metadata={"Team": "ops"})
    check(put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest(), f"PutObject answers the MD5 ETag: {put['ETag']}")
    got = S3.get_object(Bucket=BUCKET, Key="docs/a.txt")
    check(got["Body"].read() == body, "GetObject returns the bytes")
    check(got["ContentType"] == "text/plain" and got["Metadata"] == {"team": "ops"}, f"content type and metadata kept: {got['Metadata']}")
    head = S3.head_object(Bucket=BUCKET, Key="docs/a.txt")
    check(head["ContentLength"] == len(body) and head["ETag"] == put["ETag"], "HeadObject describes it")
    part = S3.get_object(Bucket=BUCKET, Key="docs/a.txt", Range="bytes=6-15")
    check(part["Body"].read() == body[6:16] and part["ResponseMetadata"]["HTTPStatusCode"] == 206, "Range reads a slice with 206")
    check(part["ContentRange"] == f"bytes 6-15/{len(body)}", f"Content-Range: {part.get('ContentRange')}")
    tail = S3.get_object(Bucket=BUCKET, Key="docs/a.txt", Range="bytes=-5")
    check(tail["Body"].read() == body[-5:], "suffix range")
    check(error_of(lambda: S3.get_object(Bucket=BUCKET, Key="docs/a.txt", Range=f"bytes={len(body) + 10}-")) == ("InvalidRange", 416), "unsatisfiable range")
    check(error_of(lambda: S3.get_object(Bucket=BUCKET, Key="nope")) == ("NoSuchKey", 404), "GET of a missing key: NoSuchKey")
    status, payload, _, _ = raw("HEAD", f"/{BUCKET}/nope")
    check(status == 404 and payload == b"", f"HEAD of a missing key: 404 without a body ({status}, {payload!r})")
    empty = S3.put_object(Bucket=BUCKET, Key="docs/empty", Body=b"")
    check(S3.get_object(Bucket=BUCKET, Key="docs/empty")["Body"].read() == b"", "an empty object")

    # ---- checksums: every algorithm verified, a wrong one refused ----
    for algorithm in ("CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"):
        try:
            S3.put_object(Bucket=BUCKET, Key=f"sums/{algorithm}", Body=body, ChecksumAlgorithm=algorithm)
        except Exception as e:  # CRC32C and CRC64NVME need awscrt in botocore; raw requests cover them
            check(algorithm in ("CRC32C", "CRC64NVME") and "crt" in str(e).lower(), f"{algorithm}: {e}")
            continue
        got = S3.get_object(Bucket=BUCKET, Key=f"sums/{algorithm}", ChecksumMode="ENABLED")
        check(got["Body"].read() == body, f"{algorithm} object reads back (and boto3 validated the checksum)")
        check(f"Checksum{algorithm}" in got, f"the {algorithm} checksum is answered when asked: {sorted(got)}")
    wrong = error_of(lambda: S3.put_object(Bucket=BUCKET, Key="sums/bad", Body=body, ChecksumCRC32="AAAAAA=="))
    check(wrong == ("BadDigest", 400), f"a wrong CRC32 is refused: {wrong}")
    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    check(error_of(lambda: S3.put_object(Bucket=BUCKET, Key="sums/bad", Body=body, ContentMD5=wrong_md5)) == ("BadDigest", 400), "a wrong Content-MD5 is refused")
    check(error_of(lambda: S3.head_object(Bucket=BUCKET, Key="sums/bad"))[1] == 404, "a refused put stores nothing")
    legacy = client(checksums="when_required")
    legacy.put_object(Bucket=BUCKET, Key="sums/legacy", Body=body)
    check(legacy.get_object(Bucket=BUCKET, Key="sums/legacy")["Body"].read() == body, "when_required client")

    # ---- aws-chunked bodies, as Pulumi 3.245-3.255 and the SDKs send them ----
    chunked = b"8\r\nanything\r\n0\r\nx-amz-checksum-crc32:" + crc32_b64(b"anything").encode() + b"\r\n\r\n"
    trailer_headers = {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "8",
        "x-amz-trailer": "x-amz-checksum-crc32",
        "content-length": str(len(chunked)),
    }
    status, payload, _, _ = raw("PUT", f"/{BUCKET}/chunked/trailer", chunked, trailer_headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    check(status == 200, f"unsigned aws-chunked with a CRC32 trailer: {status} {payload!r}")
    check(S3.get_object(Bucket=BUCKET, Key="chunked/trailer")["Body"].read() == b"anything", "the chunked body is stored decoded")
    bad = chunked.replace(crc32_b64(b"anything").encode(), b"AAAAAA==")
    status, payload, _, _ = raw("PUT", f"/{BUCKET}/chunked/bad", bad, trailer_headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    check(status == 400 and b"BadDigest" in payload, f"a wrong trailer checksum is refused: {status} {payload!r}")
    crc64 = "bWh6pQ7yWIs="  # not checked by value here: a mismatch must be refused
    status, payload, _, _ = raw("PUT", f"/{BUCKET}/sums/crc64-wrong", b"abc", {"x-amz-checksum-crc64nvme": crc64, "content-length": "3"})
    check(status == 400 and b"BadDigest" in payload, f"a wrong CRC64NVME is refused: {status} {payload!r}")
    status, payload, _, _ = raw("PUT", f"/{BUCKET}/sums/unsigned-literal", b"abc",
                                {"x-amz-checksum-sha256": "UNSIGNED-PAYLOAD", "content-length": "3"}, "UNSIGNED-PAYLOAD")
    check(status == 200, f"Pulumi 3.256's literal UNSIGNED-PAYLOAD checksum header is tolerated: {status} {payload!r}")

    # Signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), as awscli/boto3 may send them. The
    # headers' signature seeds the chain of chunk signatures.
    data = b"x" * 70000
    pieces = [data[:65536], data[65536:], b""]
    now = datetime.datetime.now(datetime.timezone.utc)
    day, stamp = now.strftime("%Y%m%d"), now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{day}/us-east-1/s3/aws4_request"
    key = signing_key(SECRET, day)
    length = sum(len(f"{len(p):x};chunk-signature=") + 64 + 2 + len(p) + 2 for p in pieces)
    headers = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)), "content-length": str(length)}
    previous = seed_signature("PUT", f"/{BUCKET}/chunked/signed", headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", now)
    body_out = b""
    for piece in pieces:
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", stamp, scope, previous, EMPTY_SHA256, hashlib.sha256(piece).hexdigest()])
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        body_out += f"{len(piece):x};chunk-signature={signature}\r\n".encode() + piece + b"\r\n"
        previous = signature
    check(len(body_out) == length, "the chunked body's length was computed right")
    status, payload, _, _ = raw("PUT", f"/{BUCKET}/chunked/signed", body_out, headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", when=now)
    check(status == 200, f"signed aws-chunked body: {status} {payload!r}")
    check(S3.get_object(Bucket=BUCKET, Key="chunked/signed")["Body"].read() == data, "signed chunks stored decoded")
    tampered = body_out.replace(b"x" * 10, b"y" * 10, 1)
    status, payload, _, _ = raw("PUT", f"/{BUCKET}/chunked/tampered", tampered, headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", when=now)
    check(status == 403 and b"SignatureDoesNotMatch" in payload, f"a tampered signed chunk is refused: {status} {payload!r}")

    # ---- copy: every x-amz-copy-source encoding Pulumi's SDKs used ----
    S3.put_object(Bucket=BUCKET, Key="dir/with space+plus.json", Body=b"{}")
    for n, source in enumerate([
        f"{BUCKET}/dir/with space+plus.json",  # raw (aws-sdk-go v1)
        urllib.parse.quote(f"{BUCKET}/dir/with space+plus.json", safe=""),  # fully escaped (3.245)
        f"{BUCKET}/" + "/".join(urllib.parse.quote(s, safe="") for s in "dir/with space+plus.json".split("/")),  # per segment, + as %2B
        f"/{BUCKET}/dir/with%20space%2Bplus.json",  # with a leading slash
    ]):
        if n == 0:
            source = source.replace(" ", "%20")  # a raw space cannot go in a header line
        status, payload, _, _ = raw("PUT", f"/{BUCKET}/copies/{n}", b"", {"x-amz-copy-source": source})
        check(status == 200 and b"CopyObjectResult" in payload, f"copy-source {source!r}: {status} {payload!r}")
        check(S3.get_object(Bucket=BUCKET, Key=f"copies/{n}")["Body"].read() == b"{}", f"copy {n} has the bytes")
    copied = S3.copy_object(Bucket=BUCKET, Key="docs/b.txt", CopySource={"Bucket": BUCKET, "Key": "docs/a.txt"})
    check(copied["CopyObjectResult"]["ETag"] == put["ETag"], "a copy keeps the ETag")
    check(S3.head_object(Bucket=BUCKET, Key="docs/b.txt")["Metadata"] == {"team": "ops"}, "COPY keeps the metadata")
    S3.copy_object(Bucket=BUCKET, Key="docs/c.txt", CopySource={"Bucket": BUCKET, "Key": "docs/a.txt"},
                   MetadataDirective="REPLACE", Metadata={"new": "1"}, ContentType="application/json")
    replaced = S3.head_object(Bucket=BUCKET, Key="docs/c.txt")
    check(replaced["Metadata"] == {"new": "1"} and replaced["ContentType"] == "application/json", "REPLACE takes the new metadata")
    check(error_of(lambda: S3.copy_object(Bucket=BUCKET, Key="x", CopySource={"Bucket": BUCKET, "Key": "missing"})) == ("NoSuchKey", 404), "copying a missing key")

    # ---- listings ----
    for i in range(25):
        S3.put_object(Bucket=BUCKET, Key=f"list/k{i:02}", Body=b"1")
    S3.put_object(Bucket=BUCKET, Key="list/sub/deep", Body=b"1")
    S3.put_object(Bucket=BUCKET, Key="list/sub2/deep", Body=b"1")
    page = S3.list_objects_v2(Bucket=BUCKET, Prefix="list/", Delimiter="/", MaxKeys=10)
    check(page["IsTruncated"] and page["KeyCount"] == 10, f"a page of 10: {page['KeyCount']}")
    seen = [o["Key"] for o in page["Contents"]]
    prefixes = []
    while page.get("IsTruncated"):
        page = S3.list_objects_v2(Bucket=BUCKET, Prefix="list/", Delimiter="/", MaxKeys=10, ContinuationToken=page["NextContinuationToken"])
        seen += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    check(seen == [f"list/k{i:02}" for i in range(25)], f"all keys once, in order: {seen}")
    check(prefixes == ["list/sub/", "list/sub2/"], f"common prefixes: {prefixes}")
    after = S3.list_objects_v2(Bucket=BUCKET, Prefix="list/", StartAfter="list/k20")
    check([o["Key"] for o in after["Contents"]][:2] == ["list/k21", "list/k22"], "start-after")
    v1 = S3.list_objects(Bucket=BUCKET, Prefix="list/", MaxKeys=5, Marker="list/k03")
    check([o["Key"] for o in v1["Contents"]] == ["list/k04", "list/k05", "list/k06", "list/k07", "list/k08"], "ListObjects v1 with a marker")
    check(all("LastModified" in o for o in v1["Contents"]), "LastModified on every entry")
    spaced = S3.list_objects(Bucket=BUCKET, Prefix="dir/")  # boto3 asks for url encoding and decodes
    check([o["Key"] for o in spaced["Contents"]] == ["dir/with space+plus.json"], f"url-encoded listing: {spaced['Contents']}")

    # ---- deletes ----
    S3.delete_object(Bucket=BUCKET, Key="docs/b.txt")
    check(error_of(lambda: S3.head_object(Bucket=BUCKET, Key="docs/b.txt"))[1] == 404, "deleted")
    S3.delete_object(Bucket=BUCKET, Key="never/there")  # absent keys delete fine
    result = S3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": f"list/k{i:02}"} for i in range(5)] + [{"Key": "k" * 1100}]})
    check(len(result.get("Deleted", [])) == 5, f"five deleted: {result}")
    check(len(result.get("Errors", [])) == 1, f"the bad key fails alone: {result}")
    check(error_of(lambda: S3.head_object(Bucket=BUCKET, Key="list/k00"))[1] == 404, "batch delete went through")

    # ---- Pulumi's files under a path (pulumi login s3://bucket/sub/dir) are refused, saying why ----
    for attempt in (lambda: S3.put_object(Bucket=BUCKET, Key="team/.pulumi/meta.yaml", Body=b"version: 1\n"),
                    lambda: S3.create_multipart_upload(Bucket=BUCKET, Key="team/a/.pulumi/stacks/p/s.json"),
                    lambda: S3.copy_object(Bucket=BUCKET, Key="team/.pulumi/stacks/p/s.json", CopySource={"Bucket": BUCKET, "Key": "docs/a.txt"})):
        try:
            attempt()
            check(False, "Pulumi's files under a path are refused")
        except ClientError as e:
            code, message = e.response["Error"]["Code"], e.response["Error"].get("Message", "")
            check(code == "InvalidArgument" and "bucket's root" in message and "without the path /team" in message, f"under a path: {code} {message}")
    check(error_of(lambda: S3.head_object(Bucket=BUCKET, Key="team/.pulumi/meta.yaml"))[1] == 404, "nothing was stored under the path")

    # ---- multipart: over 16 MiB, parts listed, aborted, refused ----
    big = os.urandom(MIB) * 20
    S3.upload_fileobj(io.BytesIO(big), BUCKET, "big/object", Config=TransferConfig(multipart_threshold=16 * MIB, multipart_chunksize=8 * MIB, use_threads=False))
    head = S3.head_object(Bucket=BUCKET, Key="big/object")
    check(head["ContentLength"] == len(big) and head["ETag"].endswith('-3"'), f"a 3-part upload: {head['ETag']}")
    check(S3.get_object(Bucket=BUCKET, Key="big/object")["Body"].read() == big, "it reads back whole")
    check(S3.get_object(Bucket=BUCKET, Key="big/object", Range="bytes=8388600-8388615")["Body"].read() == big[8388600:8388616], "a range across parts")
    upload = S3.create_multipart_upload(Bucket=BUCKET, Key="big/manual")["UploadId"]
    one = S3.upload_part(Bucket=BUCKET, Key="big/manual", UploadId=upload, PartNumber=1, Body=b"a" * (5 * MIB))
    two = S3.upload_part(Bucket=BUCKET, Key="big/manual", UploadId=upload, PartNumber=2, Body=b"b" * 10)
    parts = S3.list_parts(Bucket=BUCKET, Key="big/manual", UploadId=upload)["Parts"]
    check([p["PartNumber"] for p in parts] == [1, 2] and parts[1]["Size"] == 10, f"ListParts: {parts}")
    bad_tag = error_of(lambda: S3.complete_multipart_upload(Bucket=BUCKET, Key="big/manual", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": one["ETag"]}, {"PartNumber": 2, "ETag": '"0000"'}]}))
    check(bad_tag == ("InvalidPart", 400), f"a wrong part ETag: {bad_tag}")
    order = error_of(lambda: S3.complete_multipart_upload(Bucket=BUCKET, Key="big/manual", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": two["ETag"]}, {"PartNumber": 1, "ETag": one["ETag"]}]}))
    check(order == ("InvalidPartOrder", 400), f"parts out of order: {order}")
    small = S3.create_multipart_upload(Bucket=BUCKET, Key="big/small")["UploadId"]
    s1 = S3.upload_part(Bucket=BUCKET, Key="big/small", UploadId=small, PartNumber=1, Body=b"a")
    s2 = S3.upload_part(Bucket=BUCKET, Key="big/small", UploadId=small, PartNumber=2, Body=b"b")
    too_small = error_of(lambda: S3.complete_multipart_upload(Bucket=BUCKET, Key="big/small", UploadId=small,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": s1["ETag"]}, {"PartNumber": 2, "ETag": s2["ETag"]}]}))
    check(too_small == ("EntityTooSmall", 400), f"a small part before the last: {too_small}")
    S3.abort_multipart_upload(Bucket=BUCKET, Key="big/small", UploadId=small)
    # A part is sealed as it arrives, yet a damaged one stores nothing; a part sent again replaces it.
    checked = S3.create_multipart_upload(Bucket=BUCKET, Key="big/checked")["UploadId"]
    piece = os.urandom(3 * MIB + 17)
    damaged = error_of(lambda: S3.upload_part(Bucket=BUCKET, Key="big/checked", UploadId=checked, PartNumber=1, Body=piece,
        ContentMD5=base64.b64encode(hashlib.md5(b"other").digest()).decode()))
    check(damaged == ("BadDigest", 400), f"a part with a wrong Content-MD5 is refused: {damaged}")
    check(S3.list_parts(Bucket=BUCKET, Key="big/checked", UploadId=checked).get("Parts", []) == [], "the refused part is not kept")
    S3.upload_part(Bucket=BUCKET, Key="big/checked", UploadId=checked, PartNumber=1, Body=b"first")
    again = S3.upload_part(Bucket=BUCKET, Key="big/checked", UploadId=checked, PartNumber=1, Body=piece,
        ContentMD5=base64.b64encode(hashlib.md5(piece).digest()).decode())
    check(again["ETag"] == f'"{hashlib.md5(piece).hexdigest()}"', f"a part's ETag is its MD5: {again}")
    listed = S3.list_parts(Bucket=BUCKET, Key="big/checked", UploadId=checked)["Parts"]
    check([(p["PartNumber"], p["Size"]) for p in listed] == [(1, len(piece))], f"the part sent again replaced the first: {listed}")
    S3.complete_multipart_upload(Bucket=BUCKET, Key="big/checked", UploadId=checked,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": again["ETag"]}]})
    check(S3.get_object(Bucket=BUCKET, Key="big/checked")["Body"].read() == piece, "a part of several chunks reads back")
    gone = error_of(lambda: S3.upload_part(Bucket=BUCKET, Key="big/checked", UploadId="no-such-upload", PartNumber=1, Body=b"x"))
    check(gone == ("NoSuchUpload", 404), f"a part for an unknown upload: {gone}")
    check(error_of(lambda: S3.list_parts(Bucket=BUCKET, Key="big/small", UploadId=small)) == ("NoSuchUpload", 404), "aborted")
    done = S3.complete_multipart_upload(Bucket=BUCKET, Key="big/manual", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": one["ETag"]}, {"PartNumber": 2, "ETag": two["ETag"]}]})
    check(done["ETag"].endswith('-2"'), f"completed: {done}")
    check(S3.get_object(Bucket=BUCKET, Key="big/manual")["Body"].read() == b"a" * (5 * MIB) + b"b" * 10, "completed object reads")

    # ---- presigned GET ----
    url = S3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "docs/a.txt"}, ExpiresIn=300)
    with urllib.request.urlopen(url) as response:
        check(response.read() == body, "a presigned GET works without credentials")
    forged = url.replace("docs/a.txt", "docs/c.txt")
    try:
        urllib.request.urlopen(forged)
        check(False, "a presigned URL for another key is refused")
    except urllib.error.HTTPError as e:
        check(e.code == 403, f"presigned URL for another key: {e.code}")

    # ---- buckets ----
    names = [b["Name"] for b in S3.list_buckets()["Buckets"]]
    check(BUCKET in names and os.environ["S3_OTHER_BUCKET"] not in names, f"ListBuckets: the key's workspaces only: {names}")
    S3.head_bucket(Bucket=BUCKET)
    S3.get_bucket_location(Bucket=BUCKET)

    # ---- virtual-host addressing ----
    domain = os.environ["S3_DOMAIN"]
    port = urllib.parse.urlparse(ENDPOINT).port
    status, payload, _, _ = raw("GET", "/docs/a.txt", host=f"{BUCKET}.{domain}:{port}")
    check(status == 200 and payload == body, f"virtual-host GET: {status} {payload[:100]!r}")

    # ---- refusals ----
    wrong_secret = client(secret="x" * 40)
    check(error_of(lambda: wrong_secret.get_object(Bucket=BUCKET, Key="docs/a.txt")) == ("SignatureDoesNotMatch", 403), "a wrong secret")
    unknown = client(key_id="SHKUNKNOWNUNKNOWN000")
    check(error_of(lambda: unknown.get_object(Bucket=BUCKET, Key="docs/a.txt")) == ("InvalidAccessKeyId", 403), "an unknown key")
    revoked = client(os.environ["S3_REVOKED_KEY_ID"], os.environ["S3_REVOKED_SECRET"])
    code = error_of(lambda: revoked.get_object(Bucket=BUCKET, Key="docs/a.txt"))
    check(code == ("InvalidAccessKeyId", 403), f"a revoked key: {code}")
    viewer = client(os.environ["S3_VIEWER_KEY_ID"], os.environ["S3_VIEWER_SECRET"])
    check(viewer.get_object(Bucket=BUCKET, Key="docs/a.txt")["Body"].read() == body, "a viewer reads")
    check(error_of(lambda: viewer.put_object(Bucket=BUCKET, Key="docs/v", Body=b"1")) == ("AccessDenied", 403), "a viewer cannot write")
    check(error_of(lambda: viewer.delete_object(Bucket=BUCKET, Key="docs/a.txt")) == ("AccessDenied", 403), "a viewer cannot delete")
    other = os.environ["S3_OTHER_BUCKET"]
    code = error_of(lambda: S3.get_object(Bucket=other, Key="anything"))
    check(code == ("NoSuchBucket", 404), f"a key of another workspace sees no bucket: {code}")
    code = error_of(lambda: S3.put_object(Bucket=other, Key="anything", Body=b"1"))
    check(code == ("NoSuchBucket", 404), f"nor writes to it: {code}")
    skewed = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    status, payload, _, _ = raw("GET", f"/{BUCKET}/docs/a.txt", when=skewed)
    check(status == 403 and b"RequestTimeTooSkewed" in payload, f"a request an hour old: {status} {payload!r}")
    status, payload, _, _ = raw("GET", f"/{BUCKET}/docs/a.txt", headers={}, secret="y" * 40)
    check(status == 403 and b"SignatureDoesNotMatch" in payload, "hand-signed with a wrong secret")
    anonymous = urllib.request.Request(f"{ENDPOINT}/{BUCKET}/docs/a.txt")
    try:
        urllib.request.urlopen(anonymous)
        check(False, "an unsigned request is refused")
    except urllib.error.HTTPError as e:
        check(e.code == 403, f"anonymous: {e.code}")
    check(error_of(lambda: S3.put_object(Bucket=BUCKET, Key="ctl/\x07bell", Body=b"1"))[0] in ("InvalidArgument",), "control characters in a key")
    print(json.dumps({"ok": True}))


def seed_signature(method, path, headers, payload_hash, when):
    """The signature of a request's headers: the seed of its chunk signatures."""
    _, _, _, (_, signature, _, _) = raw_sign_only(method, path, headers, payload_hash, when)
    return signature


def raw_sign_only(method, path, headers, payload_hash, when):
    parsed = urllib.parse.urlparse(ENDPOINT)
    headers = dict(headers)
    stamp, day = when.strftime("%Y%m%dT%H%M%SZ"), when.strftime("%Y%m%d")
    headers["host"] = parsed.netloc
    headers["x-amz-date"] = stamp
    headers["x-amz-content-sha256"] = payload_hash
    names = sorted(k.lower() for k in headers)
    canonical_headers = "".join(f"{n}:{str(headers[n]).strip()}\n" for n in names)
    signed = ";".join(names)
    canonical = "\n".join([method, path, "", canonical_headers, signed, payload_hash])
    scope = f"{day}/us-east-1/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = signing_key(SECRET, day)
    return None, None, None, (key, hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), stamp, scope)


if __name__ == "__main__":
    main()
