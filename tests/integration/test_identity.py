"""One file name per distribution identity (issue 10, item 2).

Other bytes for a published (project, version, build tag, tags) must never be accepted under
another spelling of its file name, through `publish` (the upload API and the command line)
or by the indexer; file names of new uploads are canonical; legacy names already in a
bucket keep being served, one key per identity.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from serverless_pypi.adapters.cli import main as cli_main
from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.compose import build_application
from serverless_pypi.core.http import Headers, Request
from serverless_pypi.core.model import FileRecord, Manifest
from serverless_pypi.core.names import (
    InvalidFilename,
    NonCanonicalFilename,
    NormalizedName,
    check_publishable_filename,
    distribution_identity,
)
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog, Change
from serverless_pypi.index.indexer import Indexer
from serverless_pypi.index.publish import FileExists, PublishError, publish
from serverless_pypi.storage import Store
from serverless_pypi.storage.local import LocalStore
from tests.helpers.clients import pip_install, twine_upload, uv_install, uv_publish
from tests.helpers.dists import make_sdist, make_wheel, sha256
from tests.helpers.index import publish_file
from tests.helpers.servers import LiveServer

KELVIN = "\u212a"  # renders as "K"
ORIGINAL = "acme_kit-5.0-py3-none-any.whl"
NAME = NormalizedName("acme-kit")

# spellings of ORIGINAL's identity (acme-kit, 5.0, no build tag, {py3-none-any} or, for the
# compressed set, {py2-none-any, py3-none-any}), with why each is refused
COLLIDING_WHEELS = [
    ("Acme_Kit-5.0-py3-none-any.whl", "5.0", "not spelled as"),
    ("acme.kit-5.0-py3-none-any.whl", "5.0", "not spelled as"),
    ("ACME_KIT-5.0-py3-none-any.whl", "5.0", "not spelled as"),
    ("acme_kit-5.0.0-py3-none-any.whl", "5.0.0", "File already exists"),
    ("acme_kit-05.0-py3-none-any.whl", "5.0", "not spelled as"),
    ("acme_kit-5.0-py3-none-ANY.whl", "5.0", "not spelled as"),
    ("acme_kit-5.0-PY3-none-any.whl", "5.0", "not spelled as"),
    (f"acme_{KELVIN}it-5.0-py3-none-any.whl", "5.0", "non-ASCII"),
]
# the same distribution as "acme_kit-5.0-py2.py3-none-any.whl"
COLLIDING_TAG_SETS = [
    ("acme_kit-5.0-py3.py2-none-any.whl", "File already exists"),
    ("acme_kit-5.0.0-py2.py3-none-any.whl", "File already exists"),
    ("acme_kit-5.0-py3.py2-none-ANY.whl", "not spelled as"),
]


def wheel_named(directory: Path, filename: str, version: str, payload: str) -> Path:
    """A valid acme.kit wheel of `version` stored under `filename`."""
    directory.mkdir(parents=True, exist_ok=True)
    built = make_wheel(directory, "acme.kit", version, payload=payload)
    target = directory / filename
    if built != target:
        built.rename(target)
    return target


def listed(store: Store, name: str = NAME) -> dict[str, str | None]:
    index, _ = Catalog(store).read_project(NormalizedName(name))
    return {f: r.sha256 for f, r in index.files.items() if r.problem is None}


# -- the pure rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("acme_kit-5.0-py3-none-any.whl", "Acme_Kit-5.0-py3-none-any.whl"),
        ("acme_kit-5.0-py3-none-any.whl", "acme.kit-5.0-py3-none-any.whl"),
        ("acme_kit-5.0-py3-none-any.whl", "acme_kit-5.0.0-py3-none-any.whl"),
        ("acme_kit-5.0-py3-none-any.whl", "acme_kit-5.0-py3-none-ANY.whl"),
        ("acme_kit-5.0-py2.py3-none-any.whl", "acme_kit-5.0-py3.py2-none-any.whl"),
        ("acme_kit-5.0-1-py3-none-any.whl", "acme_kit-5.0-01-py3-none-any.whl"),
        ("acme_kit-5.0.tar.gz", "acme-kit-5.0.tar.gz"),
        ("acme_kit-5.0.tar.gz", "acme_kit-5.0.zip"),
        ("acme_kit-5.0.tar.gz", "Acme.Kit-5.0.0.tar.gz"),
    ],
)
def test_spellings_of_one_identity(one: str, other: str) -> None:
    assert distribution_identity(one) == distribution_identity(other)


def test_the_kelvin_sign_names_the_same_project() -> None:
    # packaging lowercases U+212A to "k": a look-alike is the same identity, and is refused
    assert distribution_identity(f"acme_{KELVIN}it-5.0-py3-none-any.whl") == distribution_identity(
        "acme_kit-5.0-py3-none-any.whl"
    )


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("acme_kit-5.0-py3-none-any.whl", "acme_kit-5.0-1-py3-none-any.whl"),  # build tag
        ("acme_kit-5.0-py3-none-any.whl", "acme_kit-5.0-py2.py3-none-any.whl"),  # tag set
        ("acme_kit-5.0-py3-none-any.whl", "acme_kit-5.0.post1-py3-none-any.whl"),
        ("acme_kit-5.0-py3-none-any.whl", "acme_kit-5.0.tar.gz"),  # wheel and sdist
        ("acme_kit-5.0-py3-none-any.whl", "acme_y-5.0-py3-none-any.whl"),
    ],
)
def test_different_distributions(one: str, other: str) -> None:
    assert distribution_identity(one) != distribution_identity(other)


@pytest.mark.parametrize(
    "filename",
    [
        "acme_kit-5.0-py3-none-any.whl",
        "acme_kit-5.0.0-py3-none-any.whl",  # a normalized version keeps its zeros
        "acme_kit-5.0-1-py3-none-any.whl",
        "acme_kit-5.0-1abc-py2.py3-none-any.whl",
        "acme_kit-1!2.0rc1.post3.dev4+local.7-py3-none-any.whl",
        # auditwheel's order, not sorted: the order inside a compressed set is not checked
        "numpy-2.1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "acme_kit-5.0.tar.gz",
        "zope_interface-6.0.tar.gz",
    ],
)
def test_canonical_file_names_may_be_published(filename: str) -> None:
    assert check_publishable_filename(filename).filename == filename


@pytest.mark.parametrize(
    ("filename", "canonical"),
    [
        ("Acme_Kit-5.0-py3-none-any.whl", "acme_kit-5.0-py3-none-any.whl"),
        ("acme.kit-5.0-py3-none-any.whl", "acme_kit-5.0-py3-none-any.whl"),
        ("acme-kit-5.0.tar.gz", "acme_kit-5.0.tar.gz"),  # the reference module's sdist names
        ("my-cool-package-1.2.3.tar.gz", "my_cool_package-1.2.3.tar.gz"),
        ("acme_kit-5.0-py3-none-ANY.whl", "acme_kit-5.0-py3-none-any.whl"),
        ("acme_kit-v5.0-py3-none-any.whl", "acme_kit-5.0-py3-none-any.whl"),
        ("acme_kit-5.0RC1-1-py3-none-any.whl", "acme_kit-5.0rc1-1-py3-none-any.whl"),
        ("acme_kit-1.0-2-CP311-none-any.whl", "acme_kit-1.0-2-cp311-none-any.whl"),
        ("acme_kit-5.0.zip", None),
    ],
)
def test_other_spellings_are_refused_naming_the_canonical_one(
    filename: str, canonical: str | None
) -> None:
    with pytest.raises(NonCanonicalFilename) as refused:
        check_publishable_filename(filename)
    if canonical is not None:
        assert refused.value.canonical == canonical
        assert repr(canonical) in str(refused.value)
    elif filename.endswith(".zip"):
        assert ".tar.gz" in str(refused.value) and "PEP 625" in str(refused.value)


def test_non_ascii_file_names_are_refused_naming_the_character() -> None:
    with pytest.raises(InvalidFilename, match="U\\+212A"):
        check_publishable_filename(f"acme_{KELVIN}it-5.0-py3-none-any.whl")
    with pytest.raises(InvalidFilename, match="non-ASCII"):
        check_publishable_filename("acm\u00e9-5.0.tar.gz")


# -- publish(): the upload API and the command line -------------------------------------


@pytest.mark.parametrize(("filename", "version", "why"), COLLIDING_WHEELS)
def test_publish_refuses_another_spelling_of_a_published_wheel(
    store: Store, tmp_path: Path, filename: str, version: str, why: str
) -> None:
    original = wheel_named(tmp_path / "a", ORIGINAL, "5.0", "ORIGIN = 'first'\n")
    assert publish_file(store, original).status == "created"
    other = wheel_named(tmp_path / "b", filename, version, "ORIGIN = 'second'\n")
    with pytest.raises(PublishError, match=why) as refused:
        publish_file(store, other)
    if why == "File already exists":
        assert isinstance(refused.value, FileExists)
        assert ORIGINAL in str(refused.value)  # names the file it collides with
    assert listed(store) == {ORIGINAL: sha256(original)}
    # nothing of the refused upload stays behind
    keys = {info.key for info in store.list("")}
    assert not any(filename in key for key in keys)
    assert store.get(layout.distribution_key(NAME, ORIGINAL)).data == original.read_bytes()


@pytest.mark.parametrize(("filename", "why"), COLLIDING_TAG_SETS)
def test_publish_refuses_another_order_of_a_compressed_tag_set(
    store: Store, tmp_path: Path, filename: str, why: str
) -> None:
    original = wheel_named(tmp_path / "a", "acme_kit-5.0-py2.py3-none-any.whl", "5.0", "")
    publish_file(store, original)
    version = "5.0.0" if "5.0.0" in filename else "5.0"
    other = wheel_named(tmp_path / "b", filename, version, "ORIGIN = 'second'\n")
    with pytest.raises(PublishError, match=why):
        publish_file(store, other)
    assert listed(store) == {original.name: sha256(original)}


def test_a_different_build_tag_is_another_distribution(store: Store, tmp_path: Path) -> None:
    original = wheel_named(tmp_path / "a", ORIGINAL, "5.0", "")
    rebuilt = wheel_named(tmp_path / "b", "acme_kit-5.0-1-py3-none-any.whl", "5.0", "x = 1\n")
    publish_file(store, original)
    assert publish_file(store, rebuilt).status == "created"  # PyPI allows it too
    assert listed(store) == {ORIGINAL: sha256(original), rebuilt.name: sha256(rebuilt)}
    # but the build tag is compared as a number: 01 is build 1
    again = wheel_named(tmp_path / "c", "acme_kit-5.0-01-py3-none-any.whl", "5.0", "x = 2\n")
    with pytest.raises(FileExists):
        publish_file(store, again)


def test_one_sdist_per_release(store: Store, tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, "acme.kit", "5.0")
    assert sdist.name == "acme_kit-5.0.tar.gz"
    publish_file(store, sdist)
    for filename, why in [
        ("acme-kit-5.0.tar.gz", "publish it as 'acme_kit-5.0.tar.gz'"),
        ("acme_kit-5.0.zip", "PEP 625"),
    ]:
        other = tmp_path / filename
        shutil.copy(sdist, other)
        with pytest.raises(PublishError, match=why):
            publish_file(store, other)
    (tmp_path / "zeros").mkdir()
    zeros = make_sdist(tmp_path / "zeros", "acme.kit", "5.0.0")
    with pytest.raises(FileExists, match="acme_kit-5.0.tar.gz"):
        publish_file(store, zeros)
    assert listed(store) == {sdist.name: sha256(sdist)}


def test_identical_reupload_of_a_canonical_name_stays_a_no_op(store: Store, tmp_path: Path) -> None:
    original = wheel_named(tmp_path / "a", ORIGINAL, "5.0", "")
    assert publish_file(store, original).status == "created"
    assert publish_file(store, original).status == "exists"


def test_a_twin_published_meanwhile_is_found_by_the_compare_and_swap(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two uploads of one identity race: the one that reaches the manifest second is refused
    and its bytes are removed, even though its first look at the manifest saw nothing."""
    first = wheel_named(tmp_path / "a", ORIGINAL, "5.0", "ORIGIN = 'first'\n")
    second = wheel_named(tmp_path / "b", "acme_kit-5.0.0-py3-none-any.whl", "5.0.0", "y = 2\n")
    publish_file(store, first)
    catalog = Catalog(store)
    monkeypatch.setattr(catalog, "read_project", lambda name: (Manifest(name), None))
    with second.open("rb") as file, pytest.raises(FileExists, match=ORIGINAL):
        publish(catalog, file, second.name)
    assert listed(store) == {ORIGINAL: sha256(first)}
    assert store.find(layout.distribution_key(NAME, second.name)) is None


def test_the_command_line_refuses_other_spellings(local_store: LocalStore, tmp_path: Path) -> None:
    original = wheel_named(tmp_path / "a", ORIGINAL, "5.0", "")
    other = wheel_named(tmp_path / "b", "acme_kit-5.0.0-py3-none-any.whl", "5.0.0", "z = 3\n")
    location = str(local_store.root)
    assert cli_main(["publish", "--store", location, str(original)]) == 0
    assert cli_main(["publish", "--store", location, str(other)]) != 0
    assert listed(local_store) == {ORIGINAL: sha256(original)}


# -- through a live server, with real clients -------------------------------------------


def _installed_origin(target: Path) -> str:
    text = (target / "acme_kit.py").read_text()
    return text.split("ORIGIN = ", 1)[1].strip()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_real_clients_cannot_replace_a_published_wheel(
    kind: str,
    request: pytest.FixtureRequest,
    live_server: Callable[..., LiveServer],
    tmp_path: Path,
) -> None:
    store: Store = request.getfixturevalue(f"{kind}_store")
    if isinstance(store, LocalStore):
        location = str(store.root)
    else:
        location = f"s3://{request.getfixturevalue('s3_bucket')}"
    server = live_server(location)
    token, _ = TokenStore(store).create("write")
    original = wheel_named(tmp_path / "original", ORIGINAL, "5.0", "ORIGIN = 'first'\n")
    result = twine_upload(server.url, token, original)
    assert result.returncode == 0, result.stdout + result.stderr
    for number, (filename, version, why) in enumerate(COLLIDING_WHEELS):
        other = wheel_named(tmp_path / f"o{number}", filename, version, "ORIGIN = 'second'\n")
        result = twine_upload(server.url, token, other)
        output = " ".join((result.stdout + result.stderr).split())
        assert result.returncode != 0, (filename, output)
        assert "400" in output and why in output, (filename, output)
        if why == "File already exists":  # uv itself skips names that are not canonical
            result = uv_publish(server.url, token, other)
            output = " ".join((result.stdout + result.stderr).split())
            assert result.returncode != 0 and why in output, (filename, output)
    log = server.log.read_text()
    assert " 500 " not in log and " 200 " in log
    assert listed(store) == {ORIGINAL: sha256(original)}

    # pip and uv install the original bytes for ==5.0
    pip_target = tmp_path / "pip"
    pip = pip_install(server.url, pip_target, "acme.kit==5.0")
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert _installed_origin(pip_target) == "'first'"
    uv_target = tmp_path / "uv"
    uv = uv_install(server.url, uv_target, "acme.kit==5.0", cache=tmp_path / "uv-cache")
    assert uv.returncode == 0, uv.stdout + uv.stderr
    assert _installed_origin(uv_target) == "'first'"


# -- the indexer: legacy names stay, one key per identity -----------------------------------


def put(store: Store, key: str, path: Path) -> bytes:
    data = path.read_bytes()
    store.put(key, data)
    return data


def served(store: Store, name: str = NAME) -> dict[str, str]:
    """file name -> key of what the index lists for `name`."""
    index, _ = Catalog(store).read_project(NormalizedName(name))
    return {r.filename: r.key for r in index.served()}


def test_legacy_names_in_a_bucket_are_still_served(store: Store, tmp_path: Path) -> None:
    # the reference module's layout and sdist names
    sdist = make_sdist(tmp_path, "my-cool-package", "1.2.3")
    put(store, "my-cool-package/my-cool-package-1.2.3.tar.gz", sdist)
    put(store, "My_Other/My_Other-0.1-py3-none-any.whl", make_wheel(tmp_path, "my-other", "0.1"))
    Indexer(store).reindex()
    assert served(store, "my-cool-package") == {
        "my-cool-package-1.2.3.tar.gz": "my-cool-package/my-cool-package-1.2.3.tar.gz"
    }
    assert served(store, "my-other") == {
        "My_Other-0.1-py3-none-any.whl": "My_Other/My_Other-0.1-py3-none-any.whl"
    }


def _twins(store: Store, tmp_path: Path) -> tuple[str, str]:
    """Two keys of one identity in the store, in key order, with different bytes."""
    first, second = (
        "acme-kit/Acme_Kit-5.0-py3-none-any.whl",
        "acme-kit/acme_kit-5.0-py3-none-any.whl",
    )
    put(store, first, wheel_named(tmp_path / "a", "x.whl", "5.0", "ORIGIN = 'a'\n"))
    put(store, second, wheel_named(tmp_path / "b", "y.whl", "5.0", "ORIGIN = 'b'\n"))
    return first, second


def test_events_serve_the_first_listed_key_and_log_the_other(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = _twins(store, tmp_path)
    indexer = Indexer(store)
    # the later key's event arrives first: that key is listed, and stays listed
    assert indexer.index_key(second).action == "indexed"
    outcome = indexer.index_key(first)
    assert outcome.action == "skipped"
    assert "conflict" in outcome.reason and second in outcome.reason
    assert any("conflict" in r.getMessage() and first in r.getMessage() for r in caplog.records)
    assert served(store) == {"acme_kit-5.0-py3-none-any.whl": second}
    # repeated and reordered events change nothing; a full reindex agrees
    assert indexer.index_key(first).action == "skipped"
    assert indexer.index_key(second).action == "unchanged"
    report = indexer.reindex()
    assert (first, f"conflict: the same distribution as {second!r}") in report.skipped
    assert served(store) == {"acme_kit-5.0-py3-none-any.whl": second}


def test_a_full_reindex_serves_the_first_key_in_key_order(store: Store, tmp_path: Path) -> None:
    first, second = _twins(store, tmp_path)
    report = Indexer(store).reindex()
    assert served(store) == {"Acme_Kit-5.0-py3-none-any.whl": first}
    assert (second, f"conflict: the same distribution as {first!r}") in report.skipped
    assert Indexer(store).reindex(check=True).drift is False
    # the application serves the same single file, and never the other one
    app = build_application(store)
    accept = Headers({"Accept": "application/vnd.pypi.simple.v1+json"})
    page = json.loads(app.handle(Request("GET", "acme-kit/", headers=accept)).body)
    assert [f["filename"] for f in page["files"]] == ["Acme_Kit-5.0-py3-none-any.whl"]
    assert app.handle(Request("GET", "acme-kit/acme_kit-5.0-py3-none-any.whl")).status == 404


def test_both_keys_listed_before_the_rule_keep_only_the_first(store: Store, tmp_path: Path) -> None:
    """A manifest written before this rule lists both keys (as the attack left it)."""
    first, second = _twins(store, tmp_path)
    catalog = Catalog(store)

    def both(project: Manifest) -> Change[None]:
        for key in (first, second):
            info = store.head(key)
            filename = key.split("/")[1]
            project.files[filename] = FileRecord(
                filename, key, info.size, "2026-01-01T00:00:00.000000Z", info.etag, "0" * 64
            )
        return Change(None)

    catalog.update_project(NAME, both)
    assert len(served(store)) == 2
    # an event for the later key drops it ...
    assert Indexer(store).index_key(second).action == "skipped"
    assert served(store) == {"Acme_Kit-5.0-py3-none-any.whl": first}
    catalog.update_project(NAME, both)
    # ... and so does a full reindex
    report = Indexer(store).reindex()
    assert second in report.removed
    assert served(store) == {"Acme_Kit-5.0-py3-none-any.whl": first}


def test_the_other_key_is_served_once_the_first_is_gone(store: Store, tmp_path: Path) -> None:
    first, second = _twins(store, tmp_path)
    indexer = Indexer(store)
    indexer.index_key(first)
    assert indexer.index_key(second).action == "skipped"
    store.delete(first)
    indexer.index_key(first)
    assert served(store) == {}
    indexer.reindex()
    assert served(store) == {"acme_kit-5.0-py3-none-any.whl": second}
