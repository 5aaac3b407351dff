"""Issue 13: the policy layer over every source, on both stores, through the application.

Pages and downloads under a cooldown (upstream projects by default, private ones with
`private`), exemptions, the hard cutoff, revoked digests, allow and deny lists, namespaces
and PEP 792 statuses; the private fast path kept where no rule applies; pages that change by
themselves when a file comes of age (an injected clock, no sleeping for days), with
Cache-Control never past that moment.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from serverless_pypi.compose import build_application
from serverless_pypi.core.config import Settings
from serverless_pypi.core.http import Headers, Request, Response, encoding_tag
from serverless_pypi.core.model import Manifest, format_upload_time
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.policy import Cooldown, Policy, ProjectStatus, Revocation
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.index.change import Change
from serverless_pypi.index.policies import PolicyWriter
from serverless_pypi.repository.policy import PolicyRepository
from serverless_pypi.storage import Store
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.web.app import Application
from tests.contract.test_install_cost import Counting, install
from tests.helpers.dists import make_wheel
from tests.helpers.index import JSON, content, publish_file
from tests.helpers.servers import LiveServer, stop
from tests.helpers.upstream import publish_upstream, start_upstream

ACME = NormalizedName("acme")
WEEK = timedelta(days=7)
#: a policy TTL short enough that a test's change is read at the next request
TTL = 0.05
OLD = "pubdep-1.0-py3-none-any.whl"  # upstream, uploaded ten days ago
NEW = "pubdep-1.1-py3-none-any.whl"  # upstream, uploaded now
ACME_1 = "acme-1.0-py3-none-any.whl"  # private, ten days ago
ACME_2 = "acme-2.0-py3-none-any.whl"  # private, now


class Clock:
    """The time files come of age by, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def backdate(store: Store, name: str, filename: str, age: timedelta) -> None:
    """Make `filename` look uploaded `age` ago (its manifest record; the pages follow)."""
    moment = format_upload_time(datetime.now(UTC) - age)

    def change(index: Manifest) -> Change[None]:
        index.files[filename] = index.files[filename].with_changes(upload_time=moment)
        return Change(None)

    Catalog(store).update_project(NormalizedName(name), change)


def set_policy(store: Store, **rules: Any) -> None:
    """Change the store's policy document (as the CLI does); read at the next request."""
    PolicyWriter(store).update(lambda policy: dataclasses.replace(policy, **rules))
    time.sleep(TTL * 2)


def application(store: Store, clock: Clock, **settings: Any) -> Application:
    """The application every front builds, its policy layer on `clock`."""
    app = build_application(store, Settings(policy_ttl=TTL, **settings), background_pulls=False)
    assert isinstance(app.repository, PolicyRepository)  # on top of every stack
    app.repository.clock = clock
    return app


def call(app: Application, path: str, *, accept: str = JSON, **headers: str) -> Response:
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    return app.handle(Request("GET", path, "", Headers({"accept": accept, **named})))


def page(app: Application, name: str) -> dict[str, Any]:
    response = call(app, f"{name}/")
    assert response.status == 200, content(response)
    found: dict[str, Any] = json.loads(content(response))
    return found


def html(app: Application, name: str) -> str:
    response = call(app, f"{name}/", accept="text/html")
    assert response.status == 200, content(response)
    return content(response).decode()


def filenames(found: dict[str, Any]) -> list[str]:
    return sorted(f["filename"] for f in found["files"])


def refused(app: Application, path: str, *words: str) -> str:
    """Assert a 404 whose message has all of `words`; the message."""
    response = call(app, path)
    message = content(response).decode()
    assert response.status == 404, (response.status, message)
    for word in words:
        assert word in message, message
    return message


def served(app: Application, path: str) -> None:
    assert call(app, path).status in {200, 302}, content(call(app, path))


@pytest.fixture
def private(store: Store, tmp_path: Path) -> Store:
    """`store` with the private acme 1.0 (ten days old) and acme 2.0 (new)."""
    old = make_wheel(tmp_path, "acme", "1.0")
    publish_file(store, old)
    backdate(store, "acme", old.name, timedelta(days=10))
    publish_file(store, make_wheel(tmp_path, "acme", "2.0"))
    return store


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """An upstream index with pubdep 1.0 (ten days old) and 1.1 (new), and acme 9.0."""
    root = tmp_path_factory.mktemp("policy-upstream")
    store_dir = root / "upstream-store"
    server = start_upstream(store_dir, root)
    publish_upstream(store_dir, root / "dists", "pubdep", "1.0")
    backdate(LocalStore(store_dir), "pubdep", OLD, timedelta(days=10))
    publish_upstream(store_dir, root / "dists", "pubdep", "1.1")
    publish_upstream(store_dir, root / "dists", "acme", "9.0")
    yield server
    stop(server.process)


def proxy(store: Store, upstream: LiveServer, clock: Clock, **settings: Any) -> Application:
    return application(
        store, clock, upstream_index_url=upstream.url, upstream_mode="proxy", **settings
    )


# -- the fast path ---------------------------------------------------------------------------


@pytest.mark.parametrize("rules", [{}, {"cooldown": Cooldown(7 * 86400)}], ids=["empty", "up"])
def test_a_private_page_no_rule_touches_passes_through_untouched(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rules: dict[str, Any]
) -> None:
    """One store read for a warm install, as without policies, plus at most one conditional
    read of the policy document per POLICY_TTL; the stored page's own bytes and tag."""
    if rules:
        PolicyWriter(store).update(lambda policy: dataclasses.replace(policy, **rules))
    wheel = make_wheel(tmp_path, "acme", "1.0")
    publish_file(store, wheel)
    app = build_application(store)  # the default POLICY_TTL (2 s)
    etag = install(app, wheel.name)
    counting = Counting(store, monkeypatch)
    for _ in range(3):
        install(app, wheel.name, etag)
    pages = counting.keys.count(layout.page_key(ACME, json=True))
    policy_reads = counting.keys.count(layout.POLICY)
    assert pages == 3 and counting.requests(store) == pages + policy_reads
    assert policy_reads <= 1
    stored = store.get(layout.page_key(ACME, json=True))
    response = call(app, "acme/", accept_encoding="gzip")
    assert response.body == stored.data  # passed on as stored: nothing rendered
    assert response.headers["ETag"] == encoding_tag(stored.etag, True)


def test_an_install_under_a_policy_costs_one_store_read_warm(
    private: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page read once (its filtered renderings from memory), the file's entry on it used
    for the verdicts on the metadata file and the download."""
    set_policy(private, cooldown=Cooldown(7 * 86400, private=True))
    app = build_application(private, Settings(policy_ttl=3600))
    etag = install(app, ACME_1)
    counting = Counting(private, monkeypatch)
    install(app, ACME_1, etag)  # a 304 for the page
    install(app, ACME_1)
    assert counting.requests(private) == counting.calls["get"] == 2
    assert counting.keys.count(layout.page_key(ACME, json=True)) == 2


# -- cooldown ----------------------------------------------------------------------------------


def test_the_cooldown_hides_young_upstream_files_on_the_page_and_at_the_download(
    store: Store, upstream: LiveServer
) -> None:
    set_policy(store, cooldown=Cooldown(7 * 86400))
    clock = Clock()
    app = proxy(store, upstream, clock)
    found = page(app, "pubdep")
    assert filenames(found) == [OLD] and found["versions"] == ["1.0"]
    assert NEW not in html(app, "pubdep")
    served(app, f"pubdep/{OLD}")
    for path in (f"pubdep/{NEW}", f"pubdep/{NEW}.metadata"):
        refused(app, path, NEW, "hidden by the cooldown until")
    # the file comes of age between two requests: the page and its tag change by themselves
    before = call(app, "pubdep/").headers["ETag"]
    clock.advance(WEEK)
    assert filenames(page(app, "pubdep")) == [OLD, NEW]
    assert call(app, "pubdep/").headers["ETag"] != before
    served(app, f"pubdep/{NEW}")
    served(app, f"pubdep/{NEW}.metadata")


def test_the_cooldown_leaves_private_projects_unless_asked(
    private: Store, upstream: LiveServer
) -> None:
    set_policy(private, cooldown=Cooldown(7 * 86400))
    clock = Clock()
    app = proxy(private, upstream, clock)
    assert filenames(page(app, "acme")) == [ACME_1, ACME_2]  # never the upstream's 9.0
    served(app, f"acme/{ACME_2}")
    set_policy(private, cooldown=Cooldown(7 * 86400, private=True))
    found = page(app, "acme")
    assert filenames(found) == [ACME_1] and found["versions"] == ["1.0"]
    refused(app, f"acme/{ACME_2}", "hidden by the cooldown until")
    refused(app, f"acme/{ACME_2}.metadata", "hidden by the cooldown until")


def test_a_private_file_comes_of_age_between_two_requests(private: Store) -> None:
    set_policy(private, cooldown=Cooldown(3600, private=True))
    clock = Clock()
    app = application(private, clock)
    first = call(app, "acme/", accept_encoding="gzip")
    assert ACME_2.encode() not in content(first)
    assert (
        call(app, "acme/", accept_encoding="gzip", if_none_match=first.headers["ETag"]).status
        == 304
    )
    refused(app, f"acme/{ACME_2}", "until")
    clock.advance(timedelta(hours=1, seconds=1))
    second = call(app, "acme/", accept_encoding="gzip", if_none_match=first.headers["ETag"])
    assert second.status == 200 and ACME_2.encode() in content(second)
    assert second.headers["ETag"] != first.headers["ETag"]
    served(app, f"acme/{ACME_2}")
    served(app, f"acme/{ACME_2}.metadata")


def test_a_file_without_an_upload_time_is_hidden_while_a_cooldown_applies(
    private: Store,
) -> None:
    """Fail closed, as uv and pdm do: an age that cannot be known is not old enough."""
    stored = json.loads(gzip.decompress(private.get(layout.page_key(ACME, json=True)).data))
    for entry in stored["files"]:
        del entry["upload-time"]
    private.put(
        layout.page_key(ACME, json=True), gzip.compress(json.dumps(stored).encode(), mtime=0)
    )
    set_policy(private, cooldown=Cooldown(60, private=True))
    app = application(private, Clock())
    assert filenames(page(app, "acme")) == []
    refused(app, f"acme/{ACME_1}", "no upload-time")


def test_cache_control_never_outlives_the_moment_a_file_comes_of_age(private: Store) -> None:
    set_policy(private, cooldown=Cooldown(3600, private=True))
    app = application(private, Clock(), cache_control="public, max-age=86400")
    for accept in (JSON, "text/html"):
        header = call(app, "acme/", accept=accept).headers["Cache-Control"]
        assert header.startswith("public, max-age=")
        assert 3500 < int(header.rpartition("=")[2]) <= 3600
    # no rule: the operator's value as it is
    set_policy(private, cooldown=None, exempt=frozenset())
    assert call(app, "acme/").headers["Cache-Control"] == "public, max-age=86400"
    # the default max-age=0 is never changed
    set_policy(private, cooldown=Cooldown(3600, private=True))
    assert call(application(private, Clock()), "acme/").headers["Cache-Control"] == (
        "max-age=0, must-revalidate"
    )


# -- exemptions and the hard cutoff ------------------------------------------------------------


@pytest.mark.parametrize(
    ("exempt", "shown"),
    [("acme", [ACME_1, ACME_2]), ("acme==2.0", [ACME_1, ACME_2]), ("acme==1.0", [ACME_1])],
)
def test_an_exemption_shows_a_project_or_one_release_at_once(
    private: Store, exempt: str, shown: list[str]
) -> None:
    set_policy(private, cooldown=Cooldown(7 * 86400, private=True), exempt=frozenset({exempt}))
    app = application(private, Clock())
    assert filenames(page(app, "acme")) == shown
    if ACME_2 in shown:
        served(app, f"acme/{ACME_2}")
    else:
        refused(app, f"acme/{ACME_2}", "cooldown")


def test_uploaded_before_hides_what_came_after_the_cutoff(
    store: Store, upstream: LiveServer
) -> None:
    set_policy(store, uploaded_before=datetime.now(UTC) - timedelta(days=5))
    app = proxy(store, upstream, Clock())
    assert filenames(page(app, "pubdep")) == [OLD]
    refused(app, f"pubdep/{NEW}", "not before the cutoff")
    set_policy(store, exempt=frozenset({"pubdep==1.1"}))
    assert filenames(page(app, "pubdep")) == [OLD, NEW]
    served(app, f"pubdep/{NEW}")


# -- revocation ---------------------------------------------------------------------------------


def digest(found: dict[str, Any], filename: str) -> str:
    sha: str = next(f for f in found["files"] if f["filename"] == filename)["hashes"]["sha256"]
    return sha


def test_a_revoked_digest_is_hidden_and_refused_under_any_project(
    private: Store, upstream: LiveServer
) -> None:
    app = proxy(private, upstream, Clock())
    private_sha, upstream_sha = digest(page(app, "acme"), ACME_2), digest(page(app, "pubdep"), NEW)
    revoked_at = "2026-12-01T12:00:00Z"
    set_policy(
        private,
        revoked={
            private_sha: Revocation("malware", revoked_at),
            upstream_sha: Revocation("compromised maintainer", revoked_at),
        },
    )
    assert filenames(page(app, "acme")) == [ACME_1]
    assert filenames(page(app, "pubdep")) == [OLD]
    for path, reason in (
        (f"acme/{ACME_2}", "revoked: malware"),
        (f"acme/{ACME_2}.metadata", "revoked: malware"),
        (f"pubdep/{NEW}", "revoked: compromised maintainer"),
    ):
        refused(app, path, reason)
    set_policy(private, revoked={})  # unrevoke: served again
    assert filenames(page(app, "acme")) == [ACME_1, ACME_2]
    served(app, f"acme/{ACME_2}")
    served(app, f"pubdep/{NEW}")


# -- allow and deny lists, namespaces -------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "why"),
    [
        ({"deny": ("pub*",)}, "denied"),
        ({"allow": ("requests",)}, "not on the allow list"),
        ({"namespaces": ("pubdep",)}, "namespace"),
    ],
    ids=["deny", "allow", "namespace"],
)
def test_an_upstream_name_the_policy_refuses_is_never_served(
    private: Store, upstream: LiveServer, rules: dict[str, Any], why: str
) -> None:
    app = proxy(private, upstream, Clock())
    assert filenames(page(app, "pubdep")) == [OLD, NEW]  # cached: then listed
    assert "pubdep" in [p["name"] for p in json.loads(content(call(app, "")))["projects"]]
    set_policy(private, **rules)
    for path in ("pubdep/", f"pubdep/{OLD}", f"pubdep/{OLD}.metadata"):
        refused(app, path, why)
    assert [p["name"] for p in json.loads(content(call(app, "")))["projects"]] == ["acme"]
    # a private project is never refused by the lists
    set_policy(private, deny=("*",), allow=("nothing",))
    assert filenames(page(app, "acme")) == [ACME_1, ACME_2]


def test_in_redirect_mode_a_refused_name_is_a_404_not_a_redirect(private: Store) -> None:
    app = application(private, Clock(), fallback_index_url="https://pypi.example/simple")
    set_policy(private, cooldown=Cooldown(60))
    # a cooldown cannot filter pages the client fetches elsewhere: redirected as before
    assert call(app, "pubdep/").status == 302
    set_policy(private, deny=("pubdep",))
    refused(app, "pubdep/", "denied")
    assert filenames(page(app, "acme")) == [ACME_1, ACME_2]


# -- statuses (PEP 792) and the api-version -------------------------------------------------


@pytest.mark.parametrize("status", ["deprecated", "archived"])
def test_a_status_is_shown_on_both_renderings_with_the_files(private: Store, status: str) -> None:
    set_policy(private, statuses={ACME: ProjectStatus(status, "use acme2")})
    app = application(private, Clock())
    found = page(app, "acme")
    assert found["project-status"] == {"status": status, "reason": "use acme2"}
    assert found["meta"]["api-version"] == "1.4"
    assert filenames(found) == [ACME_1, ACME_2]
    text = html(app, "acme")
    assert f'<meta name="pypi:project-status" content="{status}">' in text
    assert '<meta name="pypi:project-status-reason" content="use acme2">' in text
    served(app, f"acme/{ACME_2}")


def test_a_quarantined_project_offers_no_files(private: Store, upstream: LiveServer) -> None:
    set_policy(
        private,
        statuses={
            ACME: ProjectStatus("quarantined", "under review"),
            NormalizedName("pubdep"): ProjectStatus("quarantined"),
        },
    )
    app = proxy(private, upstream, Clock())
    for name, files in (("acme", (ACME_1, ACME_2)), ("pubdep", (OLD, NEW))):
        found = page(app, name)
        assert found["project-status"]["status"] == "quarantined"
        assert found["files"] == [] and found["versions"] == []
        for filename in files:
            refused(app, f"{name}/{filename}", "quarantined")
    assert "under review" in refused(app, f"acme/{ACME_1}.metadata")


def test_policy_pages_are_json_api_version_1_4(private: Store) -> None:
    set_policy(private, cooldown=Cooldown(60, private=True))
    app = application(private, Clock())
    assert page(app, "acme")["meta"] == {"api-version": "1.4"}
    assert '<meta name="pypi:repository-version" content="1.4">' in html(app, "acme")


# -- the layer itself --------------------------------------------------------------------------


def test_filtered_pages_are_rendered_once_per_source_policy_and_time_bucket(
    private: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serverless_pypi.core import render
    from serverless_pypi.repository import policy as policy_layer

    renders: list[int] = []
    original: Callable[..., Any] = render.render_json

    def counted(page_: dict[str, Any]) -> bytes:
        renders.append(1)
        result: bytes = original(page_)
        return result

    monkeypatch.setattr(policy_layer, "render_json", counted)
    set_policy(private, cooldown=Cooldown(3600, private=True))
    clock = Clock()
    app = application(private, clock)
    for _ in range(3):
        page(app, "acme")
        call(app, f"acme/{ACME_1}")
    assert len(renders) == 1
    clock.advance(timedelta(minutes=30))  # the same bucket: nothing came of age
    page(app, "acme")
    assert len(renders) == 1
    clock.advance(timedelta(minutes=31))
    page(app, "acme")
    assert len(renders) == 2
    set_policy(private, cooldown=Cooldown(7200, private=True))
    page(app, "acme")
    assert len(renders) == 3


def test_an_empty_policy_object_passes_every_question_through(private: Store) -> None:
    """Without the document the layer answers as the stack below it."""
    app = build_application(private)
    assert isinstance(app.repository, PolicyRepository)
    below = Application(app.repository.inner, Settings())
    for path in ("", "acme/", f"acme/{ACME_2}", f"acme/{ACME_2}.metadata", "nope/"):
        ours, theirs = call(app, path), call(below, path)
        assert (ours.status, ours.headers.get("ETag")) == (
            theirs.status,
            theirs.headers.get("ETag"),
        )
    assert Policy() == PolicyWriter(private).read()
