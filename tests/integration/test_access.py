"""Access modes: open reads by default, a locked index with REQUIRE_AUTH_FOR_READ, HTTP Basic."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from serverless_pypi.auth.access import AccessControl, basic_credentials
from serverless_pypi.auth.tokens import TokenCache, TokenStore
from serverless_pypi.compose import build_application
from serverless_pypi.core.config import Settings
from serverless_pypi.core.errors import DomainError
from serverless_pypi.core.http import Headers, Request, Response
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.storage import Store
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.storage.s3 import S3Store
from serverless_pypi.web.errors import error_response
from tests.helpers.clients import pip_install, uv_install
from tests.helpers.dists import make_wheel
from tests.helpers.forms import basic_auth
from tests.helpers.index import publish_file
from tests.helpers.servers import LiveServer

LOCKED = Settings(require_auth_for_read=True)


def request(path: str = "", authorization: str | None = None) -> Request:
    headers = Headers({"Authorization": authorization} if authorization else {})
    return Request("GET", path, headers=headers)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic_auth("tok"), ("__token__", "tok")),
        (basic_auth("a:b:c"), ("__token__", "a:b:c")),
        ("basic " + base64.b64encode(b"u:").decode(), ("u", "")),
        ("Basic   " + base64.b64encode(b"u:p").decode() + "  ", ("u", "p")),
        ("Bearer abc", None),
        ("Basic", None),
        ("Basic !!!notbase64", None),
        ("Basic " + base64.b64encode(b"no-colon").decode(), None),
        ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), None),
        ("Basic " + "A" * 2000, None),
    ],
)
def test_basic_credentials(header: str, expected: tuple[str, str] | None) -> None:
    assert basic_credentials(request(authorization=header)) == expected


def test_no_header() -> None:
    assert basic_credentials(request()) is None


@pytest.fixture
def tokens(local_store: LocalStore) -> TokenStore:
    return TokenStore(local_store)


def control(store: Store, settings: Settings = LOCKED) -> AccessControl:
    return AccessControl(TokenCache(store), settings)


def answer(check: Callable[..., None], *args: object) -> Response | None:
    """None when the check lets the request through, else the answer to its refusal."""
    try:
        check(*args)
    except DomainError as refusal:
        return error_response(refusal)
    return None


def test_reads_are_open_by_default(tokens: TokenStore) -> None:
    check = control(tokens.store, Settings())
    project = NormalizedName("demo")
    assert answer(check, request(), "read", project) is None
    assert answer(check, request(authorization="Basic garbage"), "read", None) is None


def test_locked_reads(tokens: TokenStore) -> None:
    check = control(tokens.store)
    project = NormalizedName("demo")
    read, _ = tokens.create("read")
    write, _ = tokens.create("write")
    scoped, scoped_record = tokens.create("read", ["demo"])
    expired, _ = tokens.create("read")
    for denied in [
        request(),
        request(authorization=basic_auth("spypi_0000000000000000_nope")),
        request(authorization=basic_auth(read, username="someone")),
        request(authorization="Bearer " + read),
    ]:
        refusal = answer(check, denied, "read", project)
        assert refusal is not None
        assert refusal.status == 401
        assert refusal.headers["WWW-Authenticate"].startswith('Basic realm="serverless-pypi"')
        assert read.encode() not in refusal.body
    assert answer(check, request(authorization=basic_auth(read)), "read", project) is None
    assert answer(check, request(authorization=basic_auth(write)), "read", project) is None
    assert answer(check, request(authorization=basic_auth(read)), "read", None) is None
    assert answer(check, request(authorization=basic_auth(scoped)), "read", project) is None
    other = answer(
        check, request(authorization=basic_auth(scoped)), "read", NormalizedName("other")
    )
    assert other is not None
    assert other.status == 403
    assert scoped_record.id in other.body.decode()
    root = answer(check, request(authorization=basic_auth(scoped)), "read", None)
    assert root is not None
    assert root.status == 403
    # an expired token is refused like an unknown one
    later = TokenCache(tokens.store, clock=lambda: datetime.now(UTC) + timedelta(days=400))
    tokens_expiring = TokenStore(tokens.store)
    expiring, _ = tokens_expiring.create("read", expires=datetime.now(UTC) + timedelta(days=1))
    late = AccessControl(later, LOCKED)
    assert answer(late, request(authorization=basic_auth(expired)), "read", project) is None
    refusal = answer(late, request(authorization=basic_auth(expiring)), "read", project)
    assert refusal is not None
    assert refusal.status == 401


def test_upload_check(tokens: TokenStore) -> None:
    check = control(tokens.store, Settings()).check_upload
    project = NormalizedName("team-tools")
    read, _ = tokens.create("read")
    write, _ = tokens.create("write", ["team-*"])
    cases = {
        None: 403,
        basic_auth(read): 403,
        basic_auth(write, username="me"): 403,
        basic_auth("spypi_0000000000000000_nope"): 403,
    }
    for header, status in cases.items():
        refusal = answer(check, request(authorization=header), project)
        assert refusal is not None
        assert refusal.status == status
        assert "WWW-Authenticate" not in refusal.headers
    assert answer(check, request(authorization=basic_auth(write)), None) is None
    assert answer(check, request(authorization=basic_auth(write)), project) is None
    refusal = answer(check, request(authorization=basic_auth(write)), NormalizedName("other"))
    assert refusal is not None
    assert refusal.status == 403
    assert "team-*" in refusal.body.decode()


def test_downloads_are_redirected_only_after_the_check(s3_store: S3Store, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "locked", "1.0")
    publish_file(Catalog(s3_store), wheel)
    app = build_application(s3_store, LOCKED)
    token, _ = TokenStore(s3_store).create("read")
    paths = ["", "locked/", f"locked/{wheel.name}", f"locked/{wheel.name}.metadata"]
    for path in paths:
        refused = app.handle(request(path))
        assert refused.status == 401, path
        assert "Location" not in refused.headers
        assert b"sha256" not in refused.body
    assert app.handle(request("locked/", basic_auth(token))).status == 200
    download = app.handle(request(f"locked/{wheel.name}", basic_auth(token)))
    assert download.status == 302
    assert "X-Amz-Signature" in download.headers["Location"]
    metadata = app.handle(request(f"locked/{wheel.name}.metadata", basic_auth(token)))
    assert metadata.status == 200
    assert metadata.body.startswith(b"Metadata-Version")


# -- real clients against a locked index --------------------------------------------------


@pytest.mark.slow
def test_pip_and_uv_with_credentials_against_a_locked_index(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    store_dir = tmp_path / "store"
    store = LocalStore(store_dir)
    wheel = make_wheel(tmp_path, "Locked.Pkg", "1.0")
    publish_file(Catalog(store), wheel)
    token, _ = TokenStore(store).create("read", ["locked-*"])
    server = live_server(str(store_dir), env={"REQUIRE_AUTH_FOR_READ": "1"})
    host = server.url.removeprefix("http://")

    # without credentials: 401 with a Basic challenge, and pip cannot install
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(server.url + "locked-pkg/", timeout=10)
    assert refused.value.code == 401
    assert refused.value.headers["WWW-Authenticate"].startswith("Basic")
    result = pip_install(server.url, tmp_path / "none", "locked-pkg")
    assert result.returncode != 0
    assert "GET /simple/locked-pkg/ 401" in server.log.read_text()
    assert not (tmp_path / "none" / "locked_pkg.py").exists()

    # credentials in the index URL
    result = pip_install(f"http://__token__:{token}@{host}", tmp_path / "url", "locked-pkg")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "url" / "locked_pkg.py").read_text().startswith("VERSION = '1.0'")

    # credentials from a netrc file (NETRC, and HOME for ~/.netrc)
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1\n  login __token__\n  password {token}\n")
    netrc.chmod(0o600)
    result = pip_install(
        server.url,
        tmp_path / "netrc",
        "locked-pkg",
        env={"NETRC": str(netrc), "HOME": str(home)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "netrc" / "locked_pkg.py").exists()

    # a wrong token in the URL is refused
    result = pip_install(f"http://__token__:{token}x@{host}", tmp_path / "wrong", "locked-pkg")
    assert result.returncode != 0
    assert not (tmp_path / "wrong" / "locked_pkg.py").exists()

    # uv, with the credentials in the URL
    uv = uv_install(f"http://__token__:{token}@{host}", tmp_path / "uv", "locked-pkg")
    assert uv.returncode == 0, uv.stdout + uv.stderr
    assert (tmp_path / "uv" / "locked_pkg.py").exists()
    # the server never logs the token
    assert token not in server.log.read_text()
