"""The Terraform module, checked offline.

Every `.tf` file parses (python-hcl2), and what the module names exists in the package it
deploys: the handlers, the environment variables the code reads, the zip `make lambda` writes,
the layout of derived data the event rule must not match, and the event the scheduled
reconcile sends. (`terraform validate` needs the AWS provider from the Terraform registry;
checkov runs from `make checkov`.)
"""

from __future__ import annotations

import configparser
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from serverless_pypi.core.config import Settings
from serverless_pypi.core.names import normalize_project_name
from serverless_pypi.index import layout
from serverless_pypi.index.events import parse_invocation
from serverless_pypi.index.indexer import classify_key
from tests.helpers.dists import make_wheel
from tests.helpers.servers import BIN, ROOT, LiveServer
from tests.helpers.terraform import (
    MODULE_FILES,
    TF,
    blocks,
    load_build_script,
    local,
    locals_,
    parsed,
    resources,
    unquote,
)

ALL_FILES = sorted(p for p in TF.rglob("*.tf") if ".terraform" not in p.parts)
EXAMPLE = TF / "examples" / "basic"

# Variables of the reference module (amancevice/serverless-pypi v7) for concepts this module
# shares: the issue asks for the same names.
REFERENCE_VARIABLES = {
    "api_id",
    "api_execution_arn",
    "api_root_resource_id",
    "api_authorization_type",
    "api_authorizer_id",
    "api_name",
    "event_rule_name",
    "iam_role_name",
    "lambda_api_fallback_index_url",
    "lambda_api_function_name",
    "lambda_api_memory_size",
    "lambda_reindex_function_name",
    "lambda_reindex_memory_size",
    "lambda_reindex_timeout",
    "log_group_api_retention_in_days",
    "log_group_reindex_retention_in_days",
    "s3_bucket_name",
    "s3_presigned_url_ttl",
}


def named(kind: str, files: list[Path] = MODULE_FILES) -> dict[str, dict[str, Any]]:
    """Variables or outputs by name."""
    return {unquote(name): body for block in blocks(kind, files) for name, body in block.items()}


def policy_documents() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in blocks("data"):
        for dtype, by_name in block.items():
            if unquote(dtype) == "aws_iam_policy_document":
                found.update({unquote(n): body for n, body in by_name.items()})
    return found


def reference(expression: str) -> str:
    """`${local.x}` -> the literal value of local x."""
    match = re.fullmatch(r"\$\{local\.(\w+)\}", expression)
    assert match, f"expected a reference to a local, got {expression!r}"
    value = local(match.group(1))
    assert isinstance(value, str)
    return value


# -- the HCL -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(TF)))
def test_every_tf_file_parses(path: Path) -> None:
    assert parsed(path), f"{path} is empty"


def test_the_module_has_the_files_the_issue_names() -> None:
    names = {p.name for p in MODULE_FILES}
    assert {"versions.tf", "variables.tf", "main.tf", "outputs.tf"} <= names
    assert (TF / "README.md").is_file()
    assert (EXAMPLE / "main.tf").is_file()


def test_terraform_fmt_is_clean() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed here; the HCL parse tests still ran")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-list=true", str(TF)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"},
    )
    assert result.returncode == 0, f"not `terraform fmt`-clean:\n{result.stdout}{result.stderr}"


# -- what the module names exists in the package ---------------------------------------------


def test_handlers_exist_and_both_are_deployed() -> None:
    functions = resources("aws_lambda_function")
    handlers = {name: reference(body["handler"]) for name, body in functions.items()}
    assert set(handlers.values()) == {
        "serverless_pypi.aws_lambda.api_handler",
        "serverless_pypi.aws_lambda.reindex_handler",
    }
    for handler in handlers.values():
        module_name, _, attribute = handler.rpartition(".")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, attribute, None)), f"{handler} is not a function"


def test_runtime_and_architecture_match_the_zip() -> None:
    build = load_build_script()
    assert local("lambda_runtime") == f"python{build.PYTHON_VERSION}"
    assert local("lambda_architecture") == "arm64"
    assert build.PLATFORM.endswith("_aarch64")  # arm64 is aarch64 to pip
    for name, body in resources("aws_lambda_function").items():
        assert body["runtime"] == "${local.lambda_runtime}", name
        assert body["architectures"] == ["${local.lambda_architecture}"], name


def test_both_functions_run_the_zip_make_lambda_builds() -> None:
    build = load_build_script()
    default = locals_()["lambda_package_path"]
    match = re.search(r'"\$\{path\.module\}/([^"]+)"', default)
    assert match, default
    assert (TF / match.group(1)).resolve() == build.DEFAULT_OUTPUT.resolve()
    for name, body in resources("aws_lambda_function").items():
        assert body["filename"] == "${local.lambda_package_path}", name
        # the reproducible zip changes the hash only when the code changes
        assert body["source_code_hash"] == "${filebase64sha256(local.lambda_package_path)}", name
    makefile = (ROOT / "Makefile").read_text()
    target = re.search(r"^lambda:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert target and "scripts/build_lambda.py" in target.group(1)


def _names_read_by(*modules: str) -> set[str]:
    source = "".join((ROOT / "src/serverless_pypi" / m).read_text() for m in modules)
    return set(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"', source))


def _documented_configuration() -> set[str]:
    module = importlib.import_module("serverless_pypi.adapters.aws_lambda")
    doc = module.__doc__ or ""
    section = doc[doc.index("Configuration comes from the environment") :]
    return set(re.findall(r"\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b", section))


def test_every_environment_variable_the_module_sets_is_read_by_the_code() -> None:
    read = _names_read_by("core/config.py", "adapters/aws_lambda.py")
    api = set(local("api_environment"))
    reindex = set(local("reindex_environment"))
    assert api - read == set(), "the module sets variables the code never reads"
    assert reindex <= api
    assert {"S3_BUCKET", "S3_PREFIX"} <= reindex
    # and it sets every one the Lambda entry points document
    assert _documented_configuration() <= api


@pytest.mark.parametrize(
    ("name", "value", "field", "expected"),
    [
        ("S3_PRESIGNED_URL_TTL", "60", "presigned_url_ttl", 60),
        (
            "FALLBACK_INDEX_URL",
            "https://pypi.org/simple/",
            "fallback_index_url",
            "https://pypi.org/simple",
        ),
        ("PRIVATE_PROJECTS", "acme-*,internal", "private_projects", ("acme-*", "internal")),
        ("CACHE_CONTROL", "max-age=60", "cache_control", "max-age=60"),
        ("REQUIRE_AUTH_FOR_READ", "true", "require_auth_for_read", True),
        ("REQUIRE_AUTH_FOR_READ", "false", "require_auth_for_read", False),
        ("MAX_UPLOAD_SIZE", "1000", "max_upload_size", 1000),
        ("LOG_REQUESTS", "true", "log_requests", True),
        ("LOG_REQUESTS", "false", "log_requests", False),
    ],
)
def test_values_as_the_module_writes_them_configure_the_index(
    name: str, value: str, field: str, expected: object
) -> None:
    # the forms terraform produces: tostring(number), join(",", list), "true"/"false"
    assert name in local("api_environment")
    assert getattr(Settings.from_env({name: value}), field) == expected


def test_the_module_joins_private_projects_with_commas() -> None:
    assert locals_()["api_environment"]["PRIVATE_PROJECTS"] == '${join(",", var.private_projects)}'
    assert locals_()["api_environment"]["REQUIRE_AUTH_FOR_READ"] == (
        '${var.require_auth_for_read ? "true" : "false"}'
    )


# -- events ----------------------------------------------------------------------------------


def _wildcard(pattern: str) -> re.Pattern[str]:
    # EventBridge wildcard matching: `*` is any run of characters, nothing else is special
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _rule_matches(key: str, prefix: str) -> bool:
    patterns = [f"{prefix}*{suffix}" for suffix in local("distribution_suffixes")]
    return any(_wildcard(p).fullmatch(key) for p in patterns)


def test_the_event_rule_is_built_from_the_layout() -> None:
    assert local("reserved_prefix") == layout.RESERVED_PREFIX
    assert local("root_html") == layout.ROOT_HTML
    rule = resources("aws_cloudwatch_event_rule")["s3"]["event_pattern"]
    assert '"Object Created", "Object Deleted"' in rule
    assert 'source = ["aws.s3"]' in rule.replace("  ", " ")
    assert "for suffix in local.distribution_suffixes" in rule
    assert '{wildcard = "${local.s3_prefix}*${suffix}"}' in rule


NAMES = ["demo", "x-tar", "zip", "whl", "a.b_c"]
FILES = ["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz", "demo-1.0.zip"]


@pytest.mark.parametrize("prefix", ["", "pypi/"])
def test_the_event_rule_matches_distributions_and_never_derived_data(prefix: str) -> None:
    derived = [layout.ROOT_HTML, layout.ROOT_LIST, layout.TOKENS]
    for raw in NAMES:
        name = normalize_project_name(raw)
        derived += [layout.manifest_key(name), layout.page_key(name, json=True)]
        derived += [layout.page_key(name, json=False)]
        derived += [layout.metadata_key(name, f) for f in FILES]
    for key in derived:
        assert layout.is_derived(key)
        assert not _rule_matches(prefix + key, prefix), f"the rule would index {key}"
    for filename in FILES:
        assert _rule_matches(f"{prefix}demo/{filename}", prefix), filename
    if prefix:
        assert not _rule_matches(f"other/demo/{FILES[0]}", prefix)


def test_the_rule_suffixes_are_exactly_what_the_indexer_indexes() -> None:
    for filename in FILES:
        assert not isinstance(classify_key(f"demo/{filename}"), str), filename
        assert _rule_matches(f"demo/{filename}", "")
    # what the rule leaves out, the indexer would not index either
    for other in ["demo-1.0.tar.bz2", "demo-1.0-py2.7.egg", "demo-1.0.exe", "demo-1.0.tgz"]:
        assert isinstance(classify_key(f"demo/{other}"), str), other
        assert not _rule_matches(f"demo/{other}", "")


def test_the_scheduled_reconcile_sends_a_full_reindex() -> None:
    event = local("full_reindex_event")
    assert event == {"reindex": "full"}
    invocation = parse_invocation(json.loads(json.dumps(event)), "bucket")
    assert [m.full_reindex for m in invocation.messages] == [True]
    target = resources("aws_cloudwatch_event_target")["reconcile"]
    assert target["input"] == "${jsonencode(local.full_reindex_event)}"
    assert named("variable")["reindex_schedule_expression"]["default"] == '"rate(1 day)"'


def test_event_targets_have_a_dead_letter_queue_and_retries() -> None:
    for name, target in resources("aws_cloudwatch_event_target").items():
        assert target["dead_letter_config"][0]["arn"] == "${aws_sqs_queue.dlq.arn}", name
        assert target["retry_policy"], name
    reindex = resources("aws_lambda_function")["reindex"]
    assert reindex["dead_letter_config"][0]["target_arn"] == "${aws_sqs_queue.dlq.arn}"


# -- least privilege ---------------------------------------------------------------------------


def _statements(document: str) -> dict[str, dict[str, Any]]:
    return {unquote(s["sid"]): s for s in policy_documents()[document]["statement"]}


def test_no_allow_statement_uses_wildcard_actions_or_resources() -> None:
    for name, document in policy_documents().items():
        for statement in document["statement"]:
            if unquote(statement.get("effect", '"Allow"')) != "Allow":
                continue
            for action in unquote(statement["actions"]):
                assert "*" not in action, f"{name}: {action}"
            for resource in statement.get("resources", []):
                assert unquote(resource) != "*", f"{name}: {statement}"


def test_the_indexer_writes_only_derived_data() -> None:
    assert local("derived_arn").endswith("${local.s3_prefix}${local.reserved_prefix}*")
    assert local("root_html_arn").endswith("${local.s3_prefix}${local.root_html}")
    writes = [
        s
        for s in _statements("reindex").values()
        if {"s3:PutObject", "s3:DeleteObject"} & set(unquote(s["actions"]))
    ]
    assert len(writes) == 1
    assert writes[0]["resources"] == ["${local.derived_arn}", "${local.root_html_arn}"]


def test_each_function_has_its_own_role_and_log_group() -> None:
    functions = resources("aws_lambda_function")
    assert functions["api"]["role"] == "${aws_iam_role.api.arn}"
    assert functions["reindex"]["role"] == "${aws_iam_role.reindex.arn}"
    for name in ("api", "reindex"):
        logs = _statements(name)["Logs"]
        assert unquote(logs["resources"]) == [f"${{aws_cloudwatch_log_group.{name}.arn}}:*"]
        assert functions[name]["logging_config"][0]["log_group"] == (
            f"${{aws_cloudwatch_log_group.{name}.name}}"
        )
    for name, group in resources("aws_cloudwatch_log_group").items():
        assert "retention_in_days" in group, name


def test_the_bucket_is_private_encrypted_and_tls_only() -> None:
    block = resources("aws_s3_bucket_public_access_block")["pypi"]
    for setting in ("block_public_acls", "block_public_policy", "ignore_public_acls"):
        assert block[setting] is True
    assert block["restrict_public_buckets"] is True
    assert resources("aws_s3_bucket_server_side_encryption_configuration")["pypi"]
    tls = _statements("bucket")["DenyInsecureTransport"]
    assert unquote(tls["effect"]) == "Deny"
    condition = unquote(tls["condition"][0])
    assert (condition["variable"], condition["values"]) == ("aws:SecureTransport", ["false"])
    assert resources("aws_s3_bucket_notification")["pypi"]["eventbridge"] is True


# -- documentation and conventions ---------------------------------------------------------------


def test_reference_module_names_are_kept() -> None:
    assert set(named("variable")) >= REFERENCE_VARIABLES
    assert "api_deployment_trigger" in named("output")


def test_every_variable_and_output_is_typed_documented_and_in_the_readme() -> None:
    readme = (TF / "README.md").read_text()
    for name, body in named("variable").items():
        assert unquote(body.get("description", "")), f"variable {name} has no description"
        assert "type" in body, f"variable {name} has no type"
        assert f"| `{name}` |" in readme, f"variable {name} is missing from README's inputs"
    for name, body in named("output").items():
        assert unquote(body.get("description", "")), f"output {name} has no description"
        assert f"| `{name}` |" in readme, f"output {name} is missing from README's outputs"


_SKIP = re.compile(r"^(\s*)#checkov:skip=([A-Z0-9_]+):(.*)$", re.MULTILINE)


def test_every_checkov_skip_is_justified_inside_its_resource() -> None:
    found = 0
    for path in ALL_FILES:
        for match in _SKIP.finditer(path.read_text()):
            indent, check, reason = match.groups()
            found += 1
            assert indent, f"{path.name}: {check} is not inside a resource block"
            assert re.fullmatch(r"CKV2?_AWS_\d+", check), f"{path.name}: {check}"
            assert len(reason.split()) >= 6, f"{path.name}: {check} needs a real reason"
    assert found, "no checkov skips found: did the comment syntax change?"


# -- the example's client configuration ---------------------------------------------------------

CLIENTS = EXAMPLE / "clients"
EXAMPLE_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/simple/"


def test_client_files_parse_and_agree_on_the_index() -> None:
    pip = configparser.ConfigParser()
    pip.read(CLIENTS / "pip.conf")
    assert pip["global"]["index-url"] == EXAMPLE_URL
    pypirc = configparser.ConfigParser()
    pypirc.read(CLIENTS / "pypirc")
    assert pypirc["private"]["repository"] == EXAMPLE_URL
    assert pypirc["private"]["username"] == "__token__"
    uv = tomllib.loads((CLIENTS / "uv.toml").read_text())["index"][0]
    assert (uv["url"], uv["publish-url"], uv["default"]) == (EXAMPLE_URL, EXAMPLE_URL, True)
    poetry = tomllib.loads((CLIENTS / "poetry.toml").read_text())["tool"]["poetry"]["source"][0]
    assert (poetry["url"], poetry["priority"]) == (EXAMPLE_URL, "primary")
    pdm = tomllib.loads((CLIENTS / "pdm.toml").read_text())["tool"]["pdm"]["source"][0]
    assert (pdm["url"], pdm["name"]) == (EXAMPLE_URL, "pypi")


def _client_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "TWINE_"))}
    return {**env, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), **extra}


@pytest.mark.slow
def test_the_example_client_files_work_with_real_clients(live_server: Any, tmp_path: Path) -> None:
    """twine (pypirc), uv publish and uv's resolver (uv.toml), pip (pip.conf) against a server."""
    from serverless_pypi.auth.tokens import TokenStore
    from serverless_pypi.storage.local import LocalStore

    store_dir = tmp_path / "store"
    store_dir.mkdir()
    token, _ = TokenStore(LocalStore(store_dir)).create("write", (), None, "example clients")
    server: LiveServer = live_server(str(store_dir))
    configs = tmp_path / "configs"
    configs.mkdir()
    for file in CLIENTS.iterdir():
        (configs / file.name).write_text(file.read_text().replace(EXAMPLE_URL, server.url))
    dists = tmp_path / "dists"
    dists.mkdir()
    first = make_wheel(dists, "example-clients", "1.0")
    second = make_wheel(dists, "example-clients", "1.1")
    env = _client_env(tmp_path, TWINE_PASSWORD=token)

    def run(*command: str, **extra: str) -> str:
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=120, env={**env, **extra}
        )
        assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
        return result.stdout + result.stderr

    twine = [str(BIN / "twine"), "upload", "--config-file", str(configs / "pypirc")]
    run(*twine, "--repository", "private", "--non-interactive", str(first))
    uv = str(BIN / "uv")
    uv_config = ["--config-file", str(configs / "uv.toml")]
    run(uv, "publish", *uv_config, "--index", "private", "--token", token, str(second))
    requirements = tmp_path / "requirements.in"
    requirements.write_text("example-clients\n")
    resolved = run(uv, "pip", "compile", *uv_config, "--no-header", "--no-cache", str(requirements))
    assert "example-clients==1.1" in resolved
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir"]
    run(
        *pip,
        "--dest",
        str(tmp_path / "got"),
        "example-clients==1.0",
        PIP_CONFIG_FILE=str(configs / "pip.conf"),
    )
    assert (tmp_path / "got" / first.name).read_bytes() == first.read_bytes()
