"""The stage of an Upload 2.0 session (PEP 694 stage previews) through the application, over
every store: a whole simple index whose session project lists its staged files, while the
public pages do not; 404 once the session is published, canceled or expired."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.compose import build_application
from serverless_pypi.core.config import Settings
from serverless_pypi.index import layout
from serverless_pypi.storage import Store
from serverless_pypi.storage.local import LocalStore
from tests.helpers.dists import make_sdist, make_wheel, subdir
from tests.helpers.index import publish_file
from tests.helpers.sessions import META, Answer, SessionClient, route_of, sha256, stage_route

JSON = "application/vnd.pypi.simple.v1+json"


def client(store: Store, settings: Settings | None = None) -> SessionClient:
    token, _ = TokenStore(store).create("write")
    return SessionClient(build_application(store, settings), token)


def page(answer: Answer) -> dict[str, Any]:
    assert answer.status == 200, answer.body
    body = answer.body
    if answer.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    data: dict[str, Any] = json.loads(body)
    return data


def names(answer: Answer) -> list[str]:
    return [f["filename"] for f in page(answer)["files"]]


def test_the_stage_lists_staged_and_published_files(store: Store, tmp_path: Path) -> None:
    old = make_wheel(subdir(tmp_path, "old"), "demo", "0.9")
    publish_file(store, old)
    api = client(store)
    session = api.open("demo", "1.0")
    stage = stage_route(session)
    wheel = make_wheel(tmp_path, "demo", "1.0", requires_python=">=3.9")
    sdist = make_sdist(tmp_path, "demo", "1.0")
    api.stage_file(session, wheel)
    # a file still pending is not on the stage
    pending = api.add(session, sdist)
    assert pending.status == 202
    staged = api.get(stage + "demo/", Accept=JSON)
    assert staged.headers["Cache-Control"] == "no-store"
    found = page(staged)
    assert [f["filename"] for f in found["files"]] == [old.name, wheel.name]
    assert found["versions"] == ["0.9", "1.0"]
    entry = found["files"][1]
    assert entry["hashes"] == {"sha256": sha256(wheel)}
    assert entry["size"] == wheel.stat().st_size
    assert entry["upload-time"].endswith("Z")
    assert entry["requires-python"] == ">=3.9"
    assert entry["url"] == wheel.name  # relative: below the stage URL
    metadata_sha256 = entry["core-metadata"]["sha256"]
    # the HTML page too (pip's default)
    html = api.get(stage + "demo/", Accept="text/html")
    assert html.status == 200
    assert f'href="{wheel.name}#sha256={sha256(wheel)}"' in html.body.decode()
    # the staged file and its core metadata are served from the stage
    download = api.get(stage + "demo/" + wheel.name)
    if download.status == 302:
        assert "sessions" in download.headers["Location"]
    else:
        assert download.status == 200
    metadata = api.get(stage + "demo/" + wheel.name + ".metadata")
    assert metadata.status == 200
    assert hashlib.sha256(metadata.body).hexdigest() == metadata_sha256
    # the public page does not list it, nor serve it
    assert names(api.get("demo/", Accept=JSON)) == [old.name]
    assert api.get("demo/" + wheel.name).status == 404
    # the staged sdist, once complete, joins the stage
    assert api.send(pending.doc, sdist.read_bytes()).status == 204
    assert api.complete(pending.doc).status == 201
    assert names(api.get(stage + "demo/", Accept=JSON)) == [old.name, wheel.name, sdist.name]


def test_other_projects_answer_as_the_index_does(store: Store, tmp_path: Path) -> None:
    other = make_wheel(subdir(tmp_path, "other"), "other", "1.0")
    publish_file(store, other)
    api = client(store)
    session = api.open("fresh", "1.0")
    stage = stage_route(session)
    api.stage_file(session, make_wheel(tmp_path, "fresh", "1.0"))
    assert names(api.get(stage + "other/", Accept=JSON)) == [other.name]
    assert page(api.get(stage + "other/", Accept=JSON)) == page(api.get("other/", Accept=JSON))
    assert api.get(stage + "other/" + other.name).status in (200, 302)
    # the project list names the staged project (its first release), the public one does not
    listed = {p["name"] for p in page(api.get(stage, Accept=JSON))["projects"]}
    assert listed == {"other", "fresh"}
    public = {p["name"] for p in page(api.get("", Accept=JSON))["projects"]}
    assert public == {"other"}
    assert api.get("fresh/", Accept=JSON).status == 404
    assert api.get(stage + "nothing-here/").status == 404
    # the stage's own root without its slash is redirected to it
    bare = api.get(stage.rstrip("/"))
    assert bare.status == 301
    assert bare.headers["Location"].endswith("/")


def test_the_stage_ends_with_its_session(store: Store, tmp_path: Path) -> None:
    api = client(store)
    published = api.open("demo", "1.0")
    wheel = make_wheel(tmp_path, "demo", "1.0")
    api.stage_file(published, wheel)
    stage = stage_route(published)
    assert api.get(stage + "demo/").status == 200
    assert api.publish(published).status == 201
    # after publish the files are public, and the stage is gone
    assert api.get(stage + "demo/").status == 404
    assert api.get(stage + "demo/" + wheel.name).status == 404
    assert api.get("demo/" + wheel.name).status in (200, 302)
    canceled = api.open("demo", "2.0")
    later = make_wheel(subdir(tmp_path, "b"), "demo", "2.0")
    api.stage_file(canceled, later)
    assert api.get(stage_route(canceled) + "demo/").status == 200
    assert api.request("DELETE", canceled["links"]["session"]).status == 204
    assert api.get(stage_route(canceled) + "demo/").status == 404
    assert api.get(stage_route(canceled)).status == 404


def test_a_wrong_token_finds_no_stage(local_store: LocalStore, tmp_path: Path) -> None:
    api = client(local_store)
    session = api.open("demo", "1.0")
    api.stage_file(session, make_wheel(tmp_path, "demo", "1.0"))
    token = session["session-token"]
    sid, _, secret = token.partition(".")
    for wrong in (sid, f"{sid}.", f"{sid}.{secret[:-1]}x", "nonsense", f"{'a' * 26}.{secret}"):
        assert api.get(f"_stage/{wrong}/demo/").status == 404, wrong
    assert api.get("_stage/").status == 404
    # expired: the stage goes with the session
    key = layout.session_key(sid)
    document = json.loads(local_store.get(key).data)
    document["expires"] = "2020-01-01T00:00:00Z"
    local_store.put(key, json.dumps(document).encode())
    assert api.get(stage_route(session) + "demo/").status == 404


def test_the_stage_keeps_the_index_read_rules(local_store: LocalStore, tmp_path: Path) -> None:
    api = client(local_store, Settings(require_auth_for_read=True))
    session = api.open("demo", "1.0")
    api.stage_file(session, make_wheel(tmp_path, "demo", "1.0"))
    stage = stage_route(session)
    refused = api.request("GET", stage + "demo/", token=None)
    assert refused.status == 401
    assert "WWW-Authenticate" in refused.headers
    reader, _ = TokenStore(local_store).create("read")
    allowed = SessionClient(
        build_application(local_store, Settings(require_auth_for_read=True)), reader
    )
    assert allowed.get(stage + "demo/").status == 200
    assert route_of(session["links"]["session"]).startswith("_upload/")
    assert session["meta"] == META
