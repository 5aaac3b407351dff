"""Issue 12, item 7: what `serverless-pypi mirror` reads from names, requirements and lock files."""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet

from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.upstream import UpstreamFile
from serverless_pypi.core.wanted import (
    InvalidWanted,
    LockedFile,
    WantedProject,
    input_kind,
    parse_pylock,
    parse_requirement,
    parse_requirements,
    parse_uv_lock,
    select_files,
)

PUBLIC_CORE = NormalizedName("public-core")
A = "a" * 64
B = "b" * 64
C = "c" * 64

# --- input kinds ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "kind"),
    [
        ("uv.lock", "uv.lock"),
        ("pylock.toml", "pylock"),
        ("pylock.dev.toml", "pylock"),
        ("requirements.txt", "requirements"),
        ("requirements-dev.in", "requirements"),
        ("pylock.a.b.toml", "requirements"),  # PEP 751: one name between the dots
        ("my-uv.lock", "requirements"),
    ],
)
def test_input_kind_from_the_file_name(filename: str, kind: str) -> None:
    assert input_kind(filename) == kind


# --- names and requirements -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "specifier"),
    [
        ("requests", "requests", ""),
        ("Requests", "requests", ""),
        ("zope.interface", "zope-interface", ""),
        ("requests>=2.30", "requests", ">=2.30"),
        ("requests >= 2.30, < 3", "requests", "<3,>=2.30"),
        ("requests[socks]==2.31.0", "requests", "==2.31.0"),
        ('requests; python_version < "3.8"', "requests", ""),  # every environment is mirrored
    ],
)
def test_a_requirement_names_a_project_and_its_versions(
    text: str, name: str, specifier: str
) -> None:
    parsed = parse_requirement(text, "arg")
    assert isinstance(parsed, WantedProject)
    assert (parsed.name, parsed.specifier) == (name, SpecifierSet(specifier))


def test_a_direct_url_is_skipped_with_a_note() -> None:
    note = parse_requirement("pkg @ https://example.com/pkg-1.0.tar.gz", "arg")
    assert note == "arg: skipped pkg: a direct URL is not fetched from an index"


@pytest.mark.parametrize("text", ["", "-e .", "requests>>2", "./local/dir", "a b c", "ré"])
def test_not_a_requirement_is_refused_naming_it(text: str) -> None:
    with pytest.raises(InvalidWanted, match="arg: .* is not a project name or requirement"):
        parse_requirement(text, "arg")


REQUIREMENTS = """\
# a comment
requests>=2.30  # why we need it
  idna==3.7 \\
    --hash=sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA \\
    --hash sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb \\
    --hash=sha384:ffff

--index-url https://user:secret@example.com/simple/
-r other.txt
-e ./editable
certifi
local @ file:///tmp/local-1.0.tar.gz
"""


def test_a_requirements_file() -> None:
    wanted = parse_requirements(REQUIREMENTS, "requirements.txt")
    assert [(p.name, str(p.specifier), p.source, p.hashes) for p in wanted.projects] == [
        ("requests", ">=2.30", "requirements.txt:2", frozenset()),
        ("idna", "==3.7", "requirements.txt:3", frozenset({A, B})),
        ("certifi", "", "requirements.txt:11", frozenset()),
    ]
    assert wanted.notes == (
        "requirements.txt:8: skipped an options line (--index-url ...)",
        "requirements.txt:9: skipped an options line (-r ...)",
        "requirements.txt:10: skipped an options line (-e ...)",
        "requirements.txt:12: skipped local: a direct URL is not fetched from an index",
    )
    # an option's value can carry credentials: never repeated
    assert not any("secret" in note for note in wanted.notes)
    assert wanted.names() == ["requests", "idna", "certifi"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("requests\nnot a requirement!\n", r"requirements.txt:2: 'not a requirement!' is not"),
        ("idna==3.7 --hash=sha256:xyz\n", r"requirements.txt:1: --hash='sha256:xyz' is not a sha"),
    ],
)
def test_a_bad_requirements_line_is_refused_with_its_line(text: str, message: str) -> None:
    with pytest.raises(InvalidWanted, match=message):
        parse_requirements(text, "requirements.txt")


# --- uv.lock ----------------------------------------------------------------------------------

UV_LOCK = f"""\
version = 1
revision = 3
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [{{ name = "Public-Core" }}]

[[package]]
name = "Public-Core"
version = "1.0"
source = {{ registry = "http://127.0.0.1:1/simple/" }}
sdist = {{ url = "http://u/public_core-1.0.tar.gz", hash = "sha256:{A}", size = 1 }}
wheels = [
    {{ url = "http://u/public_core-1.0-py3-none-any.whl", hash = "sha256:{B.upper()}", size = 2 }},
]

[[package]]
name = "flat"
version = "2.0"
source = {{ registry = "../wheels" }}
wheels = [{{ path = "../wheels/flat-2.0-py3-none-any.whl", hash = "sha256:{C}" }}]

[[package]]
name = "viagit"
version = "1.0"
source = {{ git = "https://example.com/viagit?rev=main#abc" }}
"""


def test_a_uv_lock_names_its_registry_files() -> None:
    wanted = parse_uv_lock(UV_LOCK)
    assert wanted.files == (
        LockedFile(PUBLIC_CORE, "public_core-1.0.tar.gz", A, "uv.lock: package public-core 1.0"),
        LockedFile(
            PUBLIC_CORE,
            "public_core-1.0-py3-none-any.whl",
            B,
            "uv.lock: package public-core 1.0",
        ),
        LockedFile(
            NormalizedName("flat"), "flat-2.0-py3-none-any.whl", C, "uv.lock: package flat 2.0"
        ),
    )
    assert wanted.notes == (
        "uv.lock: package app 0.1.0: skipped (virtual, not from an index)",
        "uv.lock: package viagit 1.0: skipped (git, not from an index)",
    )
    assert wanted.projects == ()


def _uv(package: str) -> str:
    return f"version = 1\n\n[[package]]\n{package}\n"


REGISTRY = 'source = { registry = "https://x/simple" }'
UV_BAD = [
    ("not toml [[[", "uv.lock: not a valid TOML file"),
    ("version = 2\n", r"uv.lock: lock version 2 is not supported \(1 is\)"),
    ('version = "1"\n', r"lock version '1' is not supported"),
    ("version = 1\npackage = 3\n", r"\[\[package\]\] is not an array of tables"),
    ("version = 1\npackage = [1]\n", r"\[\[package\]\]\[0\] is not a table"),
    (_uv("version = '1'"), "`name` is missing or not a string"),
    (_uv("name = 'bad name!'"), "'bad name!' is not a valid project name"),
    (_uv(f"name = 'x'\n{REGISTRY}\nsdist = 'x'"), "package x: `sdist` is not a table"),
    (_uv(f"name = 'x'\n{REGISTRY}\nwheels = {{}}"), "package x is not an array of tables"),
    (_uv(f"name = 'x'\n{REGISTRY}\nsdist = {{ url = 'https://h/x-1.tar.gz' }}"), "`hash` is"),
    (
        _uv(f"name = 'x'\n{REGISTRY}\nsdist = {{ url = 'https://h/x-1.tar.gz', hash = 'md5:0' }}"),
        "hash 'md5:0' is not a sha256 digest",
    ),
    (
        _uv(
            f"name = 'x'\n{REGISTRY}\nsdist = {{ url = 'https://h/x-1.tar.gz', hash = 'sha256:0' }}"
        ),
        "'0' is not a sha256 digest",
    ),
    (
        _uv(f"name = 'x'\n{REGISTRY}\nsdist = {{ hash = 'sha256:{A}' }}"),
        "has neither a file name, a `url` nor a `path`",
    ),
    (
        # a file of another project: the lock cannot make the mirror fetch it under this name
        _uv(
            f"name = 'x'\n{REGISTRY}\n"
            f"sdist = {{ url = 'https://h/y-1.tar.gz', hash = 'sha256:{A}' }}"
        ),
        "'y-1.tar.gz' is not a distribution of 'x'",
    ),
    (
        # a path hidden in the percent-encoding never becomes part of a key
        _uv(
            f"name = 'x'\n{REGISTRY}\n"
            f"sdist = {{ url = 'https://h/..%2F..%2Fx-1.tar.gz', hash = 'sha256:{A}' }}"
        ),
        "contains a path separator",
    ),
    (
        _uv(
            f"name = 'x'\n{REGISTRY}\nsdist = {{ url = 'https://h/x-1.exe', hash = 'sha256:{A}' }}"
        ),
        "is not a distribution",
    ),
    (
        _uv(f"name = 'x'\n{REGISTRY}\nwheels = [{{ filename = 3, hash = 'sha256:{A}' }}]"),
        "`filename` is not a string",
    ),
    (_uv("name = 'x'\nsource = 'registry'"), "package x: `source` is not a table"),
]


@pytest.mark.parametrize(("text", "message"), UV_BAD)
def test_a_malformed_uv_lock_is_refused_saying_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidWanted, match=message):
        parse_uv_lock(text)


def test_a_huge_uv_lock_is_refused() -> None:
    text = "version = 1\npackage = [" + "{}," * 100_001 + "]\n"
    with pytest.raises(InvalidWanted, match="more than 100000"):
        parse_uv_lock(text)


# --- pylock.toml (PEP 751) ---------------------------------------------------------------------

PYLOCK = f"""\
lock-version = "1.0"
created-by = "uv"

[[packages]]
name = "public-core"
version = "1.0"
index = "http://127.0.0.1:1/simple/"
sdist = {{ url = "http://u/public_core-1.0.tar.gz", hashes = {{ sha256 = "{A}" }} }}

[[packages.wheels]]
name = "public_core-1.0-py3-none-any.whl"
url = "http://x/other"
hashes = {{ sha256 = "{B}", sha512 = "00" }}

[[packages]]
name = "local"
directory = {{ path = "." }}

[[packages]]
name = "archived"
archive = {{ url = "https://example.com/a.tar.gz", hashes = {{ sha256 = "{C}" }} }}
"""


def test_a_pylock_names_its_files() -> None:
    wanted = parse_pylock(PYLOCK)
    assert wanted.files == (
        LockedFile(
            PUBLIC_CORE, "public_core-1.0.tar.gz", A, "pylock.toml: package public-core 1.0"
        ),
        # PEP 751: the entry's `name` is the file name, whatever the URL's last segment
        LockedFile(
            PUBLIC_CORE,
            "public_core-1.0-py3-none-any.whl",
            B,
            "pylock.toml: package public-core 1.0",
        ),
    )
    assert wanted.notes == (
        "pylock.toml: package local: skipped (directory, not from an index)",
        "pylock.toml: package archived: skipped (archive, not from an index)",
    )


def _pylock(package: str) -> str:
    return f'lock-version = "1.0"\n\n[[packages]]\n{package}\n'


PYLOCK_BAD = [
    ("= nope", "pylock.toml: not a valid TOML file"),
    ("packages = []\n", r"lock-version None is not supported \(1.x is\)"),
    ('lock-version = "2.0"\n', r"lock-version '2.0' is not supported"),
    ('lock-version = "1.0"\npackages = {}\n', "is not an array of tables"),
    (_pylock("version = '1'"), "`name` is missing or not a string"),
    (
        _pylock("name = 'x'\nsdist = { url = 'https://h/x-1.tar.gz' }"),
        "package x: sdist: `hashes` is not a table",
    ),
    (
        _pylock("name = 'x'\nsdist = { url = 'https://h/x-1.tar.gz', hashes = { md5 = '0' } }"),
        "has no sha256 hash",
    ),
    (
        _pylock("name = 'x'\nsdist = { url = 'https://h/x-1.tar.gz', hashes = { sha256 = 1 } }"),
        "1 is not a sha256 digest",
    ),
    (
        _pylock(f"name = 'x'\nwheels = [{{ name = 7, hashes = {{ sha256 = '{A}' }} }}]"),
        "wheels\\[0\\]: `name` is not a string",
    ),
    (
        _pylock(
            f"name = 'x'\nwheels = [{{ name = '../x-1-py3-none-any.whl', "
            f"hashes = {{ sha256 = '{A}' }} }}]"
        ),
        "contains a path separator",
    ),
    (
        _pylock(
            f"name = 'x'\nwheels = [{{ name = 'x-1.0-py3-none-any.whl', "
            f"hashes = {{ sha256 = '{A}' }} }}]\nsdist = 3"
        ),
        "`sdist` is not a table",
    ),
]


@pytest.mark.parametrize(("text", "message"), PYLOCK_BAD)
def test_a_malformed_pylock_is_refused_saying_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidWanted, match=message):
        parse_pylock(text)


# --- choosing files ----------------------------------------------------------------------------


def _file(filename: str, sha256: str | None = None, yanked: str | None = None) -> UpstreamFile:
    return UpstreamFile(filename, f"https://files/{filename}", sha256, yanked=yanked)


PAGE = [
    _file("pkg-1.0.tar.gz", A),
    _file("pkg-1.0-py3-none-any.whl", B),
    _file("pkg-1.1-py3-none-any.whl", C),
    _file("pkg-1.2-py3-none-any.whl", "d" * 64, yanked=""),
    _file("pkg-2.0rc1-py3-none-any.whl", "e" * 64),
    _file("not-a-distribution.txt"),
]


def _select(
    text: str, *, all_versions: bool = False, hashes: frozenset[str] = frozenset()
) -> list[str]:
    wanted = parse_requirement(text, "arg", hashes)
    assert isinstance(wanted, WantedProject)
    return [f.filename for f in select_files(PAGE, wanted, all_versions=all_versions)]


@pytest.mark.parametrize(
    ("text", "all_versions", "expected"),
    [
        # the newest final release: yanked files and pre-releases are not chosen
        ("pkg", False, ["pkg-1.1-py3-none-any.whl"]),
        ("pkg<1.1", False, ["pkg-1.0.tar.gz", "pkg-1.0-py3-none-any.whl"]),
        # PEP 592: a yanked file only when pinned with ==
        ("pkg==1.2", False, ["pkg-1.2-py3-none-any.whl"]),
        ("pkg>=1.2", False, ["pkg-2.0rc1-py3-none-any.whl"]),  # only a pre-release matches
        ("pkg>=2.0rc1", False, ["pkg-2.0rc1-py3-none-any.whl"]),
        ("pkg>5", False, []),
        (
            "pkg",
            True,
            ["pkg-1.0.tar.gz", "pkg-1.0-py3-none-any.whl", "pkg-1.1-py3-none-any.whl"],
        ),
    ],
)
def test_select_files(text: str, all_versions: bool, expected: list[str]) -> None:
    assert _select(text, all_versions=all_versions) == expected


def test_hash_pins_select_exactly_those_files() -> None:
    assert _select("pkg==1.0", hashes=frozenset({B})) == ["pkg-1.0-py3-none-any.whl"]
