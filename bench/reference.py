"""What the reference module's API function does per request, re-implemented for comparison.

The reference (amancevice/terraform-aws-serverless-pypi, its Lambda function) answers a
project page by listing every key under `<project>/` (ListObjects, 1,000 keys a page),
presigning a GET URL for each key, and filling an HTML template; the root page is the
`index.html` object. Its logging wrapper writes the whole event and the whole response as
JSON lines on every request. This module behaves the same way, in its own words, so both
handlers run side by side against the same bucket.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import PurePosixPath
from string import Template
from typing import Any

_PAGE = Template(
    '<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.0">'
    "<title>$title</title></head><body><h1>$title</h1>$anchors</body></html>"
)
_LINK = Template('<a href="$href">$name</a><br>')


class ReferenceHandler:
    """Per request: list the project's keys, presign each, render; no precomputed data."""

    def __init__(self, bucket: str, client: Any = None, ttl: int = 900) -> None:
        import boto3

        # the reference builds a default client at import time
        self.client = client or boto3.client("s3")
        self.bucket = bucket
        self.ttl = ttl
        # its paginator is ListObjects (v1)
        self.lister = self.client.get_paginator("list_objects")
        self.log = logging.getLogger("bench.reference")
        self.log.propagate = False
        if not self.log.handlers:
            # Lambda sends these lines to CloudWatch; here they go nowhere, at the same cost
            self.log.addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115
        self.log.setLevel(logging.INFO)

    def __call__(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        self.log.info("EVENT %s", json.dumps(event, default=str))
        method, package = self._parse(event)
        if method == "GET":
            result = self._get(package)
        elif method == "HEAD":
            result = {**self._get(package), "body": ""}
        else:
            result = self._reject(405, "Not Allowed")
        self.log.info("RETURN %s", json.dumps(result, default=str))
        return result

    @staticmethod
    def _parse(event: dict[str, Any]) -> tuple[str, str | None]:
        method = str(event.get("httpMethod") or "GET")
        proxied = (event.get("pathParameters") or {}).get("package")
        package = proxied.split("/")[0] if proxied else None
        return method, package

    def _get(self, package: str | None) -> dict[str, Any]:
        if package is None:
            body = self.client.get_object(Bucket=self.bucket, Key="index.html")["Body"].read()
            return self._html(body.decode())
        keys = [
            item["Key"]
            for page in self.lister.paginate(Bucket=self.bucket, Prefix=f"{package}/")
            for item in page.get("Contents") or []
        ]
        if not keys:
            return self._reject(404, "Not Found")
        links = "".join(
            _LINK.safe_substitute(href=self._presign(key), name=PurePosixPath(key).name)
            for key in keys
        )
        return self._html(_PAGE.safe_substitute(title=f"Links for {package}", anchors=links))

    def _presign(self, key: str) -> str:
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=self.ttl,
            HttpMethod="GET",
        )
        return url

    @staticmethod
    def _html(body: str) -> dict[str, Any]:
        return {
            "statusCode": 200,
            "headers": {
                "content-length": len(body),
                "content-type": "text/html; charset=utf-8",
            },
            "body": body,
        }

    @staticmethod
    def _reject(status: int, message: str) -> dict[str, Any]:
        body = json.dumps({"message": message})
        return {
            "statusCode": status,
            "headers": {"content-length": len(body), "content-type": "application/json"},
            "body": body,
        }
