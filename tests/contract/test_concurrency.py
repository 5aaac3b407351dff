"""Many publishers and indexers on one project at once: no file is ever dropped."""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.index.indexer import Indexer
from serverless_pypi.index.publish import FileExists
from serverless_pypi.storage import Store
from tests.helpers.dists import make_wheel, sha256
from tests.helpers.index import publish_file, stored_hashes

PUBLISHERS = 12


def test_parallel_publishers_and_indexers_lose_nothing(store: Store, tmp_path: Path) -> None:
    wheels = [make_wheel(tmp_path, "race", f"1.{i}") for i in range(PUBLISHERS)]
    # half are published through the API, half copied straight into the store (events)
    raw = wheels[PUBLISHERS // 2 :]
    published = wheels[: PUBLISHERS // 2]
    stop = threading.Event()

    def publisher(path: Path) -> None:
        publish_file(Catalog(store), path)

    def copier(path: Path) -> None:
        key = f"race/{path.name}"
        store.put(key, path.read_bytes())
        Indexer(store).index_key(key)

    def indexer_loop() -> None:
        indexer = Indexer(store, workers=2)
        rounds = 0
        while not stop.is_set() and rounds < 20:
            for path in wheels:
                indexer.index_key(f"race/{path.name}")
            rounds += 1

    with ThreadPoolExecutor(max_workers=PUBLISHERS + 3) as pool:
        loops = [pool.submit(indexer_loop) for _ in range(2)]
        reindex = pool.submit(lambda: Indexer(store, workers=2).reindex())
        jobs = [pool.submit(publisher, p) for p in published] + [
            pool.submit(copier, p) for p in raw
        ]
        for job in jobs:
            job.result()
        reindex.result()
        stop.set()
        for loop in loops:
            loop.result()

    index, _ = Catalog(store).read_project(NormalizedName("race"))
    expected = {p.name: sha256(p) for p in wheels}
    assert {name: r.sha256 for name, r in index.files.items()} == expected
    assert stored_hashes(store, "race") == expected
    assert json.loads(store.get(layout.ROOT_LIST).data)["projects"] == ["race"]


def test_concurrent_publishes_of_one_name_have_one_winner(store: Store, tmp_path: Path) -> None:
    variants = []
    for i in range(6):
        directory = tmp_path / f"v{i}"
        directory.mkdir()
        variants.append(make_wheel(directory, "clash", "1.0", payload=f"VARIANT = {i}\n"))
    barrier = threading.Barrier(len(variants))

    def attempt(path: Path) -> str:
        barrier.wait()
        try:
            publish_file(Catalog(store), path)
        except FileExists:
            return "exists"
        return "created"

    with ThreadPoolExecutor(max_workers=len(variants)) as pool:
        results = list(pool.map(attempt, variants))
    assert results.count("created") == 1
    winner = variants[results.index("created")]
    index, _ = Catalog(store).read_project(NormalizedName("clash"))
    (record,) = index.files.values()
    assert record.sha256 == hashlib.sha256(winner.read_bytes()).hexdigest()
    stored = store.get(record.key).data
    assert stored == winner.read_bytes()
