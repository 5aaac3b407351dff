"""Run the benchmark sections, keep their raw results, and write the page.

python -m bench                      every section, then docs/benchmarks.md
python -m bench --only pages,coldstart   some sections (the others keep their last results)
python -m bench --quick              fewer repetitions (a smoke run, not for the page)
python -m bench --report             only rewrite the page from docs/bench/results.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from .common import PLOTS, WORK, load_average, log, machine, moto_server, write_json

SECTIONS = ("coldstart", "pages", "installs", "throughput", "indexer", "upstream")
RESULTS = PLOTS / "results.json"


def _load() -> dict[str, Any]:
    if RESULTS.exists():
        data: dict[str, Any] = json.loads(RESULTS.read_text())
        return data
    return {}


#: record(section, data, seconds): keeps a section's results
Record = Callable[[str, dict[str, Any], float], None]


def _timed(record: Record, section: str, measure: Callable[[], dict[str, Any]]) -> None:
    started = time.perf_counter()
    data = measure()
    record(section, data, time.perf_counter() - started)


def _store_sections(wanted: list[str], quick: bool, record: Record) -> None:
    """coldstart and pages: both over the stores filled in one moto server."""
    from . import coldstart, pages

    with moto_server() as moto:
        t = time.perf_counter()
        setup = pages.populate(moto)
        log(f"pages: stores filled in {time.perf_counter() - t:.0f} s")
        if "coldstart" in wanted:
            _timed(record, "coldstart", lambda: coldstart.run(moto, quick))
        if "pages" in wanted:
            _timed(record, "pages", lambda: {**pages.run(moto, quick), "setup": setup})


def _corpus_sections(wanted: list[str], quick: bool, record: Record) -> None:
    """installs and throughput: both over the corpus published into each server's store."""
    from . import corpus, installs, servers, throughput

    t = time.perf_counter()
    tree = corpus.prepare()
    log(f"corpus: {tree.files} files ready in {time.perf_counter() - t:.0f} s")
    stores = servers.prepare(tree)
    if "installs" in wanted:
        _timed(record, "installs", lambda: installs.run(tree, quick, stores))
    if "throughput" in wanted:
        _timed(record, "throughput", lambda: throughput.run(tree, quick, stores))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only", default="", help="comma-separated sections: " + ",".join(SECTIONS)
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    parser.add_argument("--report", action="store_true", help="only rewrite the page")
    args = parser.parse_args(argv)
    wanted = [s for s in args.only.split(",") if s] or list(SECTIONS)
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    from . import report

    results = _load()
    if args.report:
        report.write(results)
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    results["machine"] = machine()
    results.pop("quick", None)
    started = time.perf_counter()

    def record(section: str, data: dict[str, Any], seconds: float) -> None:
        data["seconds"] = seconds
        data["load_after"] = load_average()
        data["quick"] = args.quick
        data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        results[section] = data
        write_json(RESULTS, results)
        log(f"{section}: done in {seconds:.0f} s")

    if "coldstart" in wanted or "pages" in wanted:
        _store_sections(wanted, args.quick, record)
    if "installs" in wanted or "throughput" in wanted:
        _corpus_sections(wanted, args.quick, record)
    if "indexer" in wanted:
        from . import indexer

        _timed(record, "indexer", lambda: indexer.run(args.quick))
    if "upstream" in wanted:
        from . import upstream

        _timed(record, "upstream", lambda: upstream.run(args.quick))

    if set(wanted) == set(SECTIONS):
        results["total_seconds"] = time.perf_counter() - started
    write_json(RESULTS, results)
    report.write(results)
    log(f"all done in {time.perf_counter() - started:.0f} s")
    return 0
