"""The Upload 2.0 session API (PEP 694) through the application, over every store: each
route, its status codes and bodies, the error body, 404 after cancel and expiry, the 409s,
415/400/406/422, and authorization at every request."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.compose import build_application
from serverless_pypi.core.config import Settings
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.policy import Policy, ProjectStatus
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.index.policies import PolicyWriter
from serverless_pypi.storage import Store
from serverless_pypi.storage.local import LocalStore
from tests.helpers.dists import make_sdist, make_wheel, subdir
from tests.helpers.forms import upload_body
from tests.helpers.sessions import INDEX, MEDIA_TYPE, META, SessionClient, route_of, sha256

S3_MECHANISM = "vnd-serverlesspypi-s3multipart-presigned-v1"


def client(store: Store, *projects: str, settings: Settings | None = None) -> SessionClient:
    token, _ = TokenStore(store).create("write", projects)
    return SessionClient(build_application(store, settings or Settings(policy_ttl=0.001)), token)


def listed(store: Store, project: str) -> set[str]:
    return set(Catalog(store).read_project(NormalizedName(project))[0].files)


def test_a_release_is_published_through_a_session(store: Store, tmp_path: Path) -> None:
    api = client(store)
    created = api.create("Demo.Pkg", "1.0.0")
    assert created.status == 201, created.body
    session = created.doc
    own = session["links"]["session"]
    # PEP 694: Location is links.session; every link absolute, below the index root
    assert created.headers["Location"] == own
    assert own.startswith(INDEX + "_upload/") and own.endswith("/")
    assert set(session["links"]) == {"stage", "upload", "session", "publish", "extend"}
    assert session["meta"] == META
    assert session["status"] == "pending"
    assert session["files"] == {}
    assert session["expires-at"].endswith("Z")
    assert session["mechanisms"][-1] == "http-post-bytes"
    assert session["links"]["stage"] == f"{INDEX}_stage/{session['session-token']}/"
    wheel = make_wheel(tmp_path, "demo_pkg", "1.0.0")
    added = api.add(session, wheel)
    assert added.status == 202, added.body
    assert added.headers["Retry-After"] == "1"
    file = added.doc
    assert added.headers["Location"] == file["links"]["file-upload-session"]
    assert file["status"] == "pending"
    assert file["mechanism"]["identifier"] == "http-post-bytes"
    assert set(file["links"]) == {"publishing-session", "file-upload-session", "complete", "extend"}
    assert (file["filename"], file["size"]) == (wheel.name, wheel.stat().st_size)
    assert file["hashes"] == {"sha256": sha256(wheel)}
    assert api.send(file, wheel.read_bytes()).status == 204
    completed = api.complete(file)
    assert completed.status == 201, completed.body
    assert completed.doc["status"] == "complete"
    status = api.status(session)
    assert status.status == 200
    assert status.doc["files"] == {
        wheel.name: {"status": "complete", "link": file["links"]["file-upload-session"]}
    }
    # while open, every session body carries the token and the stage (PEP 694 stage previews)
    assert status.doc["session-token"] == session["session-token"]
    assert status.doc["links"]["stage"] == session["links"]["stage"]
    assert listed(store, "demo-pkg") == set()
    published = api.publish(session)
    assert published.status == 201, published.body
    assert published.headers["Location"] == own
    assert published.doc["status"] == "complete"
    assert "session-token" not in published.doc  # published: no stage any more
    assert "stage" not in published.doc["links"]
    assert listed(store, "demo-pkg") == {wheel.name}
    page = api.get("demo-pkg/", Accept="application/vnd.pypi.simple.v1+json")
    assert [f["filename"] for f in json.loads(page.body)["files"]] == [wheel.name]


def test_the_s3_mechanism_sends_parts_straight_to_the_store(store: Store, tmp_path: Path) -> None:
    api = client(store)
    session = api.open("demo", "1.0")
    if not store.supports_multipart:
        assert session["mechanisms"] == ["http-post-bytes"]
        wheel = make_wheel(tmp_path, "demo", "1.0")
        refused = api.add(session, wheel, mechanism=S3_MECHANISM)
        assert refused.status == 422
        assert "http-post-bytes" in refused.problem()
        return
    assert session["mechanisms"] == [S3_MECHANISM, "http-post-bytes"]
    wheel = make_wheel(tmp_path, "demo", "1.0")
    added = api.add(session, wheel, mechanism=S3_MECHANISM)
    assert added.status == 202, added.body
    mechanism = added.doc["mechanism"]
    assert mechanism["identifier"] == S3_MECHANISM
    assert (mechanism["part-size"], mechanism["part-count"]) == (16 * 1024 * 1024, 1)
    assert 0 < mechanism["url-expires-in"] <= 3600
    parts_url = mechanism["parts_url"]
    assert api.request("GET", parts_url).doc["parts"] == []
    urls = api.request("POST", parts_url, {"meta": META, "parts": [1]})
    assert urls.status == 200, urls.body
    [part] = urls.doc["parts"]
    assert part["number"] == 1
    # the client PUTs the bytes to the presigned URL itself, with no credentials of ours
    put = urllib.request.Request(
        part["url"],
        data=wheel.read_bytes(),
        method="PUT",
        # urllib's default is a form's type, which moto's server tries to parse
        headers={"Content-Type": "application/octet-stream"},
    )
    with urllib.request.urlopen(put) as answer:  # noqa: S310 - moto's http URL
        assert answer.status == 200
    held = api.request("GET", parts_url).doc["parts"]
    assert [(p["number"], p["size"]) for p in held] == [(1, wheel.stat().st_size)]
    assert api.complete(added.doc).status == 201
    assert api.publish(session).status == 201
    assert listed(store, "demo") == {wheel.name}
    # part numbers outside the file, or too many at once, are refused
    other = api.open("demo", "2.0")
    second = api.add(
        other, make_wheel(subdir(tmp_path, "b"), "demo", "2.0"), mechanism=S3_MECHANISM
    )
    second_parts = second.doc["mechanism"]["parts_url"]
    for numbers in ([2], [0], [], ["1"], list(range(1, 1002))):
        refused = api.request("POST", second_parts, {"meta": META, "parts": numbers})
        assert refused.status == 400, (numbers, refused.body)
        assert refused.doc["errors"][0]["source"] == "parts"


def test_http_post_bytes_is_bounded_by_what_the_front_carries(
    local_store: LocalStore, tmp_path: Path
) -> None:
    token, _ = TokenStore(local_store).create("write")
    app = build_application(local_store, max_upload_size=500)
    api = SessionClient(app, token)
    session = api.open("demo", "1.0")
    wheel = make_wheel(tmp_path, "demo", "1.0")
    assert wheel.stat().st_size > 500
    refused = api.add(session, wheel)
    assert refused.status == 422
    message = refused.problem()
    assert "500 bytes" in message and "serverless-pypi upload" in message
    assert refused.doc["errors"][0]["source"] == "mechanism"


def test_errors_are_pep_694_bodies_with_rfc_9457_members(
    local_store: LocalStore, tmp_path: Path
) -> None:
    api = client(local_store)
    # 415: a JSON body in another media type
    wrong_type = api.request(
        "POST",
        "_upload/",
        {"meta": META, "name": "demo", "version": "1"},
        content_type="application/json",
    )
    assert wrong_type.status == 415
    assert wrong_type.doc["errors"][0]["source"] == "Content-Type"
    assert MEDIA_TYPE in wrong_type.problem()
    # 400: no meta, another major version, not JSON, not an object
    for body in (
        {"name": "demo", "version": "1"},
        {"meta": {"api-version": "3.0"}, "name": "demo", "version": "1"},
    ):
        refused = api.request("POST", "_upload/", body)
        assert refused.status == 400
        assert refused.doc["errors"][0]["source"] == "meta.api-version"
        refused.problem()
    assert api.request("POST", "_upload/", raw=b"{nope").status == 400
    assert api.request("POST", "_upload/", raw=b"[]").status == 400
    # a minor version this index does not know still speaks 2.x
    assert api.create("demo", "1", meta={"api-version": "2.1"}).status == 201
    # 406: an Accept that refuses the media type
    refused = api.request("GET", "_upload/", headers={"Accept": "text/html"})
    assert refused.status == 406
    refused.problem()
    accepted = ("application/*", "*/*", MEDIA_TYPE, "application/vnd.pypi.upload.latest+json")
    for number, accept in enumerate(accepted):
        assert (
            api.request(
                "POST",
                "_upload/",
                {"meta": META, "name": "x", "version": f"{number}"},
                headers={"Accept": accept},
            ).status
            == 201
        )
    # 400: names and versions
    for name, version, source in (
        ("-bad-", "1.0", "name"),
        ("demo", "not a version", "version"),
        ("", "1", "name"),
    ):
        refused = api.create(name, version)
        assert refused.status == 400, refused.body
        assert refused.doc["errors"][0]["source"] == source
    # 404 (an unknown session) and 405 (with Allow), as JSON
    unknown = api.request("GET", "_upload/" + "a" * 26 + "/")
    assert unknown.status == 404
    unknown.problem()
    assert api.request("GET", "_upload/nonsense/deeper/still").status == 404
    wrong = api.request("GET", "_upload/")
    assert wrong.status == 405
    assert wrong.headers["Allow"] == "POST"
    wrong.problem()


def test_a_second_session_for_a_release_is_refused(store: Store, tmp_path: Path) -> None:
    api = client(store)
    first = api.open("demo", "1.0")
    again = api.create("Demo", "1.0.0")  # the same release, spelled otherwise
    assert again.status == 409
    # PEP 694: the Location of the open session, to resume it
    assert again.headers["Location"] == first["links"]["session"]
    again.problem()
    # whoever resumes it learns its stage from its status
    resumed = api.request("GET", again.headers["Location"])
    assert resumed.doc["session-token"] == first["session-token"]
    assert resumed.doc["links"]["stage"] == first["links"]["stage"]
    assert api.request("DELETE", first["links"]["session"]).status == 204
    # a canceled session's release takes a new one
    replaced = api.open("demo", "1.0")
    api.stage_file(replaced, make_wheel(tmp_path, "demo", "1.0"))
    assert api.publish(replaced).status == 201
    after = api.create("demo", "1.0")
    assert after.status == 409
    assert "Location" not in after.headers  # published: nothing to resume


def test_a_version_published_with_the_legacy_api_is_refused(
    local_store: LocalStore, tmp_path: Path
) -> None:
    api = client(local_store)
    wheel = make_wheel(tmp_path, "demo", "1.0")
    body, content_type = upload_body(wheel)
    legacy = api.request("POST", "", raw=body, content_type=content_type)
    assert legacy.status == 200, legacy.body
    refused = api.create("demo", "1.0")
    assert refused.status == 409
    assert "already published" in refused.problem()
    assert "Location" not in refused.headers
    assert api.create("demo", "1.1").status == 201


def test_file_upload_sessions_are_checked(local_store: LocalStore, tmp_path: Path) -> None:
    api = client(local_store, settings=Settings(upload_session_max_file_size=10_000))
    session = api.open("demo", "1.0")
    wheel = make_wheel(tmp_path, "demo", "1.0")
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"filename": "other-1.0-py3-none-any.whl"}, 400, "filename"),
        ({"filename": "demo-2.0-py3-none-any.whl"}, 400, "filename"),
        ({"filename": "Demo-1.0-py3-none-any.whl"}, 400, "filename"),  # not canonical
        ({"filename": "demo-1.0.zip"}, 400, "filename"),  # PEP 625
        ({"filename": "notes.txt"}, 400, "filename"),
        ({"size": 0}, 400, "size"),
        ({"size": "12"}, 400, "size"),
        ({"size": 10_001}, 413, "size"),
        ({"hashes": {"md5": "0" * 32}}, 400, "hashes"),
        ({"hashes": {"sha256": "xyz"}}, 400, "hashes.sha256"),
        ({"hashes": {"sha256": "0" * 64, "whirl": "00"}}, 400, "hashes.whirl"),
        ({"hashes": {"sha256": "0" * 64, "shake_128": "00"}}, 400, "hashes.shake_128"),
        ({"mechanism": "vnd-acmecorp-postal"}, 422, "mechanism"),
        ({"metadata": 7}, 400, "metadata"),
    ]
    good = {
        "meta": META,
        "filename": wheel.name,
        "size": wheel.stat().st_size,
        "hashes": {"sha256": sha256(wheel)},
        "mechanism": "http-post-bytes",
    }
    for change, status, source in cases:
        refused = api.request("POST", session["links"]["upload"], {**good, **change})
        assert refused.status == status, (change, refused.body)
        assert refused.doc["errors"][0]["source"] == source, change
        refused.problem()
    assert api.request("POST", session["links"]["upload"], good).status == 202
    # the same name again while it is in the session: 409 (delete it first)
    assert api.request("POST", session["links"]["upload"], good).status == 409


def test_bytes_that_do_not_match_are_refused_and_the_file_can_be_sent_again(
    store: Store, tmp_path: Path
) -> None:
    api = client(store)
    session = api.open("demo", "1.0")
    wheel = make_wheel(tmp_path, "demo", "1.0")
    data = wheel.read_bytes()
    # declared with the sha256 of other bytes (and a right md5): refused at completion
    added = api.add(
        session,
        wheel,
        hashes={
            "sha256": hashlib.sha256(b"other").hexdigest(),
            "md5": hashlib.md5(data).hexdigest(),
        },  # noqa: S324
    )
    file = added.doc
    # http-post-bytes: the declared length, as application/octet-stream
    assert api.send(file, data + b"x").status == 400
    wrong_type = api.request(
        "POST", file["mechanism"]["file_url"], raw=data, content_type="application/zip"
    )
    assert wrong_type.status == 415
    assert api.send(file, data).status == 204
    refused = api.complete(file)
    assert refused.status == 400
    assert "sha256" in refused.problem()
    status = api.request("GET", file["links"]["file-upload-session"])
    assert status.status == 200
    assert status.headers["Retry-After"] == "1"
    assert status.doc["status"] == "error"
    assert status.doc["notices"] and "sha256" in status.doc["notices"][0]
    # publishing waits for every file
    waiting = api.publish(session)
    assert waiting.status == 409
    assert wheel.name in waiting.problem()
    # the client deletes the file upload session and sends it again
    assert api.request("DELETE", file["links"]["file-upload-session"]).status == 204
    assert api.request("GET", file["links"]["file-upload-session"]).status == 404
    api.stage_file(session, wheel)
    assert api.publish(session).status == 201
    assert listed(store, "demo") == {wheel.name}


def test_complete_before_the_bytes_leaves_the_file_pending(
    local_store: LocalStore, tmp_path: Path
) -> None:
    api = client(local_store)
    session = api.open("demo", "1.0")
    sdist = make_sdist(tmp_path, "demo", "1.0")
    file = api.add(session, sdist).doc
    early = api.complete(file)
    assert early.status == 400
    assert api.request("GET", file["links"]["file-upload-session"]).doc["status"] == "pending"
    assert api.send(file, sdist.read_bytes()).status == 204
    assert api.complete(file).status == 201


def test_publish_needs_files(local_store: LocalStore) -> None:
    api = client(local_store)
    session = api.open("demo", "1.0")
    refused = api.publish(session)
    assert refused.status == 409
    assert "Nothing to publish" in refused.problem()
    # an empty body is a publish too
    assert api.request("POST", session["links"]["publish"]).status == 409


def test_canceled_and_expired_sessions_answer_404(local_store: LocalStore, tmp_path: Path) -> None:
    api = client(local_store)
    session = api.open("demo", "1.0")
    wheel = make_wheel(tmp_path, "demo", "1.0")
    file = api.add(session, wheel).doc
    assert api.send(file, wheel.read_bytes()).status == 204
    assert api.request("DELETE", session["links"]["session"]).status == 204
    urls = [
        ("GET", session["links"]["session"]),
        ("DELETE", session["links"]["session"]),
        ("POST", session["links"]["publish"]),
        ("POST", session["links"]["extend"]),
        ("POST", session["links"]["upload"]),
        ("GET", file["links"]["file-upload-session"]),
        ("POST", file["links"]["complete"]),
        ("POST", file["mechanism"]["file_url"]),
    ]
    for method, url in urls:
        answer = api.request(method, url, {"meta": META, "extend-for": 60})
        assert answer.status == 404, (method, url)
        answer.problem()
    # the staged bytes are gone
    assert not list(
        local_store.list(layout.session_prefix(route_of(session["links"]["session"]).split("/")[1]))
    )
    # expiry: the document says when; past it, every URL answers 404
    other = api.open("demo", "2.0")
    sid = route_of(other["links"]["session"]).split("/")[1]
    key = layout.session_key(sid)
    document = json.loads(local_store.get(key).data)
    document["expires"] = "2020-01-01T00:00:00Z"
    local_store.put(key, json.dumps(document).encode())
    assert api.status(other).status == 404
    assert api.create("demo", "2.0").status == 201  # an expired session's release is free


def test_extend_never_shortens_and_stops_at_seven_days(
    local_store: LocalStore, tmp_path: Path
) -> None:
    api = client(local_store, settings=Settings(upload_session_ttl=3600))
    session = api.open("demo", "1.0")
    before = session["expires-at"]
    extended = api.request("POST", session["links"]["extend"], {"meta": META, "extend-for": 7200})
    assert extended.status == 200
    assert extended.doc["expires-at"] > before
    same = api.request("POST", session["links"]["extend"], {"meta": META, "extend-for": 0})
    assert same.doc["expires-at"] == extended.doc["expires-at"]
    longest = api.request(
        "POST", session["links"]["extend"], {"meta": META, "extend-for": 30 * 86400}
    )
    assert longest.status == 200
    assert longest.doc["expires-at"] > extended.doc["expires-at"]
    for body in (
        {"meta": META},
        {"meta": META, "extend-for": -1},
        {"meta": META, "extend-for": True},
    ):
        refused = api.request("POST", session["links"]["extend"], body)
        assert refused.status == 400
        assert refused.doc["errors"][0]["source"] == "extend-for"
    file = api.add(session, make_wheel(tmp_path, "demo", "1.0")).doc
    file_extended = api.request("POST", file["links"]["extend"], {"meta": META, "extend-for": 60})
    assert file_extended.status == 200
    assert file_extended.doc["expires-at"] == longest.doc["expires-at"]


def test_every_request_is_authorized_for_the_project(store: Store, tmp_path: Path) -> None:
    tokens = TokenStore(store)
    app = build_application(store)
    owner, _ = tokens.create("write", ["demo"])
    api = SessionClient(app, owner)
    session = api.open("demo", "1.0")
    file = api.add(session, make_wheel(tmp_path, "demo", "1.0")).doc
    other, _ = tokens.create("write", ["other"])
    reader, _ = tokens.create("read")
    urls = [
        ("GET", session["links"]["session"]),
        ("DELETE", session["links"]["session"]),
        ("POST", session["links"]["publish"]),
        ("POST", session["links"]["upload"]),
        ("GET", file["links"]["file-upload-session"]),
        ("POST", file["mechanism"]["file_url"]),
    ]
    for token in (None, other, reader, "pypi-nonsense"):
        for method, url in urls:
            refused = api.request(method, url, {"meta": META}, token=token)
            assert refused.status == 403, (token, method, url)
            refused.problem()
        assert api.create("demo", "2.0", token=token).status == 403
    # a token made after the session may join it (PEP 694: not tied to its creator); a new
    # front, as the token cache of this one has just looked for unknown tokens
    newcomer, record = tokens.create("write", ["dem*"])
    joined = SessionClient(build_application(store), newcomer)
    assert joined.status(session).status == 200
    assert joined.publish(session).status == 409  # authorized: the file is not complete yet
    # a token revoked meanwhile is refused at its next request (of a front that reads anew)
    tokens.revoke([record.id])
    assert SessionClient(build_application(store), newcomer).status(session).status == 403


def test_a_trusted_publishing_token_opens_sessions(local_store: LocalStore, tmp_path: Path) -> None:
    minted, _ = TokenStore(local_store).create("write", ["demo"], publisher="github-acme-demo")
    api = SessionClient(build_application(local_store), minted)
    session = api.open("demo", "1.0")
    api.stage_file(session, make_wheel(tmp_path, "demo", "1.0"))
    assert api.publish(session).status == 201


@pytest.mark.parametrize("status", ["archived", "quarantined"])
def test_a_closed_project_takes_no_session(local_store: LocalStore, status: str) -> None:
    api = client(local_store)
    PolicyWriter(local_store).update(
        lambda p: Policy(statuses={NormalizedName("demo"): ProjectStatus(status, "frozen")})
    )
    refused = api.create("demo", "1.0")
    assert refused.status == 403
    assert "PEP 792" in refused.problem()


def test_a_closed_project_is_refused_at_publish(local_store: LocalStore, tmp_path: Path) -> None:
    api = client(local_store)
    session = api.open("demo", "1.0")
    api.stage_file(session, make_wheel(tmp_path, "demo", "1.0"))
    PolicyWriter(local_store).update(
        lambda p: Policy(statuses={NormalizedName("demo"): ProjectStatus("archived")})
    )
    assert api.publish(session).status == 403
    assert listed(local_store, "demo") == set()
    PolicyWriter(local_store).update(lambda p: Policy())
    assert api.publish(session).status == 201  # the session stayed pending: it resumes


def test_a_read_only_index_has_no_session_api(local_store: LocalStore) -> None:
    token, _ = TokenStore(local_store).create("write")
    api = SessionClient(build_application(local_store, uploads=False), token)
    # the client falls back to the legacy API on 404/405/406/415 at the session root
    assert api.create("demo", "1.0").status == 405


def test_namespaces_and_required_attestations_apply_at_create(local_store: LocalStore) -> None:
    tokens = TokenStore(local_store)
    narrow, _ = tokens.create("write", ["acme-core"])
    whole, _ = tokens.create("write", ["acme-*"])
    anything, _ = tokens.create("write")
    PolicyWriter(local_store).update(lambda p: Policy(namespaces=("acme",)))
    app = build_application(local_store, Settings(policy_ttl=0.001))
    refused = SessionClient(app, narrow).create("acme-core", "1.0")
    assert refused.status == 409  # PEP 752: the token must cover the whole namespace
    assert "namespace" in refused.problem()
    assert SessionClient(app, whole).create("acme-core", "1.0").status == 201
    # PEP 740: a session carries attestations (attestations_url), so a project that requires
    # them takes a session; its publish checks them (tests/contract/test_session_attestations)
    PolicyWriter(local_store).update(lambda p: Policy(attestations=("demo",)))
    assert SessionClient(app, anything).create("demo", "1.0").status == 201
