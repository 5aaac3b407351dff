"""Upload 2.0 (PEP 694) sessions over every store: sessions, staged files, verification,
S3 multipart through presigned URLs, atomic publish, cancel and expiry."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import threading
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from serverless_pypi.core.errors import Conflict, InvalidRequest, NoSuchPath
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.index.housekeeping import sweep
from serverless_pypi.index.indexer import Indexer
from serverless_pypi.index.publish import FileExists, publish
from serverless_pypi.index.sessions import (
    HTTP_POST_BYTES,
    S3_MULTIPART,
    SessionConflict,
    Sessions,
    UnsupportedMechanism,
)
from serverless_pypi.storage import NotFound, ObjectInfo, Store, StoreError
from tests.helpers.dists import make_blob_wheel, make_sdist, make_wheel, subdir

NAME = NormalizedName("demo-pkg")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sessions(store: Store, clock: Clock) -> Sessions:
    return Sessions(store, ttl=3600, max_file_size=1024**3, clock=clock)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _staged(sessions: Sessions, sid: str, path: Path, *, mechanism: str = HTTP_POST_BYTES) -> None:
    """Add, upload (http-post-bytes) and complete the file at `path`."""
    data = path.read_bytes()
    sessions.add_file(sid, path.name, len(data), {"sha256": _sha256(data)}, mechanism)
    sessions.put_bytes(sid, path.name, io.BytesIO(data), len(data))
    assert sessions.complete_file(sid, path.name).status == "complete"


def _listed(store: Store) -> set[str]:
    """The files the project's JSON page lists (what a client sees)."""
    try:
        page = json.loads(gzip.decompress(store.get(layout.page_key(NAME, json=True)).data))
    except NotFound:
        return set()
    return {f["filename"] for f in page["files"]}


def _release(tmp_path: Path, version: str = "1.0") -> list[Path]:
    wheel = make_wheel(tmp_path, NAME, version, requires_python=">=3.9")
    sdist = make_sdist(tmp_path, NAME, version)
    return [wheel, sdist]


# -- publishing sessions --------------------------------------------------------------------


def test_create_normalizes_and_a_second_session_of_the_release_conflicts(
    sessions: Sessions,
) -> None:
    session, token = sessions.create("Demo_Pkg", "1.0.0")
    assert (session.name, session.version, session.status) == (NAME, "1.0.0", "pending")
    assert token.startswith(session.id + ".") and len(session.id) == 26
    assert sessions.get(session.id) == session
    assert sessions.by_token(token).id == session.id
    # the same release under another spelling of its version (PEP 440: 1.0 == 1.0.0)
    with pytest.raises(SessionConflict) as refused:
        sessions.create("demo.pkg", "1.0")
    assert refused.value.session_id == session.id
    # the token is kept with the session (PEP 694: the status shows it again to whoever may
    # upload), and a wrong secret finds no stage
    assert sessions.get(session.id).token == token
    with pytest.raises(NoSuchPath):
        sessions.by_token(session.id + ".wrong-secret")


def test_a_dead_session_is_replaced(sessions: Sessions, clock: Clock) -> None:
    first, _ = sessions.create(NAME, "1.0")
    sessions.cancel(first.id)
    with pytest.raises(NoSuchPath):
        sessions.get(first.id)
    second, _ = sessions.create(NAME, "1.0")
    clock.now += timedelta(hours=2)  # expired
    third, _ = sessions.create(NAME, "1.0")
    assert len({first.id, second.id, third.id}) == 3
    with pytest.raises(NoSuchPath):
        sessions.get(second.id)


def test_a_version_already_on_the_page_takes_no_session(sessions: Sessions, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, NAME, "1.0")
    with wheel.open("rb") as file:
        publish(Catalog(sessions.store), file, wheel.name)
    with pytest.raises(SessionConflict) as refused:
        sessions.create(NAME, "1.0.0")
    assert refused.value.session_id == ""  # no session to point to
    sessions.create(NAME, "1.1")  # another version is fine


@pytest.mark.parametrize("version", ["", "one", "1.0-foo-bar", "1..0"])
def test_an_invalid_version_is_refused(sessions: Sessions, version: str) -> None:
    with pytest.raises(InvalidRequest, match="not a valid version"):
        sessions.create(NAME, version)


def test_extend_is_bounded_by_seven_days_and_never_shortens(
    sessions: Sessions, clock: Clock
) -> None:
    session, _ = sessions.create(NAME, "1.0")
    longer = sessions.extend(session.id, 7200)
    assert longer.expires == "2026-12-01T15:00:00Z"
    assert sessions.extend(session.id, 0).expires == longer.expires
    most = sessions.extend(session.id, 30 * 86400)
    assert most.expires == "2026-12-08T12:00:00Z"
    with pytest.raises(InvalidRequest):
        sessions.extend(session.id, -5)


# -- file upload sessions -------------------------------------------------------------------


def test_files_are_checked_when_declared(sessions: Sessions, tmp_path: Path) -> None:
    session, _ = sessions.create(NAME, "1.0")
    sid = session.id
    sha = "0" * 64
    with pytest.raises(InvalidRequest, match="not of this session's release"):
        sessions.add_file(sid, "demo_pkg-2.0.tar.gz", 10, {"sha256": sha}, HTTP_POST_BYTES)
    with pytest.raises(InvalidRequest, match="spelled"):
        sessions.add_file(sid, "Demo_Pkg-1.0.tar.gz", 10, {"sha256": sha}, HTTP_POST_BYTES)
    with pytest.raises(InvalidRequest, match="size"):
        sessions.add_file(sid, "demo_pkg-1.0.tar.gz", 0, {"sha256": sha}, HTTP_POST_BYTES)
    with pytest.raises(InvalidRequest, match="UPLOAD_SESSION_MAX_FILE_SIZE"):
        sessions.add_file(sid, "demo_pkg-1.0.tar.gz", 2 * 1024**3, {"sha256": sha}, HTTP_POST_BYTES)
    with pytest.raises(InvalidRequest, match="sha256 is required"):
        sessions.add_file(sid, "demo_pkg-1.0.tar.gz", 10, {"md5": "0" * 32}, HTTP_POST_BYTES)
    with pytest.raises(InvalidRequest, match="hexadecimal"):
        sessions.add_file(sid, "demo_pkg-1.0.tar.gz", 10, {"sha256": "abc"}, HTTP_POST_BYTES)
    with pytest.raises(UnsupportedMechanism):
        sessions.add_file(sid, "demo_pkg-1.0.tar.gz", 10, {"sha256": sha}, "vnd-acme-postal")
    sessions.add_file(sid, "demo_pkg-1.0.tar.gz", 10, {"sha256": sha}, HTTP_POST_BYTES)
    with pytest.raises(Conflict, match="in the session already"):
        sessions.add_file(sid, "demo_pkg-1.0.tar.gz", 10, {"sha256": sha}, HTTP_POST_BYTES)


def test_a_published_file_name_is_refused_at_creation(sessions: Sessions, tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, NAME, "1.0")
    session, _ = sessions.create(NAME, "1.0")
    with sdist.open("rb") as file:
        publish(Catalog(sessions.store), file, sdist.name)
    data = sdist.read_bytes()
    with pytest.raises(Conflict, match="File already exists"):
        sessions.add_file(
            session.id, sdist.name, len(data), {"sha256": _sha256(data)}, HTTP_POST_BYTES
        )


def test_complete_verifies_size_and_every_hash(sessions: Sessions, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, NAME, "1.0")
    data = wheel.read_bytes()
    session, _ = sessions.create(NAME, "1.0")
    sid = session.id
    declared = {"sha256": _sha256(data), "blake2b": hashlib.blake2b(b"other").hexdigest()}
    sessions.add_file(sid, wheel.name, len(data), declared, HTTP_POST_BYTES)
    with pytest.raises(InvalidRequest, match="no bytes"):
        sessions.complete_file(sid, wheel.name)  # nothing uploaded yet: stays pending
    assert sessions.get(sid).files[wheel.name].status == "pending"
    with pytest.raises(InvalidRequest, match="body has"):
        sessions.put_bytes(sid, wheel.name, io.BytesIO(data + b"x"), len(data) + 1)
    sessions.put_bytes(sid, wheel.name, io.BytesIO(data), len(data))
    with pytest.raises(InvalidRequest, match="blake2b"):
        sessions.complete_file(sid, wheel.name)
    failed = sessions.get(sid).files[wheel.name]
    assert failed.status == "error" and failed.problem and "blake2b" in failed.problem
    assert sessions.store.find(sessions.staged_key(sid, wheel.name)) is None  # bytes deleted
    assert sessions.get(sid).status == "pending"  # the session stays usable
    with pytest.raises(Conflict):
        sessions.put_bytes(sid, wheel.name, io.BytesIO(data), len(data))
    sessions.remove_file(sid, wheel.name)
    _staged(sessions, sid, wheel)
    done = sessions.get(sid).files[wheel.name]
    assert done.metadata_sha256 and done.completed
    assert sessions.complete_file(sid, wheel.name) == done  # repeated: the same answer


def test_a_body_of_other_bytes_than_declared_is_refused(sessions: Sessions, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, NAME, "1.0")
    data = wheel.read_bytes()
    session, _ = sessions.create(NAME, "1.0")
    sessions.add_file(session.id, wheel.name, len(data), {"sha256": _sha256(data)}, HTTP_POST_BYTES)
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    sessions.put_bytes(session.id, wheel.name, io.BytesIO(tampered), len(data))
    with pytest.raises(InvalidRequest, match="sha256"):
        sessions.complete_file(session.id, wheel.name)


def test_a_file_that_is_no_distribution_is_refused(sessions: Sessions) -> None:
    data = b"not a zip archive at all"
    name = "demo_pkg-1.0-py3-none-any.whl"
    session, _ = sessions.create(NAME, "1.0")
    sessions.add_file(session.id, name, len(data), {"sha256": _sha256(data)}, HTTP_POST_BYTES)
    sessions.put_bytes(session.id, name, io.BytesIO(data), len(data))
    with pytest.raises(InvalidRequest, match="refused"):
        sessions.complete_file(session.id, name)
    assert sessions.get(session.id).files[name].status == "error"


# -- publish --------------------------------------------------------------------------------


def test_publish_needs_complete_files(sessions: Sessions, tmp_path: Path) -> None:
    session, _ = sessions.create(NAME, "1.0")
    with pytest.raises(Conflict, match="Nothing to publish"):
        sessions.publish(session.id)
    wheel, sdist = _release(tmp_path)
    _staged(sessions, session.id, wheel)
    data = sdist.read_bytes()
    sessions.add_file(session.id, sdist.name, len(data), {"sha256": _sha256(data)}, HTTP_POST_BYTES)
    with pytest.raises(Conflict, match="not complete"):
        sessions.publish(session.id)
    assert sessions.get(session.id).status == "pending"


def test_publish_lists_every_file_at_once_and_cleans_up(sessions: Sessions, tmp_path: Path) -> None:
    store = sessions.store
    files = _release(tmp_path)
    session, token = sessions.create(NAME, "1.0")
    for path in files:
        _staged(sessions, session.id, path)
    assert _listed(store) == set()  # staged files are not on the page
    names = {p.name for p in files}
    seen: list[set[str]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            seen.append(_listed(store) & names)

    # an S3 event for each copy, indexed as soon as it is there (before the manifest update)
    indexer = Indexer(store)
    outcomes = []
    original = store.copy

    def copy_and_index(source: str, destination: str, *, if_none_match: bool = False) -> ObjectInfo:
        info = original(source, destination, if_none_match=if_none_match)
        outcomes.append(indexer.index_key(destination))
        seen.append(_listed(store) & names)
        return info

    store.copy = copy_and_index  # type: ignore[method-assign]
    poller = threading.Thread(target=poll)
    poller.start()
    try:
        published, results = sessions.publish(session.id)
    finally:
        stop.set()
        poller.join()
    assert published.status == "complete" and published.published
    assert {r.filename for r in results} == names and {r.status for r in results} == {"created"}
    assert [o.reason for o in outcomes] == ["its release is being published"] * 2
    assert all(s in (set(), names) for s in seen), "a reader saw part of the release"
    assert _listed(store) == names
    index, _ = Catalog(store).read_project(NAME)
    wheel = index.files[files[0].name]
    assert wheel.requires_python == ">=3.9" and wheel.metadata_sha256
    assert store.find(layout.metadata_key(NAME, files[0].name)) is not None
    assert list(store.list(layout.session_prefix(session.id))) == []  # staged objects gone
    assert list(store.list(layout.PUBLISHING)) == []  # the marker too
    with pytest.raises(NoSuchPath):
        sessions.by_token(token)  # the stage is gone once published
    assert sessions.get(session.id).status == "complete"
    assert Indexer(store).reindex(check=True).drift is False  # what a reindex would write


def test_a_conflict_at_publish_undoes_its_copies(sessions: Sessions, tmp_path: Path) -> None:
    store = sessions.store
    wheel, sdist = _release(tmp_path)
    session, _ = sessions.create(NAME, "1.0")
    for path in (wheel, sdist):
        _staged(sessions, session.id, path)
    # other bytes under the sdist's name, not indexed (copied into the store by hand)
    foreign = make_sdist(subdir(tmp_path, "other"), NAME, "1.0", requires_python=">=3.12")
    store.put(layout.distribution_key(NAME, sdist.name), foreign.read_bytes())
    with pytest.raises(FileExists):
        sessions.publish(session.id)
    assert store.find(layout.distribution_key(NAME, wheel.name)) is None  # the copy undone
    assert list(store.list(layout.PUBLISHING)) == []
    assert _listed(store) == set()
    assert sessions.get(session.id).status == "pending"  # editable again
    # the session can drop the conflicting file and publish the rest
    sessions.remove_file(session.id, sdist.name)
    sessions.publish(session.id)
    assert wheel.name in _listed(store)


def test_a_publish_that_fails_before_the_manifest_lists_nothing_and_resumes(
    sessions: Sessions, tmp_path: Path
) -> None:
    store = sessions.store
    files = _release(tmp_path)
    session, _ = sessions.create(NAME, "1.0")
    for path in files:
        _staged(sessions, session.id, path)
    catalog = sessions.catalog
    real = catalog.update_project

    def crash(*args: object, **kwargs: object) -> None:
        raise StoreError("injected: the store failed before the manifest update")

    catalog.update_project = crash  # type: ignore[assignment, method-assign]
    with pytest.raises(StoreError, match="injected"):
        sessions.publish(session.id)
    catalog.update_project = real  # type: ignore[method-assign]
    for path in files:  # the copies are there, unlisted, and the indexer leaves them
        key = layout.distribution_key(NAME, path.name)
        assert store.find(key) is not None
        assert Indexer(store).index_key(key).action == "skipped"
    Indexer(store).reindex()
    assert _listed(store) == set()
    assert sessions.get(session.id).status == "pending"
    published, results = sessions.publish(session.id)  # again: resumes
    assert published.status == "complete"
    assert {r.status for r in results} == {"exists"}  # the copies were in place
    assert _listed(store) == {p.name for p in files}


# -- cancel and expiry ----------------------------------------------------------------------


def test_cancel_deletes_staged_objects(sessions: Sessions, tmp_path: Path) -> None:
    store = sessions.store
    session, token = sessions.create(NAME, "1.0")
    for path in _release(tmp_path):
        _staged(sessions, session.id, path)
    assert list(store.list(layout.session_prefix(session.id)))
    sessions.cancel(session.id)
    assert list(store.list(layout.session_prefix(session.id))) == []
    for call in (
        lambda: sessions.get(session.id),
        lambda: sessions.by_token(token),
        lambda: sessions.cancel(session.id),
        lambda: sessions.extend(session.id, 60),
    ):
        with pytest.raises(NoSuchPath):
            call()


def test_the_sweep_cleans_expired_sessions(
    sessions: Sessions, clock: Clock, tmp_path: Path
) -> None:
    store = sessions.store
    wheel, sdist = _release(tmp_path)
    old, _ = sessions.create(NAME, "1.0")
    _staged(sessions, old.id, wheel)
    live, _ = sessions.create(NAME, "2.0")
    clock.now += timedelta(minutes=30)
    live = sessions.extend(live.id, 3600)
    clock.now += timedelta(minutes=40)  # `old` expired, `live` not
    checked = sessions.sweep(check=True)
    assert layout.session_key(old.id) in checked
    assert sessions.staged_key(old.id, wheel.name) in checked
    assert store.find(layout.session_key(old.id)) is not None  # a check deletes nothing
    swept = sweep(store, check=False, clock=clock.now.timestamp)
    assert sorted(swept.sessions) == sorted(checked)
    assert store.find(layout.session_key(old.id)) is None
    assert list(store.list(layout.session_prefix(old.id))) == []
    assert sessions.get(live.id).id == live.id
    assert sessions.sweep(check=True) == []


def test_the_sweep_undoes_a_publish_its_dead_session_left(
    sessions: Sessions, clock: Clock, tmp_path: Path
) -> None:
    store = sessions.store
    files = _release(tmp_path)
    session, _ = sessions.create(NAME, "1.0")
    for path in files:
        _staged(sessions, session.id, path)
    catalog = sessions.catalog

    def crash(*args: object, **kwargs: object) -> None:
        raise StoreError("injected")

    catalog.update_project = crash  # type: ignore[assignment, method-assign]
    with pytest.raises(StoreError):
        sessions.publish(session.id)
    del catalog.update_project
    clock.now += timedelta(days=1)  # the session expired without a second publish
    swept = sessions.sweep(check=False)
    for path in files:
        assert layout.distribution_key(NAME, path.name) in swept
        assert store.find(layout.distribution_key(NAME, path.name)) is None
    assert list(store.list(layout.PUBLISHING)) == []
    Indexer(store).reindex()
    assert _listed(store) == set()


# -- S3: multipart uploads through presigned part URLs ----------------------------------------


@pytest.fixture(params=["s3_store", "light_s3_store"])
def s3_sessions(request: pytest.FixtureRequest, clock: Clock) -> Sessions:
    """Sessions over S3 (moto), through both clients: the mechanism needs multipart."""
    store: Store = request.getfixturevalue(request.param)
    return Sessions(store, ttl=3600, max_file_size=5 * 1024**3, clock=clock)


def _put(url: str, data: bytes) -> str:
    # a Content-Type of its own: urllib's default (a form) makes moto parse the body as one
    request = urllib.request.Request(
        url, data=data, method="PUT", headers={"Content-Type": "application/octet-stream"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 -- a test's own URL
        return str(answer.headers["ETag"])


def _upload_parts(
    sessions: Sessions,
    sid: str,
    filename: str,
    data: bytes,
    tamper: Callable[[int, bytes], bytes] = lambda n, b: b,
) -> None:
    file = sessions.get(sid).files[filename]
    numbers = list(range(1, file.part_count + 1))
    for number, url in sessions.part_urls(sid, filename, numbers, 3600):
        chunk = data[(number - 1) * file.part_size : number * file.part_size]
        _put(url, tamper(number, chunk))


def test_local_store_offers_only_http_post_bytes(local_store: Store) -> None:
    sessions = Sessions(local_store, ttl=60, max_file_size=100)
    assert sessions.mechanisms() == [HTTP_POST_BYTES]
    session, _ = sessions.create(NAME, "1.0")
    with pytest.raises(UnsupportedMechanism):
        sessions.add_file(session.id, "demo_pkg-1.0.tar.gz", 10, {"sha256": "0" * 64}, S3_MULTIPART)


def test_s3_multipart_upload_through_presigned_urls(s3_sessions: Sessions, tmp_path: Path) -> None:
    sessions = s3_sessions
    assert sessions.mechanisms() == [S3_MULTIPART, HTTP_POST_BYTES]
    wheel = make_blob_wheel(tmp_path, NAME, "1.0", 20 * 1024 * 1024)
    data = wheel.read_bytes()
    session, _ = sessions.create(NAME, "1.0")
    file = sessions.add_file(
        session.id, wheel.name, len(data), {"sha256": _sha256(data)}, S3_MULTIPART
    )
    assert (file.part_size, file.part_count) == (16 * 1024 * 1024, 2)
    with pytest.raises(InvalidRequest):
        sessions.part_urls(session.id, wheel.name, [3], 3600)
    [(number, url)] = sessions.part_urls(session.id, wheel.name, [1], 3600)
    assert number == 1
    _put(url, data[: file.part_size])
    with pytest.raises(InvalidRequest, match="parts 2 of 2"):
        sessions.complete_file(session.id, wheel.name)  # resumable: part 2 missing
    [(number, size, _etag)] = sessions.parts(session.id, wheel.name)
    assert (number, size) == (1, file.part_size)
    [(number, url)] = sessions.part_urls(session.id, wheel.name, [2], 3600)
    assert number == 2
    _put(url, data[file.part_size :])
    assert sessions.complete_file(session.id, wheel.name).status == "complete"
    published, _ = sessions.publish(session.id)
    assert published.status == "complete"
    key = layout.distribution_key(NAME, wheel.name)
    with sessions.store.open(key) as stream:
        assert _sha256(stream.read()) == _sha256(data)
    assert wheel.name in _listed(sessions.store)


def test_s3_tampered_part_is_refused_and_the_upload_aborted(
    s3_sessions: Sessions, tmp_path: Path
) -> None:
    sessions = s3_sessions
    sdist = make_sdist(tmp_path, NAME, "1.0")
    data = sdist.read_bytes()
    session, _ = sessions.create(NAME, "1.0")
    file = sessions.add_file(
        session.id, sdist.name, len(data), {"sha256": _sha256(data)}, S3_MULTIPART
    )
    _upload_parts(sessions, session.id, sdist.name, data, lambda n, b: bytes(len(b)))
    with pytest.raises(InvalidRequest, match="sha256"):
        sessions.complete_file(session.id, sdist.name)
    assert sessions.get(session.id).files[sdist.name].status == "error"
    assert sessions.store.find(sessions.staged_key(session.id, sdist.name)) is None
    with pytest.raises(NotFound):
        assert file.upload_id
        sessions.store.list_parts(sessions.staged_key(session.id, sdist.name), file.upload_id)
    # delete and upload again
    sessions.remove_file(session.id, sdist.name)
    sessions.add_file(session.id, sdist.name, len(data), {"sha256": _sha256(data)}, S3_MULTIPART)
    _upload_parts(sessions, session.id, sdist.name, data)
    assert sessions.complete_file(session.id, sdist.name).status == "complete"


def test_s3_part_of_the_wrong_size_fails_the_file(s3_sessions: Sessions, tmp_path: Path) -> None:
    sessions = s3_sessions
    sdist = make_sdist(tmp_path, NAME, "1.0")
    data = sdist.read_bytes()
    session, _ = sessions.create(NAME, "1.0")
    sessions.add_file(session.id, sdist.name, len(data), {"sha256": _sha256(data)}, S3_MULTIPART)
    _upload_parts(sessions, session.id, sdist.name, data, lambda n, b: b + b"extra")
    with pytest.raises(InvalidRequest, match="size: part 1"):
        sessions.complete_file(session.id, sdist.name)


def test_s3_expired_session_aborts_its_multipart_upload(
    s3_sessions: Sessions, clock: Clock, tmp_path: Path
) -> None:
    sessions = s3_sessions
    sdist = make_sdist(tmp_path, NAME, "1.0")
    data = sdist.read_bytes()
    session, _ = sessions.create(NAME, "1.0")
    file = sessions.add_file(
        session.id, sdist.name, len(data), {"sha256": _sha256(data)}, S3_MULTIPART
    )
    _upload_parts(sessions, session.id, sdist.name, data)
    clock.now += timedelta(hours=2)
    sessions.sweep(check=False)
    assert file.upload_id
    with pytest.raises(NotFound):
        sessions.store.list_parts(sessions.staged_key(session.id, sdist.name), file.upload_id)
    assert sessions.find(session.id) is None


# -- the store's copy ---------------------------------------------------------------------------


def test_copy_if_none_match_refuses_an_existing_destination(store: Store) -> None:
    store.put("a/src", b"source bytes")
    info = store.copy("a/src", "b/dst", if_none_match=True)
    assert info.size == len(b"source bytes") and info.key == "b/dst"
    assert store.get("b/dst").data == b"source bytes"
    from serverless_pypi.storage import PreconditionFailed

    with pytest.raises(PreconditionFailed):
        store.copy("a/src", "b/dst", if_none_match=True)
    store.put("a/src2", b"other")
    store.copy("a/src2", "b/dst")  # unconditional: replaces
    assert store.get("b/dst").data == b"other"
    with pytest.raises(NotFound):
        store.copy("a/missing", "b/new", if_none_match=True)


def test_s3_complete_resumes_after_the_upload_was_joined(
    s3_sessions: Sessions, tmp_path: Path
) -> None:
    """A complete that stopped after joining the parts (before verifying) is repeated."""
    sessions = s3_sessions
    sdist = make_sdist(tmp_path, NAME, "1.0")
    data = sdist.read_bytes()
    session, _ = sessions.create(NAME, "1.0")
    file = sessions.add_file(
        session.id, sdist.name, len(data), {"sha256": _sha256(data)}, S3_MULTIPART
    )
    _upload_parts(sessions, session.id, sdist.name, data)
    key = sessions.staged_key(session.id, sdist.name)
    assert file.upload_id
    parts = sessions.store.list_parts(key, file.upload_id)
    sessions.store.complete_multipart(key, file.upload_id, [(p.number, p.etag) for p in parts])
    assert sessions.complete_file(session.id, sdist.name).status == "complete"


def test_s3_conditional_copy_is_decided_by_s3_itself(
    s3_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy's If-None-Match holds even when the destination appears after the store
    looked (moto checks it on CompleteMultipartUpload, as S3 does)."""
    from serverless_pypi.storage import PreconditionFailed

    s3_store.put("a/src", b"source bytes")
    s3_store.put("b/dst", b"already there")
    monkeypatch.setattr(s3_store, "find", lambda key: None)  # the look missed it
    with pytest.raises(PreconditionFailed):
        s3_store.copy("a/src", "b/dst", if_none_match=True)
    assert s3_store.get("b/dst").data == b"already there"


def test_a_large_file_is_inspected_through_ranged_reads(
    sessions: Sessions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past SPOOL_IN_MEMORY the bytes are neither held nor spooled to /tmp: the inspection
    reads ranges of the staged object (the wheel's central directory and METADATA)."""
    import serverless_pypi.index.session_verification as module

    monkeypatch.setattr(module, "SPOOL_IN_MEMORY", 1024)
    reads: list[tuple[int, int]] = []
    real = sessions.store.read_range

    def counted(key: str, start: int, length: int, *, if_match: str | None = None) -> bytes:
        reads.append((start, length))
        return real(key, start, length, if_match=if_match)

    monkeypatch.setattr(sessions.store, "read_range", counted)
    wheel = make_blob_wheel(tmp_path, NAME, "1.0", 3 * 1024 * 1024)
    sdist = make_sdist(tmp_path, NAME, "1.0")
    session, _ = sessions.create(NAME, "1.0")
    for path in (wheel, sdist):
        _staged(sessions, session.id, path)
        assert sessions.get(session.id).files[path.name].metadata_sha256
    assert reads and sum(length for _s, length in reads) < 3 * 1024 * 1024


def test_read_range(store: Store) -> None:
    store.put("a/x", b"0123456789")
    etag = store.head("a/x").etag
    assert store.read_range("a/x", 2, 3) == b"234"
    assert store.read_range("a/x", 8, 10, if_match=etag) == b"89"
    assert store.read_range("a/x", 10, 5) == b""
    from serverless_pypi.storage import PreconditionFailed

    with pytest.raises(PreconditionFailed):
        store.read_range("a/x", 0, 1, if_match='"other"')
    with pytest.raises(NotFound):
        store.read_range("a/missing", 0, 1)


def test_a_legacy_upload_of_a_name_being_published_waits(
    sessions: Sessions, tmp_path: Path
) -> None:
    """PEP 694: the names of a release being published are reserved for it (either API)."""
    store = sessions.store
    wheel, sdist = _release(tmp_path)
    session, _ = sessions.create(NAME, "1.0")
    for path in (wheel, sdist):
        _staged(sessions, session.id, path)
    catalog = sessions.catalog

    def crash(*args: object, **kwargs: object) -> None:
        raise StoreError("injected")

    catalog.update_project = crash  # type: ignore[assignment, method-assign]
    with pytest.raises(StoreError):
        sessions.publish(session.id)
    del catalog.update_project
    with wheel.open("rb") as file, pytest.raises(Conflict, match="being published"):
        publish(Catalog(store), file, wheel.name)
    assert _listed(store) == set()  # the same bytes did not slip in alone
    sessions.publish(session.id)
    with wheel.open("rb") as file:
        assert publish(Catalog(store), file, wheel.name).status == "exists"


def test_a_session_holds_a_bounded_number_of_files(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import serverless_pypi.index.session_files as module

    monkeypatch.setattr(module, "MAX_FILES", 1)
    sessions = Sessions(local_store, ttl=60, max_file_size=100)
    session, _ = sessions.create(NAME, "1.0")
    sha = {"sha256": "0" * 64}
    sessions.add_file(session.id, "demo_pkg-1.0.tar.gz", 10, sha, HTTP_POST_BYTES)
    with pytest.raises(InvalidRequest, match="at most 1 files"):
        sessions.add_file(session.id, "demo_pkg-1.0-py3-none-any.whl", 10, sha, HTTP_POST_BYTES)


def test_an_extension_during_verification_does_not_fail_the_file(
    sessions: Sessions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdist = make_sdist(tmp_path, NAME, "1.0")
    data = sdist.read_bytes()
    session, _ = sessions.create(NAME, "1.0")
    sessions.add_file(session.id, sdist.name, len(data), {"sha256": _sha256(data)}, HTTP_POST_BYTES)
    sessions.put_bytes(session.id, sdist.name, io.BytesIO(data), len(data))
    verify = sessions._verify

    def slow(*args: Any) -> Any:
        sessions.extend(session.id, 600)  # another request, while the file is read
        return verify(*args)

    monkeypatch.setattr(sessions, "_verify", slow)
    done = sessions.complete_file(session.id, sdist.name)
    assert done.status == "complete"
    assert done.expires == sessions.get(session.id).expires == "2026-12-01T13:10:00Z"


def test_of_racing_creates_of_one_release_exactly_one_wins(sessions: Sessions) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def create() -> None:
        barrier.wait()
        try:
            outcomes.append(sessions.create(NAME, "1.0")[0].id)
        except SessionConflict as e:
            outcomes.append("conflict:" + e.session_id)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [o for o in outcomes if not o.startswith("conflict:")]
    assert len(won) == 1, outcomes
    assert all(o == f"conflict:{won[0]}" for o in outcomes if o not in won), outcomes


def test_files_added_at_once_are_all_kept(sessions: Sessions) -> None:
    session, _ = sessions.create(NAME, "1.0")
    names = [f"demo_pkg-1.0-cp3{i}-cp3{i}-manylinux_2_28_x86_64.whl" for i in range(10, 14)]
    barrier = threading.Barrier(len(names))

    def add(name: str) -> None:
        barrier.wait()
        sessions.add_file(session.id, name, 10, {"sha256": "0" * 64}, HTTP_POST_BYTES)

    threads = [threading.Thread(target=add, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(sessions.get(session.id).files) == sorted(names)


def test_a_resumed_publish_follows_the_files_the_session_has_now(
    sessions: Sessions, tmp_path: Path
) -> None:
    """After a failed publish the session is editable: a file dropped then is not published
    (its copy goes), a file added then is."""
    store = sessions.store
    wheel, sdist = _release(tmp_path)
    session, _ = sessions.create(NAME, "1.0")
    for path in (wheel, sdist):
        _staged(sessions, session.id, path)
    catalog = sessions.catalog

    def crash(*args: object, **kwargs: object) -> None:
        raise StoreError("injected")

    catalog.update_project = crash  # type: ignore[assignment, method-assign]
    with pytest.raises(StoreError):
        sessions.publish(session.id)
    del catalog.update_project
    sessions.remove_file(session.id, sdist.name)
    other = make_blob_wheel(tmp_path, NAME, "1.0", 4096, tag="py2.py3-none-any")
    _staged(sessions, session.id, other)
    sessions.publish(session.id)
    assert _listed(store) == {wheel.name, other.name}
    assert store.find(layout.distribution_key(NAME, sdist.name)) is None  # its copy went
    Indexer(store).reindex()
    assert _listed(store) == {wheel.name, other.name}
