"""What a full reindex clears: expired OIDC JWT markers (kept while the JWT could be replayed)."""

from __future__ import annotations

import subprocess
import sys
import time

from serverless_pypi.index import layout
from serverless_pypi.index.housekeeping import MARKER_GRACE, sweep
from serverless_pypi.index.tokens import mark_once
from serverless_pypi.storage import Store


def _marker(store: Store, identity: str, exp: object) -> str:
    assert mark_once(store, identity, {"iss": "https://issuer.example", "exp": exp})
    [key] = [i.key for i in store.list(layout.OIDC_USED) if i.key not in _known]
    _known.add(key)
    return key


_known: set[str] = set()


def test_only_markers_of_long_expired_jwts_are_deleted(store: Store) -> None:
    _known.clear()
    now = time.time()
    old = _marker(store, "old", int(now) - MARKER_GRACE - 10)
    recent = _marker(store, "recent", int(now) - 5)  # within the grace: a skewed replay
    future = _marker(store, "future", int(now) + 600)
    no_exp = _marker(store, "no-exp", None)
    unreadable = layout.oidc_used_key("ab" * 32)
    store.put(unreadable, b"not json", content_type="application/json")

    checked = sweep(store, check=True, clock=lambda: now)
    assert checked.oidc_markers == [old]
    assert store.find(old) is not None  # a check deletes nothing

    swept = sweep(store, check=False, clock=lambda: now)
    assert swept.oidc_markers == [old]
    assert store.find(old) is None
    for kept in (recent, future, no_exp, unreadable):
        assert store.find(kept) is not None, kept
    # the JWT of a kept marker is still refused a second exchange
    assert not mark_once(store, "recent", {"exp": int(now)})


def test_reindex_deletes_expired_markers_and_check_reports_them(local_store: Store) -> None:
    _known.clear()
    root = local_store.root  # type: ignore[attr-defined]
    cli = [sys.executable, "-m", "serverless_pypi", "reindex", "--store", str(root)]
    subprocess.run(cli, capture_output=True, check=True)  # an index in line with its store
    expired = _marker(local_store, "gone", int(time.time()) - 3600)
    checked = subprocess.run([*cli, "--check"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr  # expired markers are no drift
    assert "OIDC token markers: 1 expired" in checked.stdout
    assert local_store.find(expired) is not None
    done = subprocess.run(cli, capture_output=True, text=True, check=True)
    assert "OIDC token markers: 1 deleted expired" in done.stdout
    assert local_store.find(expired) is None
