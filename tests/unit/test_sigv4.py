"""SigV4 with the standard library (`storage.sigv4`, `storage.s3_light`) is botocore's, byte for
byte: presigned URLs against `generate_presigned_url` of a client configured as
`storage.s3.make_client` configures it, and header signing against botocore's `S3SigV4Auth`
on the request the client itself would send. The time is frozen for both.
"""

from __future__ import annotations

import calendar
import datetime
import itertools
from typing import Any

import boto3
import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials

from serverless_pypi.storage import sigv4
from serverless_pypi.storage.s3_light import LightS3Store, resolve_endpoint
from serverless_pypi.storage.sigv4 import (
    EMPTY_SHA256,
    MAX_EXPIRES,
    Credentials,
    canonical_query,
    presign_url,
    quote_key,
    sign_headers,
)

FROZEN = datetime.datetime(2026, 3, 4, 5, 6, 7)
NOW = float(calendar.timegm(FROZEN.timetuple()))

KEYS = [
    "pkg/pkg-1.0.tar.gz",
    "a/b c.tar.gz",
    "My_Pkg/my_pkg-1.0+local.tar.gz",
    "a/100%.txt",
    "a/b%2Fc",
    "a/~tilde~/x",
    "a/x&y=z;q?#frag",
    "ünï/cödé-1.0.tar.gz",
    "日本/語-1.0-py3-none-any.whl",
    "a//double",
    "long/" + "x" * 900 + ".whl",
]
CREDENTIALS = [
    Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
    Credentials("ASIAEXAMPLE", "secret/with+slash=", "FwoGZXIvYXdzE" + "t0k/en+=" * 40),
]
# (region, endpoint URL, bucket): every addressing case the store meets
PLACES = [
    ("us-east-1", None, "my-bucket"),
    ("eu-west-1", None, "my-bucket"),
    ("ap-southeast-2", None, "packages-123"),
    ("cn-north-1", None, "my-bucket"),
    ("eu-west-1", None, "my.dotted.bucket"),  # not a DNS label: path style
    ("us-east-1", None, "My_Bucket"),
    ("eu-west-1", None, "192.168.1.1"),
    ("us-east-1", "http://127.0.0.1:5000", "test-bucket"),
    ("eu-west-1", "https://minio.example.com", "my-bucket"),
    ("eu-west-1", "https://s3.example.com:8443/base/", "my-bucket"),
    ("eu-west-1", "http://localhost:80", "b-1"),
]


@pytest.fixture(autouse=True)
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    # no endpoint from the environment (other tests point boto3 at moto): each case names its own
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: FROZEN)
    monkeypatch.setattr(sigv4, "clock", lambda: NOW)


def client(region: str, endpoint: str | None, credentials: Credentials) -> Any:
    """A client as `storage.s3.make_client` builds it, with these credentials."""
    session = boto3.session.Session(
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
    )
    return session.client(
        "s3",
        region_name=region,
        endpoint_url=endpoint,
        config=Config(
            signature_version="s3v4", s3={"addressing_style": "path" if endpoint else "virtual"}
        ),
    )


def light(
    monkeypatch: pytest.MonkeyPatch,
    region: str,
    endpoint: str | None,
    bucket: str,
    credentials: Credentials,
) -> LightS3Store:
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials.secret_key)
    if credentials.token:
        monkeypatch.setenv("AWS_SESSION_TOKEN", credentials.token)
    else:
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return LightS3Store(bucket, endpoint_url=endpoint)


# -- presigned URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize(("region", "endpoint", "bucket"), PLACES)
@pytest.mark.parametrize("credentials", CREDENTIALS, ids=["keys", "session"])
def test_presigned_urls_are_botocores(
    monkeypatch: pytest.MonkeyPatch,
    region: str,
    endpoint: str | None,
    bucket: str,
    credentials: Credentials,
) -> None:
    boto = client(region, endpoint, credentials)
    store = light(monkeypatch, region, endpoint, bucket, credentials)
    for key, (method, operation), expires in itertools.product(
        KEYS, [("GET", "get_object"), ("HEAD", "head_object")], [1, 900, MAX_EXPIRES]
    ):
        expected = boto.generate_presigned_url(
            operation, Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
        )
        assert store.presign(key, method, expires) == expected, (key, method, expires)


def test_a_prefix_is_part_of_the_signed_key(monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = CREDENTIALS[1]
    store = light(monkeypatch, "eu-west-1", None, "my-bucket", credentials)
    store.prefix = "some prefix/"
    expected = client("eu-west-1", None, credentials).generate_presigned_url(
        "get_object", Params={"Bucket": "my-bucket", "Key": "some prefix/a b"}, ExpiresIn=60
    )
    assert store.presign("a b", "GET", 60) == expected


@pytest.mark.parametrize("expires", [0, -1, MAX_EXPIRES + 1, 10**9])
def test_expiry_outside_one_second_to_seven_days_is_refused(expires: int) -> None:
    with pytest.raises(ValueError, match="1 to 604800 seconds"):
        presign_url(
            "GET",
            "https://b.s3.amazonaws.com",
            "b.s3.amazonaws.com",
            "/k",
            credentials=CREDENTIALS[0],
            region="us-east-1",
            expires=expires,
        )


# -- header signing -------------------------------------------------------------------------------


def sent_by_botocore(boto: Any, operation: str, **params: Any) -> AWSRequest:
    """The request the client would send (not sent: answered by a stand-in)."""
    captured: list[AWSRequest] = []

    def capture(request: AWSRequest, **_: Any) -> Any:
        captured.append(request)
        raise _Captured

    boto.meta.events.register("before-send.s3", capture)
    try:
        with pytest.raises(_Captured):
            getattr(boto, operation)(**params)
    finally:
        boto.meta.events.unregister("before-send.s3", capture)
    return captured[0]


class _Captured(Exception):
    pass


def botocore_signature(
    method: str, url: str, headers: dict[str, str], credentials: Credentials, region: str
) -> dict[str, str]:
    """botocore's S3SigV4Auth over exactly this request."""
    request = AWSRequest(method=method, url=url, headers=headers)
    botocore.auth.S3SigV4Auth(
        BotoCredentials(credentials.access_key, credentials.secret_key, credentials.token),
        "s3",
        region,
    ).add_auth(request)
    return dict(request.headers.items())


def our_request(
    store: LightS3Store,
    method: str,
    key: str,
    query: dict[str, str] | None,
    headers: dict[str, str],
    credentials: Credentials,
) -> tuple[str, dict[str, str]]:
    path = f"{store.endpoint.base}/{quote_key(key)}" if key else store.endpoint.base or "/"
    encoded = canonical_query(query) if query else ""
    signed = sign_headers(
        method,
        store.endpoint.host,
        path,
        encoded,
        headers,
        credentials=credentials,
        region=store.region,
    )
    url = f"{store.endpoint.scheme}://{store.endpoint.netloc}{path}"
    return (f"{url}?{encoded}" if encoded else url), signed


SIGNED_BY_US = ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256", "X-Amz-Security-Token")


@pytest.mark.parametrize(("region", "endpoint", "bucket"), PLACES)
@pytest.mark.parametrize("credentials", CREDENTIALS, ids=["keys", "session"])
def test_get_and_head_are_signed_as_botocore_signs_them(
    monkeypatch: pytest.MonkeyPatch,
    region: str,
    endpoint: str | None,
    bucket: str,
    credentials: Credentials,
) -> None:
    boto = client(region, endpoint, credentials)
    store = light(monkeypatch, region, endpoint, bucket, credentials)
    cases: list[tuple[str, str, dict[str, str], dict[str, Any]]] = [
        ("GET", "get_object", {}, {}),
        ("GET", "get_object", {"If-None-Match": '"abc"'}, {"IfNoneMatch": '"abc"'}),
        ("GET", "get_object", {"If-Match": '"d e"'}, {"IfMatch": '"d e"'}),
        ("HEAD", "head_object", {}, {}),
    ]
    for key, (method, operation, headers, extra) in itertools.product(KEYS, cases):
        sent = sent_by_botocore(boto, operation, Bucket=bucket, Key=key, **extra)
        url, ours = our_request(store, method, key, None, headers, credentials)
        # the same URL as the SDK's, and botocore's signature of our request is ours
        assert url == sent.url, key
        theirs = botocore_signature(method, url, headers, credentials, region)
        assert {h: ours.get(h) for h in SIGNED_BY_US} == {h: theirs.get(h) for h in SIGNED_BY_US}
        assert ours["X-Amz-Content-SHA256"] == EMPTY_SHA256
        assert ("X-Amz-Security-Token" in ours) is bool(credentials.token)


@pytest.mark.parametrize(("region", "endpoint", "bucket"), PLACES[:3] + PLACES[7:9])
@pytest.mark.parametrize(
    "query",
    [
        {"list-type": "2", "prefix": "", "encoding-type": "url", "max-keys": "1"},
        {"list-type": "2", "prefix": "a b/ü+%~", "delimiter": "/", "encoding-type": "url"},
        {
            "list-type": "2",
            "prefix": "pkg/",
            "encoding-type": "url",
            "continuation-token": "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=",
        },
    ],
)
def test_listings_are_signed_as_botocore_signs_them(
    monkeypatch: pytest.MonkeyPatch,
    region: str,
    endpoint: str | None,
    bucket: str,
    query: dict[str, str],
) -> None:
    credentials = CREDENTIALS[1]
    boto = client(region, endpoint, credentials)
    store = light(monkeypatch, region, endpoint, bucket, credentials)
    params: dict[str, Any] = {"Bucket": bucket, "Prefix": query["prefix"]}
    for name, param in (
        ("delimiter", "Delimiter"),
        ("continuation-token", "ContinuationToken"),
        ("max-keys", "MaxKeys"),
    ):
        if name in query:
            params[param] = int(query[name]) if name == "max-keys" else query[name]
    sent = sent_by_botocore(boto, "list_objects_v2", **params)
    url, ours = our_request(store, "GET", "", query, {}, credentials)
    sent_url = str(sent.url)
    # the same request (botocore orders its parameters differently; S3 signs them sorted)
    assert url.partition("?")[0] == sent_url.partition("?")[0]
    assert sorted(url.partition("?")[2].split("&")) == sorted(sent_url.partition("?")[2].split("&"))
    theirs = botocore_signature("GET", sent_url, {}, credentials, region)
    assert {h: ours.get(h) for h in SIGNED_BY_US} == {h: theirs.get(h) for h in SIGNED_BY_US}


def test_header_values_are_trimmed_and_names_folded_as_botocore_does() -> None:
    headers = {"If-None-Match": '  "a"   "b" ', "X-Amz-Meta-Thing": "x"}
    credentials = CREDENTIALS[1]
    url = "https://my-bucket.s3.eu-west-1.amazonaws.com/k"
    ours = sign_headers(
        "GET",
        "my-bucket.s3.eu-west-1.amazonaws.com",
        "/k",
        "",
        headers,
        credentials=credentials,
        region="eu-west-1",
    )
    theirs = botocore_signature("GET", url, headers, credentials, "eu-west-1")
    assert ours["Authorization"] == theirs["Authorization"]
    assert (
        "SignedHeaders=host;if-none-match;x-amz-content-sha256;x-amz-date;x-amz-meta-thing;"
        in (ours["Authorization"])
    )


def test_the_secret_never_shows_in_a_repr() -> None:
    assert "wJalr" not in repr(CREDENTIALS[0]) and "t0k" not in repr(CREDENTIALS[1])


@pytest.mark.parametrize(
    ("bucket", "region", "endpoint", "expected"),
    [
        ("b-1", "us-east-1", None, "https://b-1.s3.amazonaws.com"),
        ("b-1", "eu-central-1", None, "https://b-1.s3.eu-central-1.amazonaws.com"),
        ("b.1", "eu-central-1", None, "https://s3.eu-central-1.amazonaws.com/b.1"),
        ("b-1", "eu-central-1", "http://127.0.0.1:9000", "http://127.0.0.1:9000/b-1"),
        ("b-1", "eu-central-1", "http://[::1]:9000/", "http://[::1]:9000/b-1"),
    ],
)
def test_endpoints(
    monkeypatch: pytest.MonkeyPatch,
    bucket: str,
    region: str,
    endpoint: str | None,
    expected: str,
) -> None:
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    place = resolve_endpoint(bucket, region, endpoint)
    assert f"{place.scheme}://{place.netloc}{place.base}" == expected


def test_the_endpoint_comes_from_the_environment_as_boto3_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://generic:1")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    assert resolve_endpoint("b-1", "eu-west-1").netloc == "generic:1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3-only:2")
    assert resolve_endpoint("b-1", "eu-west-1").netloc == "s3-only:2"
    assert resolve_endpoint("b-1", "eu-west-1", "http://explicit:3").netloc == "explicit:3"
    with pytest.raises(ValueError):
        resolve_endpoint("b-1", "eu-west-1", "ftp://nope")
