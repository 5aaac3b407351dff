"""A client of the Upload 2.0 session API (PEP 694) through `Application.handle`, for the
contract tests: each call is one request, its answer parsed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from serverless_pypi.core.http import Headers, Request, Response
from serverless_pypi.web.app import Application
from tests.helpers.forms import basic_auth

MEDIA_TYPE = "application/vnd.pypi.upload.v2+json"
META = {"api-version": "2.0"}
HOST = "pypi.example.com"
INDEX = f"https://{HOST}/simple/"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def doc(self) -> dict[str, Any]:
        assert self.headers.get("Content-Type") == MEDIA_TYPE, self.headers
        data: dict[str, Any] = json.loads(self.body)
        return data

    def problem(self) -> str:
        """The error body's message, checked to carry PEP 694's and RFC 9457's members."""
        doc = self.doc
        assert doc["meta"] == META
        assert doc["status"] == self.status
        assert doc["type"] == "about:blank"
        assert isinstance(doc["title"], str) and doc["title"]
        assert doc["detail"] == doc["message"]
        assert [e["message"] for e in doc["errors"]] == [doc["message"]]
        assert all(isinstance(e["source"], str) for e in doc["errors"])
        return str(doc["message"])


def route_of(url: str) -> str:
    """The path below the index root of an absolute link the API answered."""
    assert url.startswith(INDEX), url
    return url.removeprefix(INDEX)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class SessionClient:
    """Requests to `app` as a client of the session API with `token` (None: no credentials)."""

    def __init__(self, app: Application, token: str | None) -> None:
        self.app = app
        self.token = token

    def request(
        self,
        method: str,
        route: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str | None = MEDIA_TYPE,
        headers: dict[str, str] | None = None,
        token: str | None | bool = True,
    ) -> Answer:
        sent = {"Host": HOST}
        credentials = self.token if token is True else token or None
        if credentials:
            sent["Authorization"] = basic_auth(credentials)
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
        if raw is not None:
            data = raw
        if data and content_type is not None:
            sent["Content-Type"] = content_type
        sent.update(headers or {})
        route = route_of(route) if route.startswith("https://") else route
        response: Response = self.app.handle(
            Request(method, route, headers=Headers(sent), body=data)
        )
        return Answer(response.status, response.headers, response.body)

    # -- the steps of a release ---------------------------------------------------------------
    def create(
        self, name: str, version: str, *, token: str | None | bool = True, **extra: Any
    ) -> Answer:
        body = {"meta": META, "name": name, "version": version, **extra}
        return self.request("POST", "_upload/", body, token=token)

    def open(self, name: str, version: str) -> dict[str, Any]:
        answer = self.create(name, version)
        assert answer.status == 201, answer.body
        return answer.doc

    def add(
        self,
        session: dict[str, Any],
        path: Path,
        *,
        mechanism: str = "http-post-bytes",
        size: int | None = None,
        hashes: dict[str, str] | None = None,
    ) -> Answer:
        body = {
            "meta": META,
            "filename": path.name,
            "size": path.stat().st_size if size is None else size,
            "hashes": {"sha256": sha256(path)} if hashes is None else hashes,
            "mechanism": mechanism,
        }
        return self.request("POST", session["links"]["upload"], body)

    def send(self, file: dict[str, Any], data: bytes) -> Answer:
        return self.request(
            "POST",
            file["mechanism"]["file_url"],
            raw=data,
            content_type="application/octet-stream",
        )

    def complete(self, file: dict[str, Any]) -> Answer:
        return self.request("POST", file["links"]["complete"], {"meta": META})

    def stage_file(self, session: dict[str, Any], path: Path) -> dict[str, Any]:
        """Upload `path` into the session with http-post-bytes and complete it."""
        added = self.add(session, path)
        assert added.status == 202, added.body
        file = added.doc
        sent = self.send(file, path.read_bytes())
        assert sent.status == 204, sent.body
        completed = self.complete(file)
        assert completed.status == 201, completed.body
        return completed.doc

    def publish(self, session: dict[str, Any]) -> Answer:
        return self.request("POST", session["links"]["publish"], {"meta": META})

    def status(self, session: dict[str, Any]) -> Answer:
        return self.request("GET", session["links"]["session"])

    def get(self, route: str, **headers: str) -> Answer:
        return self.request("GET", route, headers=headers)


def stage_route(session: dict[str, Any]) -> str:
    """The stage's path below the index root (its link is absolute)."""
    url = session["links"]["stage"]
    assert urlsplit(url).path.startswith("/simple/_stage/")
    return route_of(url)
