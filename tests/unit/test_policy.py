"""core.policy: every rule, their order, the document's round trip, and hostile documents."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from serverless_pypi.core.names import NormalizedName as N
from serverless_pypi.core.policy import (
    MAX_COOLDOWN_SECONDS,
    STATUSES,
    Cooldown,
    InvalidPolicy,
    Policy,
    ProjectStatus,
    Revocation,
    Verdict,
    apply_to_page,
    file_verdict,
    format_time,
    parse_cutoff,
    parse_duration,
    parse_upload_time,
)

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
DAY = 86400
BAD = "b" * 64
GOOD = "a" * 64
REVOKED = Revocation("malware (PYSEC-2026-1)", "2026-11-30T10:00:00Z")


def entry(
    filename: str, *, age: timedelta | None = None, sha256: str | None = GOOD, **extra: Any
) -> dict[str, Any]:
    """A PEP 691 file dict uploaded `age` before NOW (no upload-time when None)."""
    data: dict[str, Any] = {
        "filename": filename,
        "url": filename,
        "hashes": {"sha256": sha256} if sha256 else {},
        "provenance": None,
    }
    if age is not None:
        data["upload-time"] = format_time(NOW - age)
    data.update(extra)
    return data


def verdict(
    policy: Policy, file: dict[str, Any], *, name: str = "demo", private: bool = False
) -> Verdict:
    return file_verdict(policy, name, file, private=private, now=NOW)


OLD = entry("demo-1.0.tar.gz", age=timedelta(days=30))
NEW = entry("demo-2.0.tar.gz", age=timedelta(hours=1))
COOLDOWN = Policy(cooldown=Cooldown(7 * DAY))


# -- durations and cutoffs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("7d", 7 * DAY),
        ("24h", DAY),
        ("90m", 5400),
        ("30s", 30),
        ("2w", 14 * DAY),
        (" 7D ", 7 * DAY),
        ("7 d", 7 * DAY),
        ("P7D", 7 * DAY),
        ("PT24H", DAY),
        ("PT5S", 5),
        ("P1DT2H", DAY + 7200),
        ("PT1H30M", 5400),
        ("P2W", 14 * DAY),
        ("p3d", 3 * DAY),
        ("P1W2DT3H4M5S", 9 * DAY + 3 * 3600 + 4 * 60 + 5),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a duration"),
        ("7", "not a duration"),
        ("d", "not a duration"),
        ("7 days", "not a duration"),
        ("-7d", "not a duration"),
        ("1.5d", "not a duration"),
        ("7d12h", "not a duration"),
        ("P", "not a duration"),
        ("PT", "not a duration"),
        ("P1DT", "not a duration"),
        ("P1Y", "years and months"),
        ("P2M", "years and months"),
        ("0s", "longer than zero"),
        ("PT0S", "longer than zero"),
        ("3651d", "longer than 3650 days"),
        ("99999999999d", "not a duration"),
    ],
)
def test_parse_duration_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T12:30:00Z", datetime(2026, 11, 1, 12, 30, tzinfo=UTC)),
        ("2026-11-01T12:30:00", datetime(2026, 11, 1, 12, 30, tzinfo=UTC)),  # naive: UTC
        ("2026-11-01T12:30:00+02:00", datetime(2026, 11, 1, 10, 30, tzinfo=UTC)),
        ("2026-11-01 12:30", datetime(2026, 11, 1, 12, 30, tzinfo=UTC)),
    ],
)
def test_parse_cutoff(text: str, moment: datetime) -> None:
    parsed = parse_cutoff(text)
    assert parsed == moment and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2026-13-01", "2026-02-30", "01/11/2026", "2026-11-01Tnoon"]
)
def test_parse_cutoff_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        parse_cutoff(text)


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-12-01T10:00:00Z", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        ("2026-12-01T10:00:00.5Z", datetime(2026, 12, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-12-01T10:00:00.123456789Z", datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-12-01T10:00:00", None),  # PEP 700: UTC with a Z
        ("2026-12-01T10:00:00+00:00", None),
        ("2026-02-30T10:00:00Z", None),
        ("", None),
        (None, None),
        (12, None),
    ],
)
def test_parse_upload_time(text: object, moment: datetime | None) -> None:
    assert parse_upload_time(text) == moment


# -- the file rules, one by one and in order ------------------------------------------------


def test_no_policy_serves_everything() -> None:
    policy = Policy()
    assert all(verdict(policy, f).served for f in (OLD, NEW, entry("demo-3.0.tar.gz")))
    assert not policy.applies_to("demo", private=False)
    assert not policy.applies_to("demo", private=True)


def test_cooldown_hides_young_files_until_they_come_of_age() -> None:
    assert verdict(COOLDOWN, OLD) == Verdict(True)
    hidden = verdict(COOLDOWN, NEW)
    visible_at = NOW - timedelta(hours=1) + timedelta(days=7)
    assert hidden == Verdict(
        False, f"hidden by the cooldown until {format_time(visible_at)}", visible_at
    )
    assert hidden.reason == "hidden by the cooldown until 2026-12-08T11:00:00Z"


def test_a_file_comes_of_age_at_visible_at_exactly() -> None:
    visible_at = verdict(COOLDOWN, NEW).visible_at
    assert visible_at is not None
    just_before = visible_at - timedelta(microseconds=1)
    assert not file_verdict(COOLDOWN, "demo", NEW, private=False, now=just_before).served
    assert file_verdict(COOLDOWN, "demo", NEW, private=False, now=visible_at).served


def test_missing_or_malformed_upload_time_fails_closed() -> None:
    for file in (entry("demo-3.0.tar.gz"), {**entry("demo-3.0.tar.gz"), "upload-time": "soon"}):
        found = verdict(COOLDOWN, file)
        assert not found.served and found.visible_at is None
        assert "no upload-time" in (found.reason or "")
        # without a time rule the file is served
        assert verdict(Policy(), file).served


def test_cooldown_applies_to_upstream_projects_only_unless_private() -> None:
    assert verdict(COOLDOWN, NEW, private=True).served
    assert not COOLDOWN.applies_to("demo", private=True)
    private = Policy(cooldown=Cooldown(7 * DAY, private=True))
    assert not verdict(private, NEW, private=True).served
    assert private.applies_to("demo", private=True)


def test_uploaded_before_is_a_hard_cutoff() -> None:
    cutoff = NOW - timedelta(days=2)
    policy = Policy(uploaded_before=cutoff)
    assert verdict(policy, OLD).served
    found = verdict(policy, NEW)
    assert not found.served and found.visible_at is None  # never comes of age
    assert found.reason == (
        f"uploaded at {NEW['upload-time']}, not before the cutoff 2026-11-29T12:00:00Z"
    )
    at_cutoff = {**entry("demo-1.5.tar.gz"), "upload-time": format_time(cutoff)}
    assert not verdict(policy, at_cutoff).served  # strictly before
    assert verdict(policy, NEW, private=True).served  # upstream projects only by default


def test_cutoff_takes_precedence_over_the_cooldown() -> None:
    policy = Policy(cooldown=Cooldown(7 * DAY), uploaded_before=NOW - timedelta(days=2))
    found = verdict(policy, NEW)
    assert found.reason is not None and "cutoff" in found.reason and found.visible_at is None


@pytest.mark.parametrize(
    ("exempt", "served"),
    [
        (set(), False),
        ({"demo"}, True),
        ({"Demo"}, True),  # names normalized
        ({"demo==2.0"}, True),
        ({"demo==2.0.0"}, True),  # versions compared by packaging: 2.0 == 2.0.0
        ({"demo==2"}, True),
        ({"demo==1.0"}, False),
        ({"demo==2.0.post1"}, False),
        ({"other"}, False),
        ({"other==2.0"}, False),
    ],
)
def test_exemptions_lift_the_time_rules(exempt: set[str], served: bool) -> None:
    policy = Policy(
        cooldown=Cooldown(7 * DAY),
        uploaded_before=NOW - timedelta(days=2),
        exempt=frozenset(exempt),
    )
    assert verdict(policy, NEW).served is served


def test_a_project_exemption_lifts_the_fast_path_question() -> None:
    policy = Policy(cooldown=Cooldown(DAY), exempt=frozenset({"demo"}))
    assert not policy.applies_to("demo", private=False)
    assert policy.applies_to("other", private=False)
    # a version exemption still leaves the other versions under the cooldown
    assert Policy(cooldown=Cooldown(DAY), exempt=frozenset({"demo==1"})).applies_to(
        "demo", private=False
    )


def test_exemptions_do_not_lift_a_revocation_or_a_quarantine() -> None:
    policy = Policy(
        exempt=frozenset({"demo"}),
        revoked={BAD: REVOKED},
        statuses={N("other"): ProjectStatus("quarantined")},
    )
    assert verdict(policy, entry("demo-1.0.tar.gz", sha256=BAD)) == Verdict(
        False, "revoked: malware (PYSEC-2026-1)"
    )
    assert not verdict(replace(policy, exempt=frozenset({"other"})), OLD, name="other").served


@pytest.mark.parametrize("private", [False, True])
@pytest.mark.parametrize("name", ["demo", "renamed-fork", "Other.Name"])
def test_a_revoked_digest_is_hidden_under_any_name(name: str, private: bool) -> None:
    policy = Policy(revoked={BAD.upper(): REVOKED})  # digests are lowercased
    file = entry("x-1.0.tar.gz", sha256=BAD.upper(), age=timedelta(days=400))
    assert verdict(policy, file, name=name, private=private) == Verdict(
        False, "revoked: malware (PYSEC-2026-1)"
    )
    assert verdict(policy, OLD, name=name, private=private).served
    assert policy.applies_to(name, private=private)


def test_quarantined_projects_offer_no_files() -> None:
    policy = Policy(statuses={N("demo"): ProjectStatus("quarantined", "under review")})
    assert verdict(policy, OLD) == Verdict(False, "project demo is quarantined (under review)")
    assert verdict(policy, OLD, name="other").served
    assert verdict(Policy(statuses={N("demo"): ProjectStatus("quarantined")}), OLD).reason == (
        "project demo is quarantined"
    )


@pytest.mark.parametrize("status", ["active", "archived", "deprecated"])
def test_other_statuses_keep_the_files(status: str) -> None:
    assert verdict(Policy(statuses={N("demo"): ProjectStatus(status)}), OLD).served


def test_rule_order_revoked_then_quarantined_then_time() -> None:
    everything = Policy(
        cooldown=Cooldown(7 * DAY),
        revoked={BAD: REVOKED},
        statuses={N("demo"): ProjectStatus("quarantined")},
    )
    young_and_revoked = entry("demo-2.0.tar.gz", age=timedelta(hours=1), sha256=BAD)
    assert verdict(everything, young_and_revoked).reason == "revoked: malware (PYSEC-2026-1)"
    assert verdict(everything, NEW).reason == "project demo is quarantined"
    lifted = replace(everything, statuses={})
    assert (verdict(lifted, NEW).reason or "").startswith("hidden by the cooldown")


# -- upstream refusals, namespaces, statuses ------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "name", "refusal"),
    [
        (Policy(), "anything", None),
        (Policy(deny=("evil-*",)), "Evil_Thing", "the upstream project evil-thing is denied"),
        (Policy(deny=("evil-*",)), "evil", None),
        (Policy(deny=("evil?",)), "evil1", "is denied (deny list: 'evil?')"),
        (Policy(allow=("requests", "django-*")), "django-rest", None),
        (Policy(allow=("requests", "django-*")), "Requests", None),
        (
            Policy(allow=("requests",)),
            "flask",
            "the upstream project flask is not on the allow list",
        ),
        (Policy(allow=("*",), deny=("flask",)), "flask", "is denied"),  # deny before allow
        (Policy(namespaces=("acme",)), "acme", "in the namespace 'acme'"),
        (Policy(namespaces=("acme",)), "Acme.Tools", "in the namespace 'acme'"),
        (Policy(namespaces=("acme",)), "acmeish", None),
        (Policy(namespaces=("acme",), allow=("acme-*",)), "acme-x", "PEP 752"),  # namespace first
    ],
)
def test_upstream_refusal(policy: Policy, name: str, refusal: str | None) -> None:
    found = policy.upstream_refusal(name)
    if refusal is None:
        assert found is None
    else:
        assert found is not None and refusal in found


@pytest.mark.parametrize(
    ("name", "namespace"),
    [
        ("acme", "acme"),
        ("acme-tools", "acme-tools"),  # the most specific
        ("acme-tools-x", "acme-tools"),
        ("acme-toolsx", "acme"),
        ("ACME_Other", "acme"),
        ("acmeish", None),
        ("other", None),
        ("xacme", None),
    ],
)
def test_namespace_of(name: str, namespace: str | None) -> None:
    policy = Policy(namespaces=("acme-", "Acme_Tools"))  # the prefix, or the name
    assert policy.namespaces == ("acme", "acme-tools")
    assert policy.namespace_of(name) == namespace
    assert policy.applies_to(name, private=True) is (namespace is not None)


def test_status_of() -> None:
    policy = Policy(statuses={N("My_Project"): ProjectStatus("archived", "moved to new-project")})
    assert policy.status_of("my.project") == ProjectStatus("archived", "moved to new-project")
    assert policy.status_of("other") is None
    assert policy.applies_to("my-project", private=True)
    assert not policy.applies_to("other", private=True)


# -- the page -------------------------------------------------------------------------------


def page(*files: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "meta": {"api-version": "1.4"},
        "name": "demo",
        "versions": ["1.0", "2.0"],
        "files": list(files),
        **extra,
    }


def test_apply_to_page_filters_and_recomputes_versions() -> None:
    newer = entry("demo-2.0-py3-none-any.whl", age=timedelta(hours=2))
    original = page(OLD, NEW, newer)
    result, next_change = apply_to_page(COOLDOWN, original, private=False, now=NOW)
    assert result["files"] == [OLD]
    assert result["versions"] == ["1.0"]
    assert next_change == NOW - timedelta(hours=2) + timedelta(days=7)  # the earliest
    assert "project-status" not in result
    assert original["files"] == [OLD, NEW, newer] and original["versions"] == ["1.0", "2.0"]


def test_apply_to_page_keeps_versions_when_nothing_is_hidden() -> None:
    original = page(OLD, versions=["0.5", "1.0"])  # a version without files stays listed
    result, next_change = apply_to_page(COOLDOWN, original, private=False, now=NOW)
    assert result == original and next_change is None


def test_apply_to_page_sets_the_project_status() -> None:
    archived = Policy(statuses={N("demo"): ProjectStatus("archived", "read only")})
    result, _ = apply_to_page(archived, page(OLD, NEW), private=True, now=NOW)
    assert result["project-status"] == {"status": "archived", "reason": "read only"}
    assert result["files"] == [OLD, NEW]
    quarantined = Policy(statuses={N("demo"): ProjectStatus("quarantined")})
    result, next_change = apply_to_page(quarantined, page(OLD, NEW), private=False, now=NOW)
    assert result["project-status"] == {"status": "quarantined"}
    assert result["files"] == [] and result["versions"] == [] and next_change is None


def test_apply_to_page_keeps_an_upstream_status_unless_the_policy_sets_one() -> None:
    carried = page(OLD, **{"project-status": {"status": "deprecated", "reason": "use x"}})
    result, _ = apply_to_page(Policy(revoked={BAD: REVOKED}), carried, private=False, now=NOW)
    assert result["project-status"] == {"status": "deprecated", "reason": "use x"}
    own = Policy(statuses={N("demo"): ProjectStatus("active")})
    result, _ = apply_to_page(own, carried, private=False, now=NOW)
    assert result["project-status"] == {"status": "active"}


def test_apply_to_page_drops_revoked_files() -> None:
    revoked = entry("demo-1.0-py3-none-any.whl", age=timedelta(days=90), sha256=BAD)
    result, next_change = apply_to_page(
        Policy(revoked={BAD: REVOKED}), page(OLD, revoked), private=True, now=NOW
    )
    assert result["files"] == [OLD] and result["versions"] == ["1.0"] and next_change is None


# -- the document ---------------------------------------------------------------------------


def test_the_empty_policy_round_trips_and_is_canonical() -> None:
    data = Policy().to_bytes()
    assert json.loads(data)["format"] == 1
    assert Policy.from_bytes(data) == Policy()
    assert Policy(allow=("b", "a", "a")).to_bytes() == Policy(allow=("a", "b")).to_bytes()


def test_construction_normalizes() -> None:
    policy = Policy(
        exempt=frozenset({"Foo_Bar == 1.0", "Baz"}),
        allow=("Django_*",),
        revoked={BAD.upper(): REVOKED},
        statuses={N("X.Y"): ProjectStatus("archived")},
        namespaces=("ACME",),
        uploaded_before=datetime(2026, 11, 1, 2, tzinfo=timezone(timedelta(hours=2))),
    )
    assert policy.exempt == {"foo-bar==1.0", "baz"}
    assert policy.allow == ("django-*",)
    assert set(policy.revoked) == {BAD}
    assert set(policy.statuses) == {"x-y"}
    assert policy.namespaces == ("acme",)
    assert policy.uploaded_before == datetime(2026, 11, 1, tzinfo=UTC)
    assert policy.is_exempt("foo.bar", Version("1.0.0")) and policy.is_exempt("baz", None)
    with pytest.raises(TypeError):
        policy.revoked[GOOD] = REVOKED  # type: ignore[index]


names = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,10}[A-Za-z0-9])?", fullmatch=True)
reasons = st.text(min_size=1, max_size=40).filter(str.strip)
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
policies = st.builds(
    Policy,
    cooldown=st.none() | st.builds(Cooldown, st.integers(1, MAX_COOLDOWN_SECONDS), st.booleans()),
    uploaded_before=st.none() | times,
    exempt=st.frozensets(
        names
        | st.tuples(names, st.sampled_from(["1", "1.0", "2.0rc1", "1!3.post2"])).map("==".join),
        max_size=4,
    ),
    allow=st.lists(st.from_regex(r"[a-z0-9*?]+(-[a-z0-9*?]+)?", fullmatch=True), max_size=3).map(
        tuple
    ),
    deny=st.lists(names.map(str.lower), max_size=3).map(tuple),
    revoked=st.dictionaries(
        st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
        st.builds(Revocation, reasons, times.map(format_time)),
        max_size=3,
    ),
    statuses=st.dictionaries(
        names.map(N),
        st.builds(ProjectStatus, st.sampled_from(STATUSES), st.none() | reasons),
        max_size=3,
    ),
    namespaces=st.lists(names, max_size=3).map(tuple),
)


@given(policies)
def test_round_trip(policy: Policy) -> None:
    data = policy.to_bytes()
    again = Policy.from_bytes(data)
    assert again == policy
    assert again.to_bytes() == data


def document(**changes: Any) -> bytes:
    data = json.loads(Policy().to_bytes())
    data.update(changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"format": "1"}', "no valid `format`"),
        (b"{}", "no valid `format`"),
        (b'{"format": 2}', "format 2, newer"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON"),
        (document(cooldwn=None), "unknown keys: 'cooldwn'"),
        (document(cooldown=7), "`cooldown` is not"),
        (document(cooldown={"seconds": "7d"}), "not a number of seconds"),
        (document(cooldown={"seconds": True}), "not a number of seconds"),
        (document(cooldown={"seconds": 0}), "between 1 second"),
        (document(cooldown={"seconds": 10**30}), "between 1 second"),
        (document(cooldown={"seconds": 5, "private": "yes"}), "not true or false"),
        (document(**{"uploaded-before": "last week"}), "uploaded-before"),
        (document(**{"uploaded-before": 1700000000}), "not a timestamp"),
        (document(exempt="demo"), "`exempt` is not a list"),
        (document(exempt=[1]), "exempt: 1 is not a string"),
        (document(exempt=["-bad-"]), "not a valid project name"),
        (document(exempt=["demo==not a version"]), "valid version"),
        (document(allow=["a/b"]), "not a pattern"),
        (document(deny=["x" * 300]), "not a pattern"),
        (document(revoked=[]), "`revoked` is not an object"),
        (
            document(revoked={"abc": {"reason": "x", "revoked-at": "2026-01-01T00:00:00Z"}}),
            "sha256",
        ),
        (document(revoked={GOOD: {"reason": "", "revoked-at": "2026-01-01T00:00:00Z"}}), "reason"),
        (
            document(revoked={GOOD: {"reason": "x" * 5000, "revoked-at": "2026-01-01T00:00:00Z"}}),
            "longer",
        ),
        (document(revoked={GOOD: {"reason": "x", "revoked-at": "now"}}), "revoked-at"),
        (document(revoked={GOOD: "x"}), "revoked"),
        (document(statuses={"demo": {"status": "gone"}}), "not a project status"),
        (document(statuses={"demo": {"status": "archived", "reason": 3}}), "reason"),
        (document(statuses={"demo": "archived"}), "statuses demo"),
        (document(statuses={"../x": {"status": "archived"}}), "not a valid project name"),
        (document(namespaces=[""]), "not a valid project name"),
        (document(namespaces="acme"), "not a list"),
    ],
)
def test_hostile_documents_are_invalid(data: bytes, message: str) -> None:
    with pytest.raises(InvalidPolicy, match=message):
        Policy.from_bytes(data)


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_parse_or_raise_invalid_policy(data: bytes) -> None:
    try:
        Policy.from_bytes(data)
    except InvalidPolicy:
        pass
