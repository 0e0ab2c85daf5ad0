"""Puts objects into a bucket and reads them back with boto3, for the importer tests
(crates/statehouse/tests/pulumi_import.rs).

    objects.py put   stdin: JSON {"key": "<base64 of the bytes>", ...}   puts every object
    objects.py get   stdin: JSON ["key", ...]    prints JSON {"key": "<base64>" or null if absent}

Endpoint, bucket and credentials come from S3_ENDPOINT, S3_BUCKET, S3_KEY_ID and S3_SECRET;
requests are path style.
"""

import base64
import json
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id=os.environ["S3_KEY_ID"],
        aws_secret_access_key=os.environ["S3_SECRET"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def main():
    s3, bucket = client(), os.environ["S3_BUCKET"]
    request = json.load(sys.stdin)
    if sys.argv[1] == "put":
        for key, data in request.items():
            s3.put_object(Bucket=bucket, Key=key, Body=base64.b64decode(data))
        print(json.dumps({"put": len(request)}))
    elif sys.argv[1] == "get":
        found = {}
        for key in request:
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                found[key] = base64.b64encode(body).decode()
            except ClientError as e:
                if e.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                    raise
                found[key] = None
        print(json.dumps(found))
    else:
        sys.exit(f"unknown command {sys.argv[1]!r}")


if __name__ == "__main__":
    main()
