"""A local OIDC issuer, a stand-in for GitHub's ID-token endpoint, and TLS in front of a server.

Trusted publishing has three parties besides the index: the CI provider's OIDC issuer (a
discovery document, a JWKS, keys that sign the JWTs), the CI job's token request endpoint
(GitHub: `ACTIONS_ID_TOKEN_REQUEST_URL` + `&audience=`, bearer
`ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answering `{"value": jwt}`), and TLS: uv's release builds ask
`https://<upload host>/_/oidc/...` whatever the publish URL's scheme. This module stands in for
all three on 127.0.0.1 so the tests run real `uv publish --trusted-publishing always`.

- `LocalIssuer`: discovery (`/.well-known/openid-configuration`), JWKS (`/jwks`), RS256 keys
  made with joserfc, `issue(claims)`; `/github/token` answers as GitHub's endpoint does;
  `fetch(url)` serves the same documents in-process (for `OidcVerifier(fetch=...)` tests, even
  under another issuer name such as GitHub's).
- `github_claims` / `gitlab_claims`: claims shaped as those providers issue them.
- `unsigned` (`alg: none`), `tampered` (a changed payload under the old signature),
  `signed_with` (a key the issuer never published): JWTs that must be refused.
- `TestCA` + `TlsProxy`: a test CA and a certificate for 127.0.0.1/localhost, and a
  TLS-terminating TCP proxy in front of a live `serverless-pypi serve`; uv trusts it through
  `SSL_CERT_FILE=<ca.pem>`.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import http.server
import ipaddress
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"
TOKEN_PATH = "/github/token"  # the stand-in for ACTIONS_ID_TOKEN_REQUEST_URL
FORWARDED_PROTO = b"X-Forwarded-Proto: https"  # what the TLS proxy tells the server


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key(kid: str | None = None) -> RSAKey:
    """An RS256 signing key (2048 bits) with a `kid`."""
    kid = kid or f"test-{secrets.token_hex(4)}"
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


def signed_with(
    key: RSAKey, claims: Mapping[str, Any], header: Mapping[str, Any] | None = None
) -> str:
    """A JWT over `claims` signed (RS256) with `key`, whose `kid` names it."""
    head = {"alg": "RS256", "typ": "JWT", "kid": key.kid, **(header or {})}
    return jwt.encode(head, dict(claims), key)


def unsigned(claims: Mapping[str, Any], header: Mapping[str, Any] | None = None) -> str:
    """An `alg: none` JWT (RFC 7519 section 6): no signature at all. Must be refused."""
    head = {"alg": "none", "typ": "JWT", **(header or {})}
    body = json.dumps(dict(claims), separators=(",", ":")).encode()
    return f"{_b64(json.dumps(head).encode())}.{_b64(body)}."


def tampered(token: str, **changes: Any) -> str:
    """`token` with its payload changed (claims updated by `changes`) and its old signature."""
    head, body, signature = token.split(".")
    claims = {**json.loads(_unb64(body)), **changes}
    return f"{head}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}.{signature}"


def claims_of(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (for assertions only)."""
    return json.loads(_unb64(token.split(".")[1]))  # type: ignore[no-any-return]


def github_claims(
    *,
    audience: str,
    issuer: str = GITHUB_ISSUER,
    repository: str = "acme/app",
    workflow: str = "release.yml",
    ref: str = "refs/heads/main",
    owner_id: str = "1234567",
    repository_id: str = "7654321",
    environment: str | None = None,
    now: float | None = None,
    lifetime: int = 300,
    **extra: Any,
) -> dict[str, Any]:
    """Claims as GitHub Actions puts them in its OIDC tokens (docs.github.com, "About security
    hardening with OpenID Connect"); `extra` overrides or adds claims."""
    now = time.time() if now is None else now
    owner = repository.split("/", maxsplit=1)[0]
    workflow_ref = f"{repository}/.github/workflows/{workflow}@{ref}"
    subject = (
        f"repo:{repository}:environment:{environment}"
        if environment
        else f"repo:{repository}:ref:{ref}"
    )
    claims: dict[str, Any] = {
        "jti": secrets.token_hex(16),
        "sub": subject,
        "aud": audience,
        "ref": ref,
        "sha": "0" * 40,
        "repository": repository,
        "repository_owner": owner,
        "repository_owner_id": owner_id,
        "repository_id": repository_id,
        "repository_visibility": "private",
        "run_id": "1",
        "run_number": "1",
        "run_attempt": "1",
        "actor": "octocat",
        "actor_id": "583231",
        "workflow": "Release",
        "workflow_ref": workflow_ref,
        "workflow_sha": "0" * 40,
        "job_workflow_ref": workflow_ref,
        "job_workflow_sha": "0" * 40,
        "event_name": "push",
        "ref_type": "branch",
        "runner_environment": "github-hosted",
        "iss": issuer,
        "nbf": int(now) - 5,
        "iat": int(now),
        "exp": int(now) + lifetime,
    }
    if environment is not None:
        claims["environment"] = environment
    return {**claims, **extra}


def gitlab_claims(
    *,
    audience: str,
    issuer: str = GITLAB_ISSUER,
    project_path: str = "acme/app",
    ref: str = "main",
    environment: str | None = None,
    now: float | None = None,
    lifetime: int = 300,
    **extra: Any,
) -> dict[str, Any]:
    """Claims as GitLab CI puts them in its ID tokens (docs.gitlab.com, "ID token
    authentication"); `extra` overrides or adds claims."""
    now = time.time() if now is None else now
    host = urllib.parse.urlsplit(issuer).netloc
    claims: dict[str, Any] = {
        "jti": secrets.token_hex(16),
        "sub": f"project_path:{project_path}:ref_type:branch:ref:{ref}",
        "aud": audience,
        "namespace_path": project_path.rsplit("/", 1)[0],
        "project_path": project_path,
        "project_id": "42",
        "user_login": "alice",
        "pipeline_source": "push",
        "ref": ref,
        "ref_type": "branch",
        "ref_protected": "true",
        "ci_config_ref_uri": f"{host}/{project_path}//.gitlab-ci.yml@refs/heads/{ref}",
        "runner_environment": "gitlab-hosted",
        "iss": issuer,
        "nbf": int(now) - 5,
        "iat": int(now),
        "exp": int(now) + lifetime,
    }
    if environment is not None:
        claims["environment"] = environment
    return {**claims, **extra}


@dataclass
class LocalIssuer:
    """An OIDC issuer on http://127.0.0.1:<port> (start with `with LocalIssuer() as issuer`).

    `issuer` is the `iss` it claims and the base of its discovery document (default: its own
    URL, a loopback `http://` issuer). `github` holds the keyword arguments of
    `github_claims` that the GitHub stand-in (`TOKEN_PATH`) uses: a test changes them to
    play another repository, workflow or owner. `audiences` records what was asked.
    """

    issuer: str = ""
    github: dict[str, Any] = field(default_factory=dict)
    request_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    keys: list[RSAKey] = field(default_factory=lambda: [new_key()])
    audiences: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None

    # lifecycle

    def __enter__(self) -> LocalIssuer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                status, body = issuer._answer(self.path, self.headers.get("Authorization"))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        if not self.issuer:
            self.issuer = self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        """Where it listens: http://127.0.0.1:<port> (no trailing slash)."""
        assert self._server is not None, "LocalIssuer not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # documents

    def discovery(self) -> dict[str, Any]:
        """The OpenID Provider Metadata (OpenID Connect Discovery 1.0, section 3)."""
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks",
            "subject_types_supported": ["public"],
            "response_types_supported": ["id_token"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf"],
        }

    def jwks(self) -> dict[str, Any]:
        """The public keys (RFC 7517 JWK Set), never the private parts."""
        return dict(KeySet(list(self.keys)).as_dict(private=False))

    def rotate(self) -> RSAKey:
        """Publish a new signing key (kept after the old ones); `issue` signs with it."""
        key = new_key()
        self.keys.append(key)
        return key

    def fetch(self, url: str) -> bytes:
        """The issuer's documents in-process, for `OidcVerifier(fetch=issuer.fetch)`: answers
        `<issuer>/.well-known/openid-configuration` and `<issuer>/jwks`; anything else raises
        OSError, as a failed fetch does."""
        if url == f"{self.issuer}/.well-known/openid-configuration":
            return json.dumps(self.discovery()).encode()
        if url == f"{self.issuer}/jwks":
            return json.dumps(self.jwks()).encode()
        raise OSError(f"LocalIssuer.fetch: no document at {url}")

    # tokens

    def issue(self, claims: Mapping[str, Any], header: Mapping[str, Any] | None = None) -> str:
        """A JWT over `claims` signed by the newest key (`iss` is not added: pass it)."""
        token = signed_with(self.keys[-1], claims, header)
        self.issued.append(token)
        return token

    def github_token(self, audience: str, **overrides: Any) -> str:
        """A GitHub-shaped JWT from this issuer for `audience` (`self.github` + `overrides`)."""
        return self.issue(
            github_claims(audience=audience, issuer=self.issuer, **{**self.github, **overrides})
        )

    def gitlab_token(self, audience: str, **overrides: Any) -> str:
        """A GitLab-shaped JWT from this issuer for `audience`."""
        return self.issue(gitlab_claims(audience=audience, issuer=self.issuer, **overrides))

    def github_env(self) -> dict[str, str]:
        """What a GitHub Actions job with `permissions: id-token: write` has in its
        environment, pointing at this stand-in. uv detects GitHub through
        `GITHUB_ACTIONS=true` (the ambient-id crate), then GETs
        `$ACTIONS_ID_TOKEN_REQUEST_URL&audience=<aud>` with `Authorization: bearer
        $ACTIONS_ID_TOKEN_REQUEST_TOKEN`."""
        return {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.url}{TOKEN_PATH}?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }

    def _answer(self, raw_path: str, authorization: str | None) -> tuple[int, bytes]:
        parts = urllib.parse.urlsplit(raw_path)
        base = urllib.parse.urlsplit(self.issuer).path.rstrip("/")
        path = parts.path.removeprefix(base) if base else parts.path
        if path == "/.well-known/openid-configuration":
            return 200, json.dumps(self.discovery()).encode()
        if path == "/jwks":
            return 200, json.dumps(self.jwks()).encode()
        if parts.path == TOKEN_PATH:
            return self._github_token_request(parts.query, authorization)
        return 404, b'{"message": "not found"}'

    def _github_token_request(self, query: str, authorization: str | None) -> tuple[int, bytes]:
        scheme, _, credential = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or credential != self.request_token:
            return 401, b'{"message": "bad ACTIONS_ID_TOKEN_REQUEST_TOKEN"}'
        audience = urllib.parse.parse_qs(query).get("audience", [""])[-1]
        if not audience:
            return 400, b'{"message": "no audience"}'
        self.audiences.append(audience)
        return 200, json.dumps({"value": self.github_token(audience)}).encode()


@dataclass(frozen=True)
class TestCA:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost, written to `dir`:
    `ca` (the CA certificate, for SSL_CERT_FILE), `cert` and `key` (the server's)."""

    __test__ = False  # not a pytest test class

    dir: Path
    ca: Path
    cert: Path
    key: Path

    @classmethod
    def create(cls, directory: Path) -> TestCA:
        directory.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "serverless-pypi test CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        paths = cls(
            directory, directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
        )
        paths.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return paths

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        context.set_alpn_protocols(["http/1.1"])  # the proxy pipes bytes: HTTP/1.1 only
        return context

    def client_context(self) -> ssl.SSLContext:
        """An SSL context trusting this CA alone (for urllib in the tests)."""
        return ssl.create_default_context(cafile=str(self.ca))


class TlsProxy:
    """TLS on 127.0.0.1:<port> in front of a plain-HTTP server at 127.0.0.1:`backend_port`.

    It terminates TLS and relays HTTP/1.1 (keep-alive included) as API Gateway and function
    URLs put TLS in front of the function: the backend sees the client's `Host` header
    (`127.0.0.1:<port>`) and `X-Forwarded-Proto: https`, as behind caddy or nginx; answers
    are piped back byte for byte. An asyncio loop in a daemon thread.
    """

    def __init__(self, ca: TestCA, backend_port: int) -> None:
        self.ca = ca
        self.backend_port = backend_port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> TlsProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base(self) -> str:
        """https://127.0.0.1:<port>/"""
        return f"https://127.0.0.1:{self.port}/"

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self._server = future.result(timeout=10)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _listen(self) -> asyncio.base_events.Server:
        return await asyncio.start_server(
            self._connection, "127.0.0.1", 0, ssl=self.ca.server_context()
        )

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._requests(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _requests(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """Relay HTTP/1.1 requests one by one, each head with `X-Forwarded-Proto: https` (and
        any such header from the client dropped), as TLS-terminating proxies set it."""
        try:
            while True:
                try:
                    head = await source.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    break
                lines = head[:-4].split(b"\r\n")
                fields = [
                    line for line in lines[1:] if not line.lower().startswith(b"x-forwarded-proto:")
                ]
                sink.write(b"\r\n".join([lines[0], *fields, FORWARDED_PROTO, b"", b""]))
                await self._body(source, sink, _header_fields(fields))
                await sink.drain()
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            _close(sink)

    @staticmethod
    async def _body(
        source: asyncio.StreamReader, sink: asyncio.StreamWriter, fields: dict[str, str]
    ) -> None:
        """Relay one request body: chunked (RFC 9112 section 7.1) or Content-Length bytes."""
        if "chunked" in fields.get("transfer-encoding", "").lower():
            while True:
                line = await source.readuntil(b"\r\n")
                sink.write(line)
                if int(line.split(b";")[0].strip(), 16) == 0:
                    while (trailer := await source.readuntil(b"\r\n")) != b"\r\n":
                        sink.write(trailer)
                    sink.write(b"\r\n")
                    return
                sink.write(await source.readexactly(int(line.split(b";")[0].strip(), 16) + 2))
                await sink.drain()
        remaining = int(fields.get("content-length", "0") or "0")
        while remaining > 0:
            data = await source.read(min(remaining, 65536))
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            sink.write(data)
            await sink.drain()
            remaining -= len(data)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            _close(sink)


def _close(sink: asyncio.StreamWriter) -> None:
    """End the writing half (TCP), or the whole connection where that is not possible (TLS)."""
    try:
        if sink.can_write_eof():
            sink.write_eof()
        else:
            sink.close()
    except (OSError, RuntimeError):
        sink.close()


def _header_fields(lines: list[bytes]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        fields[name.strip().lower()] = value.strip()
    return fields


@contextmanager
def tls_front(directory: Path, backend_port: int) -> Iterator[tuple[TestCA, TlsProxy]]:
    """A test CA in `directory` and a TLS proxy to `backend_port`, for a `with` block."""
    ca = TestCA.create(directory)
    with TlsProxy(ca, backend_port) as proxy:
        yield ca, proxy
