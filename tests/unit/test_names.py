"""Project names and distribution file names (PEP 503, PEP 508, PEP 427, PEP 625)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from serverless_pypi.core.names import (
    MAX_FILENAME_LENGTH,
    MAX_PROJECT_NAME_LENGTH,
    InvalidFilename,
    InvalidProjectName,
    check_filename,
    is_valid_project_name,
    normalize_project_name,
    parse_distribution_filename,
)

# the specification's own expressions (packaging.python.org, "Names and normalization")
SPEC_VALID = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE | re.ASCII)


def spec_normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("a", "a"),
        ("A", "a"),
        ("0", "0"),
        ("requests", "requests"),
        ("My_Pkg", "my-pkg"),
        ("my.pkg", "my-pkg"),
        ("MY-PKG", "my-pkg"),
        ("my--__..pkg", "my-pkg"),
        ("Friendly-Bard", "friendly-bard"),
        ("FRIENDLY._-BARD", "friendly-bard"),
        ("zope.interface", "zope-interface"),
        ("a1b2", "a1b2"),
        ("x" * MAX_PROJECT_NAME_LENGTH, "x" * MAX_PROJECT_NAME_LENGTH),
    ],
)
def test_valid_names_normalize(name: str, normalized: str) -> None:
    assert is_valid_project_name(name)
    assert normalize_project_name(name) == normalized


@pytest.mark.parametrize(
    "name",
    [
        "",
        "-a",
        "a-",
        "_a",
        "a_",
        ".a",
        "a.",
        ".serverless-pypi",
        "..",
        ".",
        "a b",
        "a/b",
        "a\\b",
        "a%2Fb",
        "café",
        "ﬁle",  # a ligature that NFKC would turn into ASCII: still not ASCII
        "\u212aeras",  # KELVIN SIGN: matches [A-Z] under IGNORECASE without re.ASCII
        "\u017f",  # LATIN SMALL LETTER LONG S, likewise
        "a\u0131",  # dotless i
        "a\x00",
        "a\t",
        "abc\n",  # `$` would match before a trailing newline
        "\nabc",
        "x" * (MAX_PROJECT_NAME_LENGTH + 1),
        "a+b",
        "a:b",
        "<script>",
    ],
)
def test_invalid_names_are_refused(name: str) -> None:
    assert not is_valid_project_name(name)
    with pytest.raises(InvalidProjectName) as raised:
        normalize_project_name(name)
    assert isinstance(raised.value, ValueError)
    # the message shows what was refused (or its length, for over-long names)
    message = str(raised.value)
    assert repr(name) in message or str(len(name)) in message


@settings(deadline=None)
@given(st.text(max_size=40))
def test_validity_follows_the_spec(name: str) -> None:
    expected = SPEC_VALID.match(name) is not None and len(name) <= MAX_PROJECT_NAME_LENGTH
    assert is_valid_project_name(name) is expected


@settings(deadline=None)
@given(st.from_regex(SPEC_VALID, fullmatch=True).filter(lambda n: len(n) <= 200))
def test_normalization_matches_the_spec_and_is_idempotent(name: str) -> None:
    normalized = normalize_project_name(name)
    assert normalized == spec_normalize(name)
    assert is_valid_project_name(normalized)
    assert normalize_project_name(normalized) == normalized


@settings(deadline=None)
@given(st.text(max_size=60))
def test_normalize_raises_only_invalid_project_name(name: str) -> None:
    try:
        normalize_project_name(name)
    except InvalidProjectName:
        pass


# -- file names as path segments ---------------------------------------------------------


@pytest.mark.parametrize(
    "filename",
    [
        "pkg-1.0.tar.gz",
        "pkg-1.0-py3-none-any.whl",
        "a",
        "README",
        "name with spaces.tar.gz",
        "ünïcode-1.0.tar.gz",
        "x" * MAX_FILENAME_LENGTH,
        "a..b",
    ],
)
def test_safe_filenames(filename: str) -> None:
    assert check_filename(filename) == filename


@pytest.mark.parametrize(
    "filename",
    [
        "",
        ".",
        "..",
        ".hidden",
        ".serverless-pypi",
        "a/b",
        "../a",
        "a\\b",
        "a\x00b",
        "a\nb",
        "a\rb",
        "a\x7f",
        "x" * (MAX_FILENAME_LENGTH + 1),
        "é" * (MAX_FILENAME_LENGTH // 2 + 1),  # 256 bytes in UTF-8
    ],
)
def test_unsafe_filenames(filename: str) -> None:
    with pytest.raises(InvalidFilename):
        check_filename(filename)


@settings(deadline=None)
@given(st.text(max_size=300))
def test_check_filename_never_lets_a_separator_through(filename: str) -> None:
    try:
        check_filename(filename)
    except InvalidFilename:
        return
    assert "/" not in filename and "\\" not in filename
    assert filename not in {"", ".", ".."} and not filename.startswith(".")
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in filename)


# -- distribution file names -------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "project", "version", "kind"),
    [
        ("pkg-1.0-py3-none-any.whl", "pkg", "1.0", "wheel"),
        ("My_Pkg-2.0.post1-py2.py3-none-any.whl", "my-pkg", "2.0.post1", "wheel"),
        ("numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.whl", "numpy", "1.26.4", "wheel"),
        ("pkg-1.0-1build-py3-none-any.whl", "pkg", "1.0", "wheel"),
        ("pkg-1.0.tar.gz", "pkg", "1.0", "sdist"),
        ("my_pkg-1.0rc1.tar.gz", "my-pkg", "1.0rc1", "sdist"),
        ("my-pkg-1.0.zip", "my-pkg", "1.0", "sdist"),
        ("zope.interface-6.0.tar.gz", "zope-interface", "6.0", "sdist"),
    ],
)
def test_parse_distribution_filenames(filename: str, project: str, version: str, kind: str) -> None:
    dist = parse_distribution_filename(filename)
    assert dist.filename == filename
    assert dist.project == project
    assert dist.version == Version(version)
    assert dist.kind == kind


@pytest.mark.parametrize(
    "filename",
    [
        "pkg-1.0.egg",
        "pkg-1.0.tar.bz2",
        "pkg-1.0.exe",
        "pkg.whl",
        "pkg-1.0-py3-none.whl",
        "pkg-notaversion-py3-none-any.whl",
        "pkg-1.0-py3-none-any.whl.metadata",
        "pkg.tar.gz",
        "pkg-.tar.gz",
        "pkg-1.0-py3-none-any.WHL",
        ".pkg-1.0.tar.gz",
        "../pkg-1.0.tar.gz",
        "dir/pkg-1.0.tar.gz",
        "pkg-1.0\n.tar.gz",
        "",
    ],
)
def test_unparseable_distribution_filenames(filename: str) -> None:
    with pytest.raises(InvalidFilename):
        parse_distribution_filename(filename)


def test_invalid_wheel_name_chains_the_packaging_error() -> None:
    with pytest.raises(InvalidFilename) as raised:
        parse_distribution_filename("pkg-notaversion-py3-none-any.whl")
    assert raised.value.__cause__ is not None
    assert "pkg-notaversion-py3-none-any.whl" in str(raised.value)


@settings(deadline=None)
@given(st.text(max_size=80))
def test_parse_distribution_filename_raises_only_invalid_filename(filename: str) -> None:
    try:
        dist = parse_distribution_filename(filename)
    except InvalidFilename:
        return
    assert is_valid_project_name(dist.project)


@settings(deadline=None)
@given(st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,30}[A-Za-z0-9])?", fullmatch=True))
def test_normalization_equals_packaging_canonicalize_name(name: str) -> None:
    # the fast path for names already normalized must agree with packaging everywhere
    from packaging.utils import canonicalize_name

    assert normalize_project_name(name) == canonicalize_name(name)
