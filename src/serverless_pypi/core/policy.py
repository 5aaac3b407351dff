"""Supply-chain policies: what the index keeps out, decided per project page and per file.

One `Policy` holds every rule (cooldown and hard cutoff, exemptions, allow and deny lists
for upstream projects, revoked digests, project statuses, namespaces, the projects whose
uploads need PEP 740 attestations); the index keeps it
as one document in the store (`to_bytes` / `from_bytes`, with a format number) that the
CLI changes and every front reads. The functions here decide, without I/O:

- `Policy.upstream_refusal`: whether an upstream project is served at all (PEP 752
  namespace, deny list, allow list);
- `file_verdict`: whether one file of a page is served, and if hidden by the cooldown, from
  which moment it will be;
- `apply_to_page`: the PEP 691 project page with the policy applied, and the moment it next
  changes by itself (a file coming of age), so no cache keeps it past that moment.

Order of the file rules (the first that hides a file gives the reason): a revoked digest
(under any project name), a quarantined project (PEP 792: no files), then the time rules
from the file's PEP 700 `upload-time`: the hard cutoff (`uploaded-before`), then the
cooldown. A file without an `upload-time` is hidden while a time rule applies (fail closed,
as uv and pdm do). Exemptions (`project` or `project==version`) lift the time rules only.
The time rules apply to upstream projects; to private ones only with `Cooldown.private`.

Pure: `packaging` is imported when first needed, `json` and `re` are light.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from serverless_pypi.core.names import (
    InvalidFilename,
    InvalidProjectName,
    NormalizedName,
    normalize_project_name,
    parse_distribution_filename,
)

if TYPE_CHECKING:
    from packaging.version import Version

__all__ = [
    "FORMAT",
    "MAX_COOLDOWN_SECONDS",
    "MAX_DOCUMENT_BYTES",
    "STATUSES",
    "Cooldown",
    "InvalidPolicy",
    "Policy",
    "ProjectStatus",
    "Revocation",
    "Verdict",
    "apply_to_page",
    "file_verdict",
    "format_time",
    "parse_cutoff",
    "parse_duration",
    "parse_upload_time",
]

#: PEP 792 project statuses
STATUSES = ("active", "archived", "deprecated", "quarantined")
#: the format number of the policy document this code writes and reads
FORMAT = 1
#: the largest policy document read (hostile or broken documents stay cheap)
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
#: the longest cooldown: ten years (longer ones are typos, and overflow no date)
MAX_COOLDOWN_SECONDS = 3650 * 86400
#: the longest reason kept (revocations, statuses)
MAX_REASON_LENGTH = 1000

_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
# PEP 700 `upload-time`: `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` (UTC); fractions of up to 9 digits
# are seen in the wild (truncated to microseconds here)
_UPLOAD_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z", re.ASCII
)
# a glob over normalized names: the normalized alphabet, `*` and `?`
_GLOB = re.compile(r"[a-z0-9*?]+(-[a-z0-9*?]+)*", re.ASCII)
_SEPARATORS = re.compile(r"[-_.]+")


class InvalidPolicy(ValueError):
    """A policy document, or a rule, that is not valid; the message says what and where."""


@dataclass(frozen=True, slots=True)
class Cooldown:
    """Files younger than `seconds` (from their `upload-time`) are hidden.

    `private`: the cooldown (and the hard cutoff) apply to private projects too.
    """

    seconds: int
    private: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, int):
            raise InvalidPolicy(f"cooldown: {self.seconds!r} is not a number of seconds")
        if not 0 < self.seconds <= MAX_COOLDOWN_SECONDS:
            raise InvalidPolicy(
                f"cooldown: {self.seconds} seconds is not between 1 second and "
                f"{MAX_COOLDOWN_SECONDS // 86400} days"
            )
        if not isinstance(self.private, bool):
            raise InvalidPolicy(f"cooldown: `private` is {self.private!r}, not true or false")


@dataclass(frozen=True, slots=True)
class ProjectStatus:
    """A PEP 792 project status and its optional reason."""

    status: str
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise InvalidPolicy(
                f"{self.status!r} is not a project status: use one of {', '.join(STATUSES)}"
            )
        _check_reason(self.reason, optional=True, what=f"status {self.status}")

    def to_json(self) -> dict[str, str]:
        """The PEP 792 `project-status` object."""
        data = {"status": self.status}
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass(frozen=True, slots=True)
class Revocation:
    """Why a digest is revoked, and when (a PEP 700-style UTC timestamp)."""

    reason: str
    revoked_at: str

    def __post_init__(self) -> None:
        _check_reason(self.reason, optional=False, what="revocation")
        if not isinstance(self.revoked_at, str) or parse_upload_time(self.revoked_at) is None:
            raise InvalidPolicy(
                f"revocation: `revoked-at` {self.revoked_at!r} is not a UTC timestamp "
                "(YYYY-MM-DDTHH:MM:SSZ)"
            )


def _check_reason(reason: object, *, optional: bool, what: str) -> None:
    if reason is None and optional:
        return
    if not isinstance(reason, str) or (not optional and not reason.strip()):
        raise InvalidPolicy(f"{what}: the reason must be a non-empty string, not {reason!r}")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidPolicy(f"{what}: the reason is longer than {MAX_REASON_LENGTH} characters")


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a file is served; if not, why, and (cooldown) from when it will be."""

    served: bool
    reason: str | None = None
    visible_at: datetime | None = None


_SERVED = Verdict(True)


@dataclass(frozen=True, slots=True)
class Policy:
    """Every rule in force. Names, globs and digests are normalized on construction (so two
    spellings of one rule are one rule) and collections are made immutable; an invalid rule
    raises InvalidPolicy."""

    cooldown: Cooldown | None = None
    #: aware UTC; files uploaded at or after it are hidden (the hard cutoff)
    uploaded_before: datetime | None = None
    #: "name" or "name==version" (normalized name, packaging-normalized version)
    exempt: frozenset[str] = frozenset()
    #: normalized globs over upstream project names; empty: all are allowed
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    #: sha256 hex -> why
    revoked: Mapping[str, Revocation] = field(default_factory=lambda: MappingProxyType({}))
    statuses: Mapping[NormalizedName, ProjectStatus] = field(
        default_factory=lambda: MappingProxyType({})
    )
    #: normalized namespace names (PEP 752)
    namespaces: tuple[str, ...] = ()
    #: normalized globs over project names whose uploads must carry PEP 740 attestations
    attestations: tuple[str, ...] = ()
    # derived from `exempt`
    _exempt_projects: frozenset[NormalizedName] = field(init=False, repr=False, compare=False)
    _exempt_versions: Mapping[NormalizedName, frozenset[Version]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.cooldown is not None and not isinstance(self.cooldown, Cooldown):
            raise InvalidPolicy(f"cooldown: {self.cooldown!r} is not a Cooldown")
        if self.uploaded_before is not None:
            moment = self.uploaded_before
            if not isinstance(moment, datetime) or moment.utcoffset() is None:
                raise InvalidPolicy(f"uploaded-before: {moment!r} is not an aware date and time")
            object.__setattr__(self, "uploaded_before", moment.astimezone(UTC))
        projects: set[NormalizedName] = set()
        versions: dict[NormalizedName, set[Version]] = {}
        exempt: set[str] = set()
        for item in _strings(self.exempt, "exempt"):
            name, version = _exemption(item)
            if version is None:
                projects.add(name)
                exempt.add(name)
            else:
                versions.setdefault(name, set()).add(version)
                exempt.add(f"{name}=={version}")
        object.__setattr__(self, "exempt", frozenset(exempt))
        object.__setattr__(self, "_exempt_projects", frozenset(projects))
        object.__setattr__(
            self,
            "_exempt_versions",
            MappingProxyType({k: frozenset(v) for k, v in versions.items()}),
        )
        object.__setattr__(self, "allow", _globs(self.allow, "allow"))
        object.__setattr__(self, "deny", _globs(self.deny, "deny"))
        object.__setattr__(self, "revoked", _revocations(self.revoked))
        object.__setattr__(self, "statuses", _statuses(self.statuses))
        # a namespace may be written as the prefix it reserves (`acme-` is the namespace `acme`)
        namespaces = {
            _name(n.rstrip("-_."), "namespace") for n in _strings(self.namespaces, "namespaces")
        }
        object.__setattr__(self, "namespaces", tuple(sorted(namespaces)))
        object.__setattr__(self, "attestations", _globs(self.attestations, "attestations"))

    # -- the document ---------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The policy document as JSON data (every key, canonical order)."""
        cooldown = self.cooldown
        document: dict[str, Any] = {
            "format": FORMAT,
            "cooldown": None
            if cooldown is None
            else {"seconds": cooldown.seconds, "private": cooldown.private},
            "uploaded-before": None
            if self.uploaded_before is None
            else format_time(self.uploaded_before),
            "exempt": sorted(self.exempt),
            "allow": list(self.allow),
            "deny": list(self.deny),
            "revoked": {
                digest: {"reason": r.reason, "revoked-at": r.revoked_at}
                for digest, r in sorted(self.revoked.items())
            },
            "statuses": {name: s.to_json() for name, s in sorted(self.statuses.items())},
            "namespaces": list(self.namespaces),
        }
        if self.attestations:
            # only when set: a document without the rule stays readable by older versions
            document["attestations"] = list(self.attestations)
        return document

    def to_bytes(self) -> bytes:
        """The document as stored: canonical (equal policies give equal bytes)."""
        return (json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Policy:
        """The policy `to_bytes` wrote; InvalidPolicy (saying what is wrong) for anything else."""
        if len(data) > MAX_DOCUMENT_BYTES:
            raise InvalidPolicy(
                f"the policy document is {len(data)} bytes long, over {MAX_DOCUMENT_BYTES}"
            )
        try:
            document = json.loads(data)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
            raise InvalidPolicy(f"the policy document is not valid JSON: {e}") from None
        return cls.from_json(document)

    @classmethod
    def from_json(cls, document: object) -> Policy:
        if not isinstance(document, dict):
            raise InvalidPolicy("the policy document is not a JSON object")
        version = document.get("format")
        if version != FORMAT:
            if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT:
                raise InvalidPolicy(
                    f"the policy document is of format {version}, newer than this version of "
                    f"serverless-pypi reads ({FORMAT}): upgrade it"
                )
            raise InvalidPolicy(f"the policy document has no valid `format` (expected {FORMAT})")
        unknown = set(document) - _KEYS
        if unknown:
            raise InvalidPolicy(
                f"the policy document has unknown keys: {', '.join(sorted(map(repr, unknown)))}"
            )
        try:
            return cls(
                cooldown=_cooldown(document.get("cooldown")),
                uploaded_before=_cutoff(document.get("uploaded-before")),
                exempt=frozenset(_list(document.get("exempt"), "exempt")),
                allow=tuple(_list(document.get("allow"), "allow")),
                deny=tuple(_list(document.get("deny"), "deny")),
                revoked={
                    digest: _revocation(digest, value)
                    for digest, value in _dict(document.get("revoked"), "revoked").items()
                },
                statuses={
                    NormalizedName(name): _status(name, value)  # normalized by the constructor
                    for name, value in _dict(document.get("statuses"), "statuses").items()
                },
                namespaces=tuple(_list(document.get("namespaces"), "namespaces")),
                attestations=tuple(_list(document.get("attestations"), "attestations")),
            )
        except RecursionError:
            raise InvalidPolicy("the policy document is nested too deeply") from None

    # -- questions ------------------------------------------------------------------------
    def time_rules_apply(self, name: str, *, private: bool) -> bool:
        """Whether the cooldown or the hard cutoff can hide files of the project `name`
        (before version exemptions)."""
        if self.cooldown is None and self.uploaded_before is None:
            return False
        if private and not (self.cooldown is not None and self.cooldown.private):
            return False
        return normalize_project_name(name) not in self._exempt_projects

    def applies_to(self, name: str, *, private: bool) -> bool:
        """Whether any rule could change the page of the project `name`: False lets the
        caller serve the page as it is (the fast path). Upstream refusals are asked apart
        (`upstream_refusal`)."""
        return bool(
            self.revoked  # a digest is revoked under any name it appears under
            or self.status_of(name) is not None
            or self.namespace_of(name) is not None  # PEP 752 data on the page
            or self.time_rules_apply(name, private=private)
        )

    def namespace_of(self, name: str) -> str | None:
        """The namespace the project `name` is in (PEP 752: the namespace `ns` covers the
        project `ns` and every project whose normalized name starts with `ns-`); the most
        specific one when namespaces nest (`acme` and `acme-tools`); None if none."""
        normalized = normalize_project_name(name)
        found = None
        for namespace in self.namespaces:
            covers = normalized == namespace or normalized.startswith(namespace + "-")
            if covers and (found is None or len(namespace) > len(found)):
                found = namespace
        return found

    def upstream_refusal(self, name: str) -> str | None:
        """Why the upstream project `name` is not served (its namespace, the deny list, the
        allow list, in that order); None when it is."""
        normalized = normalize_project_name(name)
        namespace = self.namespace_of(normalized)
        if namespace is not None:
            return (
                f"{normalized} is in the namespace {namespace!r}, reserved for this index's own "
                "projects: no upstream project in it is served (PEP 752)"
            )
        for glob in self.deny:
            if fnmatch.fnmatchcase(normalized, glob):
                return f"the upstream project {normalized} is denied (deny list: {glob!r})"
        if self.allow and not any(fnmatch.fnmatchcase(normalized, g) for g in self.allow):
            return f"the upstream project {normalized} is not on the allow list"
        return None

    def requires_attestations(self, name: str) -> str | None:
        """The glob that makes uploads of the project `name` carry PEP 740 attestations, or
        None when none does."""
        normalized = normalize_project_name(name)
        return next((g for g in self.attestations if fnmatch.fnmatchcase(normalized, g)), None)

    def status_of(self, name: str) -> ProjectStatus | None:
        """The PEP 792 status the policy sets for the project `name`, if any."""
        return self.statuses.get(normalize_project_name(name))

    def is_exempt(self, name: str, version: Version | None) -> bool:
        """Whether the time rules are lifted for `name` (all versions) or `name==version`
        (versions compared as PEP 440 versions: `1.0` is `1.0.0`)."""
        normalized = normalize_project_name(name)
        if normalized in self._exempt_projects:
            return True
        return version is not None and version in self._exempt_versions.get(normalized, ())


_KEYS = frozenset(
    {
        "format",
        "cooldown",
        "uploaded-before",
        "exempt",
        "allow",
        "deny",
        "revoked",
        "statuses",
        "namespaces",
        "attestations",
    }
)


# --- validating the parts -----------------------------------------------------------------


def _strings(values: object, what: str) -> Iterable[str]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidPolicy(f"{what}: expected a collection of strings, got {values!r:.80}")
    items = list(values)
    for item in items:
        if not isinstance(item, str):
            raise InvalidPolicy(f"{what}: {item!r:.80} is not a string")
    return items


def _name(value: str, what: str) -> NormalizedName:
    try:
        return normalize_project_name(value)
    except InvalidProjectName as e:
        raise InvalidPolicy(f"{what}: {e}") from e


def _exemption(item: str) -> tuple[NormalizedName, Version | None]:
    """`project` or `project==version`, normalized (packaging)."""
    from packaging.version import InvalidVersion, Version

    name, sep, version = item.partition("==")
    project = _name(name.strip(), "exempt")
    if not sep:
        return project, None
    try:
        return project, Version(version.strip())
    except InvalidVersion as e:
        raise InvalidPolicy(f"exempt: {item!r:.80} does not name a valid version: {e}") from e


def _globs(values: object, what: str) -> tuple[str, ...]:
    """Globs over normalized names, normalized as names are (PEP 503), deduplicated."""
    found = set()
    for value in _strings(values, what):
        glob = _SEPARATORS.sub("-", value.strip().lower())
        if len(glob) > 200 or not _GLOB.fullmatch(glob):
            raise InvalidPolicy(
                f"{what}: {value!r:.80} is not a pattern over project names (letters, digits, "
                "'-', '_', '.' and the wildcards '*' and '?')"
            )
        found.add(glob)
    return tuple(sorted(found))


def _revocations(values: object) -> Mapping[str, Revocation]:
    if not isinstance(values, Mapping):
        raise InvalidPolicy(f"revoked: expected a mapping of digests, got {values!r:.80}")
    found = {}
    for digest, revocation in values.items():
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest.lower()):
            raise InvalidPolicy(f"revoked: {digest!r:.80} is not a sha256 hex digest")
        if not isinstance(revocation, Revocation):
            raise InvalidPolicy(f"revoked: {revocation!r:.80} is not a Revocation")
        found[digest.lower()] = revocation
    return MappingProxyType(found)


def _statuses(values: object) -> Mapping[NormalizedName, ProjectStatus]:
    if not isinstance(values, Mapping):
        raise InvalidPolicy(f"statuses: expected a mapping of projects, got {values!r:.80}")
    found = {}
    for name, status in values.items():
        if not isinstance(name, str):
            raise InvalidPolicy(f"statuses: {name!r:.80} is not a project name")
        if not isinstance(status, ProjectStatus):
            raise InvalidPolicy(f"statuses: {status!r:.80} is not a ProjectStatus")
        found[_name(name, "statuses")] = status
    return MappingProxyType(found)


# --- reading the document -----------------------------------------------------------------


def _list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidPolicy(f"`{what}` is not a list")
    return value


def _dict(value: object, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidPolicy(f"`{what}` is not an object")
    return value


def _cooldown(value: object) -> Cooldown | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"seconds", "private"}:
        raise InvalidPolicy('`cooldown` is not {"seconds": N, "private": true|false}')
    return Cooldown(value.get("seconds"), value.get("private", False))  # type: ignore[arg-type]


def _cutoff(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidPolicy(f"`uploaded-before` is {value!r:.80}, not a timestamp")
    try:
        return parse_cutoff(value)
    except ValueError as e:
        raise InvalidPolicy(f"`uploaded-before`: {e}") from e


def _revocation(digest: str, value: object) -> Revocation:
    if not isinstance(value, dict) or set(value) - {"reason", "revoked-at"}:
        raise InvalidPolicy(f'revoked {digest[:80]}: not {{"reason": ..., "revoked-at": ...}}')
    return Revocation(value.get("reason"), value.get("revoked-at"))  # type: ignore[arg-type]


def _status(name: str, value: object) -> ProjectStatus:
    if not isinstance(value, dict) or set(value) - {"status", "reason"}:
        raise InvalidPolicy(f'statuses {name[:80]}: not {{"status": ..., "reason": ...}}')
    return ProjectStatus(value.get("status"), value.get("reason"))  # type: ignore[arg-type]


# --- times --------------------------------------------------------------------------------


def format_time(moment: datetime) -> str:
    """A UTC timestamp as the policy writes it: `2026-12-08T10:00:00Z` (microseconds only
    when there are some)."""
    moment = moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_upload_time(text: object) -> datetime | None:
    """A PEP 700 `upload-time` (`YYYY-MM-DDTHH:MM:SS[.ffffff]Z`) as an aware UTC datetime;
    None when `text` is not one."""
    if not isinstance(text, str):
        return None
    match = _UPLOAD_TIME.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(n) for n in match.groups()[:6])
    micro = int((match[7] or "0")[:6].ljust(6, "0"))
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError:  # month 13, February 30th
        return None


_SHORT_DURATION = re.compile(r"(\d{1,10})\s*([wdhms])", re.ASCII)
_ISO_DURATION = re.compile(
    r"P(?:(?P<w>\d{1,10})W)?(?:(?P<d>\d{1,10})D)?"
    r"(?:T(?:(?P<h>\d{1,10})H)?(?:(?P<m>\d{1,10})M)?(?:(?P<s>\d{1,10})S)?)?",
    re.ASCII,
)
_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> int:
    """Seconds in a duration: `7d`, `24h`, `90m`, `30s`, `2w`, or ISO 8601 (`P7D`, `PT24H`,
    `PT5S`, `P1DT2H`, `P2W`). Years and months have no fixed length and are refused.
    ValueError, with a message that shows the accepted forms, for anything else."""
    value = text.strip()
    forms = "use e.g. 7d, 24h, 90m, 30s or ISO 8601 P7D, PT24H, P1DT2H"
    seconds: int | None = None
    if match := _SHORT_DURATION.fullmatch(value.lower()):
        seconds = int(match[1]) * _UNIT_SECONDS[match[2]]
    elif (
        (match := _ISO_DURATION.fullmatch(value.upper()))
        and any(match.groupdict().values())
        and not value.upper().endswith("T")
    ):
        seconds = sum(int(n) * _UNIT_SECONDS[u] for u, n in match.groupdict().items() if n)
    elif re.fullmatch(r"P.*\d+[YM].*", value.upper().split("T")[0]):
        raise ValueError(
            f"{text[:80]!r}: years and months have no fixed length: give days (P30D, 30d)"
        )
    if seconds is None:
        raise ValueError(f"{text[:80]!r} is not a duration: {forms}")
    if seconds <= 0:
        raise ValueError(f"{text[:80]!r}: a duration must be longer than zero")
    if seconds > MAX_COOLDOWN_SECONDS:
        raise ValueError(f"{text[:80]!r} is longer than {MAX_COOLDOWN_SECONDS // 86400} days")
    return seconds


def parse_cutoff(text: str) -> datetime:
    """A date (`2026-11-01`: midnight UTC) or an ISO 8601 timestamp (UTC when it gives no
    offset) as an aware UTC datetime; ValueError for anything else."""
    value = text.strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ][0-9:.,]+(Z|[+-][0-9:]+)?)?", value, re.ASCII):
        raise ValueError(
            f"{text[:80]!r} is not a date: use YYYY-MM-DD or an ISO 8601 timestamp "
            "(2026-11-01T12:00:00Z)"
        )
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as e:
        raise ValueError(f"{text[:80]!r} is not a valid date: {e}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# --- verdicts -----------------------------------------------------------------------------


def _version_of(filename: object) -> Version | None:
    if not isinstance(filename, str):
        return None
    try:
        return parse_distribution_filename(filename).version
    except InvalidFilename:
        return None


def _sha256_of(entry: Mapping[str, Any]) -> str | None:
    hashes = entry.get("hashes")
    digest = hashes.get("sha256") if isinstance(hashes, Mapping) else None
    return digest.lower() if isinstance(digest, str) else None


def file_verdict(
    policy: Policy, name: str, entry: Mapping[str, Any], *, private: bool, now: datetime
) -> Verdict:
    """Whether the file `entry` (a PEP 691 file dict) of the project `name` is served at
    `now` (aware), and if not, why; see the module for the order of the rules."""
    digest = _sha256_of(entry)
    if digest is not None and (revocation := policy.revoked.get(digest)) is not None:
        return Verdict(False, f"revoked: {revocation.reason}")
    status = policy.status_of(name)
    if status is not None and status.status == "quarantined":
        # PEP 792: a quarantined project offers no files
        return Verdict(False, _quarantined(name, status.reason))
    if not policy.time_rules_apply(name, private=private):
        return _SERVED
    if _exempt(policy, name, entry.get("filename")):
        return _SERVED
    uploaded = parse_upload_time(entry.get("upload-time"))
    if uploaded is None:
        # fail closed, as uv and pdm do: an age that cannot be known is not old enough
        return Verdict(False, "no upload-time: hidden while a cooldown or cutoff applies")
    cutoff = policy.uploaded_before
    if cutoff is not None and uploaded >= cutoff:
        return Verdict(
            False,
            f"uploaded at {format_time(uploaded)}, not before the cutoff {format_time(cutoff)}",
        )
    if policy.cooldown is not None:
        visible_at = uploaded + timedelta(seconds=policy.cooldown.seconds)
        if now < visible_at:
            return Verdict(
                False, f"hidden by the cooldown until {format_time(visible_at)}", visible_at
            )
    return _SERVED


def _exempt(policy: Policy, name: str, filename: object) -> bool:
    """`Policy.is_exempt` for a file, its name parsed only when the project has version
    exemptions (large upstream pages stay cheap)."""
    normalized = normalize_project_name(name)
    if normalized in policy._exempt_projects:
        return True
    versions = policy._exempt_versions.get(normalized)
    return versions is not None and _version_of(filename) in versions


def _quarantined(name: str, reason: str | None) -> str:
    text = f"project {normalize_project_name(name)} is quarantined"
    return f"{text} ({reason})" if reason else text


def _page_status(policy: Policy, page: Mapping[str, Any]) -> dict[str, str] | None:
    """The page's PEP 792 `project-status`: the policy's, else the one the page carries
    (an upstream's, passed through)."""
    status = policy.status_of(page["name"])
    if status is not None:
        return status.to_json()
    carried = page.get("project-status")
    return dict(carried) if isinstance(carried, Mapping) else None


def apply_to_page(
    policy: Policy, page: Mapping[str, Any], *, private: bool, now: datetime
) -> tuple[dict[str, Any], datetime | None]:
    """The PEP 691 project page `page` with `policy` applied at `now`, and the moment it
    next changes by itself (the earliest a hidden file comes of age), or None.

    Hidden files are dropped; PEP 700 `versions` is recomputed from the files left when any
    was dropped; `project-status` (PEP 792) is set when the policy sets a status (a
    quarantined project offers no files). `page` is not changed.
    """
    name = page["name"]
    result = dict(page)
    status = _page_status(policy, page)
    if status is not None:
        result["project-status"] = status
    files = page.get("files", [])
    if status is not None and status.get("status") == "quarantined":
        kept: list[dict[str, Any]] = []
        next_change = None
    else:
        kept = []
        next_change = None
        for entry in files:
            verdict = file_verdict(policy, name, entry, private=private, now=now)
            if verdict.served:
                kept.append(entry)
            elif verdict.visible_at is not None and (
                next_change is None or verdict.visible_at < next_change
            ):
                next_change = verdict.visible_at
    result["files"] = kept
    if len(kept) != len(files) and "versions" in page:
        result["versions"] = _versions(kept)
    return result, next_change


def _versions(files: Iterable[Mapping[str, Any]]) -> list[str]:
    """PEP 700 `versions` of the files left, ascending (packaging)."""
    found = {v for f in files if (v := _version_of(f.get("filename"))) is not None}
    return [str(v) for v in sorted(found)]
