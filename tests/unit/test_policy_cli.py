"""The policy commands (`policy`, `revoke`, `unrevoke`, `status`, `namespace`): parsing,
normalization, what they store and what they print; `publish` honouring project statuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from serverless_pypi.adapters.cli import main
from serverless_pypi.adapters.policy_cli import format_duration, parse_digest
from serverless_pypi.core.policy import Policy
from serverless_pypi.index.policies import PolicyWriter
from serverless_pypi.storage.local import LocalStore
from tests.helpers.dists import make_wheel, sha256, subdir
from tests.helpers.index import publish_file

DIGEST = "ab" * 32


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


def run(root: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command with `--store root`; its exit code, stdout and stderr."""
    code = main([*argv, "--store", str(root)])
    out, err = capsys.readouterr()
    return code, out, err


def stored(root: Path) -> Policy:
    return PolicyWriter(LocalStore(root)).read()


def test_cooldown_set_shown_and_turned_off(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(root, capsys, "policy", "set", "cooldown", "7d") == (
        0,
        "cooldown: 7d (upstream projects only)\n",
        "",
    )
    assert stored(root).cooldown is not None
    assert stored(root).cooldown.seconds == 7 * 86400  # type: ignore[union-attr]
    code, out, _ = run(root, capsys, "policy", "set", "cooldown", "PT24H", "--private")
    assert (code, out) == (0, "cooldown: 1d (upstream and private projects)\n")
    assert stored(root).cooldown.private  # type: ignore[union-attr]
    code, out, err = run(root, capsys, "policy", "set", "cooldown", "PT24H", "--private")
    assert (code, out) == (0, "cooldown: 1d (upstream and private projects)\n")
    assert "nothing to do" in err
    assert run(root, capsys, "policy", "set", "cooldown", "off")[:2] == (0, "cooldown: off\n")
    assert stored(root).cooldown is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["policy", "set", "cooldown", "7 days"], "is not a duration"),
        (["policy", "set", "cooldown", "P1M"], "years and months"),
        (["policy", "set", "cooldown", "off", "--private"], "--private goes with a duration"),
        (["policy", "set", "uploaded-before", "november"], "is not a date"),
        (["policy", "exempt", "not a name"], "not a valid project name"),
        (["policy", "exempt", "demo==one"], "valid version"),
        (["policy", "allow", "a/b"], "not a pattern"),
        (["revoke", "sha256:abc", "--reason", "x"], "is not a sha256 digest"),
        (["revoke", "md5:" + "0" * 32, "--reason", "x"], "only sha256"),
        (["revoke", "sha256:" + DIGEST], "needs --reason"),
        (["revoke", "sha256:" + DIGEST, "--reason", "  "], "needs --reason"),
        (["revoke", "list", "--reason", "x"], "takes no --reason"),
        (["unrevoke", "nothex"], "is not a sha256 digest"),
        (["status", "demo", "active", "--reason", "x"], "takes no --reason"),
        (["status", "bad!", "archived"], "not a valid project name"),
        (["namespace", "add", "-"], "is not a namespace"),
        (["namespace", "add", "a b"], "not a valid project name"),
    ],
)
def test_bad_input_exits_2_with_the_reason(
    root: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(root, capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert message in err
    assert stored(root) == Policy()  # nothing was written


def test_unknown_status_is_a_usage_error(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["status", "demo", "retired", "--store", str(root)])
    assert exited.value.code == 2
    assert "invalid choice: 'retired'" in capsys.readouterr().err


def test_uploaded_before(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(root, capsys, "policy", "set", "uploaded-before", "2026-11-01")
    assert code == 0
    assert out.startswith("uploaded-before: 2026-11-01T00:00:00Z ")
    code, out, _ = run(
        root, capsys, "policy", "set", "uploaded-before", "2026-11-01T12:00:00+01:00"
    )
    assert out.startswith("uploaded-before: 2026-11-01T11:00:00Z ")
    assert (
        run(root, capsys, "policy", "set", "uploaded-before", "off")[1] == "uploaded-before: off\n"
    )
    assert stored(root).uploaded_before is None


def test_exemptions_are_normalized_and_versions_compared(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(root, capsys, "policy", "exempt", "Foo_Bar==1.0")
    assert (code, out.split(" (")[0]) == (0, "exempted: foo-bar==1.0")
    assert run(root, capsys, "policy", "exempt", "Other.Pkg")[1].startswith("exempted: other-pkg ")
    # another spelling of the same version is the same exemption
    code, out, err = run(root, capsys, "policy", "exempt", "foo-bar==1.0.0")
    assert (code, out) == (0, "")
    assert "foo-bar==1.0.0 is already exempt" in err
    assert stored(root).exempt == {"foo-bar==1.0", "other-pkg"}
    # and unexempt takes it out under any spelling: no exemption is left behind
    assert run(root, capsys, "policy", "unexempt", "FOO.bar==1")[1] == "unexempted: foo-bar==1\n"
    assert stored(root).exempt == {"other-pkg"}
    code, _, err = run(root, capsys, "policy", "unexempt", "foo-bar")
    assert code == 0
    assert "foo-bar is not exempt" in err


def test_allow_and_deny_lists(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(root, capsys, "policy", "allow", "Requests")[1] == "allow list: added requests\n"
    assert run(root, capsys, "policy", "allow", "Django_*")[1] == "allow list: added django-*\n"
    assert run(root, capsys, "policy", "deny", "evil.*")[1] == "deny list: added evil-*\n"
    assert stored(root).allow == ("django-*", "requests")
    assert stored(root).deny == ("evil-*",)
    run(root, capsys, "policy", "allow", "requests", "--remove")
    code, out, _ = run(root, capsys, "policy", "allow", "DJANGO-*", "--remove")
    assert out == (
        "allow list: removed django-*\n"
        "allow list: empty (every upstream project not denied is served)\n"
    )
    code, out, err = run(root, capsys, "policy", "deny", "nothing", "--remove")
    assert (code, out) == (0, "")
    assert "not on the deny list" in err
    assert stored(root) == Policy(deny=("evil-*",))


def test_revoke_list_and_unrevoke(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(root, capsys, "revoke", "list")
    assert (code, out, err) == (0, "", "no revoked digests\n")
    code, out, _ = run(root, capsys, "revoke", "SHA256:" + DIGEST.upper(), "--reason", "malware")
    assert (code, out) == (0, f"revoked: sha256:{DIGEST} (malware)\n")
    # a bare digest is accepted too
    other = "cd" * 32
    run(root, capsys, "revoke", other, "--reason", "typosquat")
    code, out, _ = run(root, capsys, "revoke", "list")
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"sha256:{DIGEST}  20")
    assert lines[0].endswith("  malware")
    assert lines[1].endswith("  typosquat")
    # the same revocation again changes nothing (its time is kept)
    before = stored(root).revoked[DIGEST]
    code, _, err = run(root, capsys, "revoke", f"sha256:{DIGEST}", "--reason", "malware")
    assert code == 0
    assert "already revoked" in err
    assert stored(root).revoked[DIGEST] == before
    assert run(root, capsys, "unrevoke", f"sha256:{DIGEST}")[1] == f"unrevoked: sha256:{DIGEST}\n"
    assert set(stored(root).revoked) == {other}
    code, _, err = run(root, capsys, "unrevoke", f"sha256:{DIGEST}")
    assert code == 0
    assert "is not revoked" in err


def test_status(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(root, capsys, "status", "My.Project", "archived", "--reason", "moved")
    assert (code, out) == (
        0,
        "status: my-project is archived (moved): uploads refused, files served\n",
    )
    code, out, _ = run(root, capsys, "status", "other", "quarantined")
    assert out == "status: other is quarantined: uploads refused, no files offered\n"
    statuses = stored(root).statuses
    assert {n: (s.status, s.reason) for n, s in statuses.items()} == {
        "my-project": ("archived", "moved"),
        "other": ("quarantined", None),
    }
    # active is the default: it takes the entry out
    run(root, capsys, "status", "MY_project", "active")
    assert set(stored(root).statuses) == {"other"}


def test_namespaces(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(root, capsys, "namespace", "list")
    assert (code, out, err) == (0, "", "no namespaces\n")
    # the prefix as PEP 752 writes it (`acme-`) or the namespace name: one namespace
    assert run(root, capsys, "namespace", "add", "Acme-")[1].startswith("namespace added: acme ")
    code, out, err = run(root, capsys, "namespace", "add", "ACME")
    assert (code, out) == (0, "")
    assert "already a namespace" in err
    run(root, capsys, "namespace", "add", "Big_Corp")
    assert run(root, capsys, "namespace", "list")[1] == (
        "acme  (the project acme and every acme-*)\n"
        "big-corp  (the project big-corp and every big-corp-*)\n"
    )
    assert run(root, capsys, "namespace", "remove", "acme-")[1] == "namespace removed: acme\n"
    assert stored(root).namespaces == ("big-corp",)


def test_show(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(root, capsys, "policy", "show")
    assert code == 0
    assert out.splitlines() == [
        "cooldown:        off",
        "uploaded-before: off",
        "exempt:          none",
        "allow:           every upstream project (no allow list)",
        "deny:            none",
        "namespaces:      none",
        "statuses:        none",
        "revoked:         none",
    ]
    for argv in (
        ["policy", "set", "cooldown", "36h"],
        ["policy", "exempt", "demo==2.0"],
        ["policy", "deny", "evil-*"],
        ["namespace", "add", "acme"],
        ["status", "old", "deprecated", "--reason", "use new"],
        ["revoke", f"sha256:{DIGEST}", "--reason", "malware"],
    ):
        assert run(root, capsys, *argv)[0] == 0
    out = run(root, capsys, "policy", "show")[1]
    lines = out.splitlines()
    assert lines[0] == "cooldown:        36h (upstream projects only)"
    assert "exempt:          demo==2.0" in lines
    assert "deny:            evil-*" in lines
    assert "namespaces:      acme" in lines
    assert "  old: deprecated (use new)" in lines
    assert any(line.startswith(f"  sha256:{DIGEST}  ") and "malware" in line for line in lines)


def test_show_refuses_a_broken_document(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = LocalStore(root)
    store.put(".serverless-pypi/policy.json", b"{not json", content_type="application/json")
    code, out, err = run(root, capsys, "policy", "show")
    assert (code, out) == (2, "")
    assert "not valid JSON" in err


def test_preview(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = LocalStore(root)
    old = make_wheel(subdir(tmp_path, "a"), "Demo", "1.0")
    new = make_wheel(subdir(tmp_path, "b"), "Demo", "2.0")
    publish_file(store, old)
    publish_file(store, new)
    code, out, _ = run(root, capsys, "policy", "preview", "DEMO")
    assert code == 0
    assert out.splitlines() == [
        "demo: private project",
        f"served  {old.name}",
        f"served  {new.name}",
        "2 files: 2 served, 0 hidden",
    ]
    # a cooldown on upstream projects only leaves a private project as it is
    run(root, capsys, "policy", "set", "cooldown", "7d")
    assert "2 files: 2 served, 0 hidden" in run(root, capsys, "policy", "preview", "demo")[1]
    run(root, capsys, "policy", "set", "cooldown", "7d", "--private")
    run(root, capsys, "revoke", f"sha256:{sha256(old)}", "--reason", "malware")
    lines = run(root, capsys, "policy", "preview", "demo")[1].splitlines()
    assert lines[1] == f"hidden  {old.name}  revoked: malware"
    assert lines[2].startswith(f"hidden  {new.name}  hidden by the cooldown until 20")
    assert lines[3] == "2 files: 0 served, 2 hidden"
    run(root, capsys, "policy", "exempt", "demo==2")
    run(root, capsys, "status", "demo", "archived")
    lines = run(root, capsys, "policy", "preview", "demo")[1].splitlines()
    assert lines[1] == "status: archived: uploads refused, files served"
    assert lines[3] == f"served  {new.name}"
    run(root, capsys, "status", "demo", "quarantined", "--reason", "under review")
    lines = run(root, capsys, "policy", "preview", "demo")[1].splitlines()
    assert lines[-2] == f"hidden  {new.name}  project demo is quarantined (under review)"
    code, _, err = run(root, capsys, "policy", "preview", "nothing-here")
    assert code == 2
    assert "nothing-here" in err


def test_publish_honours_archived_and_quarantined(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = make_wheel(subdir(tmp_path, "a"), "demo", "1.0")
    second = make_wheel(subdir(tmp_path, "b"), "demo", "2.0")
    assert run(root, capsys, "publish", str(first))[0] == 0
    for status in ("archived", "quarantined"):
        run(root, capsys, "status", "demo", status, "--reason", "frozen")
        code, out, err = run(root, capsys, "publish", str(second))
        assert (code, out) == (1, "")
        assert f"The project 'demo' is {status} (frozen): it takes no new uploads" in err
    # deprecated projects take uploads (PEP 792), as do active ones
    run(root, capsys, "status", "demo", "deprecated")
    code, out, _ = run(root, capsys, "publish", str(second))
    assert code == 0
    assert out.startswith("published: demo/")


def test_helpers() -> None:
    assert [format_duration(s) for s in (5, 90 * 60, 36 * 3600, 14 * 86400, 3601)] == [
        "5s",
        "90m",
        "36h",
        "14d",
        "3601s",
    ]
    assert parse_digest(f" sha256:{DIGEST.upper()} ") == DIGEST
    with pytest.raises(ValueError, match="sha256"):
        parse_digest("sha256:" + "g" * 64)
