"""`serverless-pypi publisher add | list | remove`: trusted publishers kept in the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from serverless_pypi.adapters.cli import main
from serverless_pypi.adapters.publisher_cli import parse_claims
from serverless_pypi.auth.publishers import GITHUB_ISSUER, PublisherStore
from serverless_pypi.storage.local import LocalStore


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "store")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def stored(store: str) -> PublisherStore:
    return PublisherStore(LocalStore(Path(store)))


def test_add_a_github_publisher(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        *("publisher", "add", "--store", store, "--project", "Acme_App", "--project", "acme-*"),
        *("--github", "acme/app", "--workflow", "release.yml", "--owner-id", "1234567"),
        *("--environment", "pypi"),
    )
    assert code == 0, err
    [publisher] = stored(store).list()
    assert out.strip() == publisher.id
    assert publisher.kind == "github" and publisher.issuer == GITHUB_ISSUER
    assert publisher.scope == "write"
    assert publisher.projects == ("acme-app", "acme-*")
    assert dict(publisher.claims) == {
        "environment": "pypi",
        "repository": "acme/app",
        "repository_owner_id": "1234567",
    }
    assert dict(publisher.prefixes) == {
        "job_workflow_ref": "acme/app/.github/workflows/release.yml@"
    }
    assert "15-minute upload token" in err


def test_add_a_gitlab_publisher_on_a_self_hosted_gitlab(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys,
        *("publisher", "add", "--store", store, "--project", "tool", "--scope", "read"),
        *("--gitlab", "group/sub/tool", "--gitlab-url", "https://git.example.com/"),
        *("--ref", "main", "--environment", "ci"),
    )
    assert code == 0, err
    [publisher] = stored(store).list()
    assert publisher.kind == "gitlab" and publisher.scope == "read"
    assert publisher.issuer == "https://git.example.com"
    assert dict(publisher.claims) == {
        "environment": "ci",
        "project_path": "group/sub/tool",
        "ref": "main",
    }
    assert "read token" in err


def test_add_any_issuer_with_claims(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys,
        *("publisher", "add", "--store", store, "--project", "app"),
        *("--issuer", "https://issuer.example.com", "--claim", "sub=repo:acme/app"),
        *("--claim", "aud_group=ci=prod"),
    )
    assert code == 0, err
    [publisher] = stored(store).list()
    assert publisher.kind == "oidc"
    assert dict(publisher.claims) == {"aud_group": "ci=prod", "sub": "repo:acme/app"}


def test_adding_the_same_rule_twice_keeps_one(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("publisher", "add", "--store", store, "--project", "app", "--github", "a/b")
    first = run(capsys, *argv, "--workflow", "ci.yml")
    second = run(capsys, *argv, "--workflow", "ci.yml")
    assert first[0] == second[0] == 0
    assert first[1] == second[1]
    assert second[2].startswith("already there")
    assert len(stored(store).list()) == 1


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--github", "a/b"], "--workflow"),
        (["--github", "a/b", "--gitlab", "c/d", "--workflow", "x.yml"], "exactly one"),
        ([], "exactly one"),
        (["--gitlab", "c/d", "--workflow", "x.yml"], "--workflow does not go with --gitlab"),
        (["--github", "a/b", "--workflow", "x.yml", "--ref", "main"], "--ref does not go"),
        (["--issuer", "https://i.example", "--claim", "sub=x", "--owner-id", "1"], "--owner-id"),
        (["--issuer", "https://i.example"], "at least one claim"),
        (["--issuer", "https://i.example", "--claim", "novalue"], "NAME=VALUE"),
        (["--issuer", "https://i.example", "--claim", "sub=a", "--claim", "sub=b"], "twice"),
        (["--issuer", "https://i.example", "--claim", "sub=a", "--environment", "e"], "--claim"),
        (["--issuer", "http://issuer.example.com", "--claim", "sub=a"], "loopback"),
        (["--github", "not a repo", "--workflow", "x.yml"], "OWNER/REPOSITORY"),
        (["--github", "a/b", "--workflow", "x.yml", "--owner-id", "abc"], "numeric"),
    ],
)
def test_bad_publishers_exit_2_with_the_reason(
    store: str, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    code, out, err = run(capsys, "publisher", "add", "--store", store, "--project", "p", *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and words in err
    assert stored(store).list() == []


def test_a_loopback_http_issuer_is_accepted(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys,
        *("publisher", "add", "--store", store, "--project", "p"),
        *("--issuer", "http://127.0.0.1:8999", "--claim", "sub=test"),
    )
    assert code == 0, err


def test_a_project_is_required(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["publisher", "add", "--store", store, "--github", "a/b", "--workflow", "x.yml"])
    assert exited.value.code == 2
    assert "--project" in capsys.readouterr().err


def test_list_and_remove(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "publisher", "list", "--store", store)[2].strip() == "no trusted publishers"
    added = [
        run(
            capsys,
            *("publisher", "add", "--store", store, "--project", project),
            *("--github", "acme/app", "--workflow", "release.yml"),
        )[1].strip()
        for project in ("one", "two")
    ]
    code, out, _ = run(capsys, "publisher", "list", "--store", store)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "KIND", "SCOPE", "PROJECTS", "ISSUER", "CLAIMS"]
    # oldest first: within the same second, by id
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(added)
    assert all("job_workflow_ref=acme/app/.github/workflows/release.yml@*" in x for x in lines[1:])
    code, out, err = run(capsys, "publisher", "remove", "--store", store, added[0])
    assert code == 0 and out.strip() == f"removed: {added[0]}"
    assert [p.id for p in stored(store).list()] == [added[1]]
    code, out, err = run(capsys, "publisher", "remove", "--store", store, added[0], added[1])
    assert code == 1 and out.strip() == f"removed: {added[1]}"
    assert "1 of the publishers given do not exist" in err
    code, _, err = run(capsys, "publisher", "remove", "--store", store, "nothex")
    assert code == 2 and "not a publisher id" in err


def test_parse_claims() -> None:
    assert parse_claims(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    for bad in (["=1"], ["a="], ["a"]):
        with pytest.raises(ValueError, match="NAME=VALUE"):
            parse_claims(bad)
