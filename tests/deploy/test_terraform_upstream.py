"""The Terraform module's upstream settings (issue 12), checked offline.

The HCL is parsed (python-hcl2) and cross-checked against the package: the variables and
their defaults, the environment the functions get and what the code makes of it, and the IAM
grants, evaluated for the keys `index.layout` builds (the API function caches upstream pages
and metadata but may never write a pulled-through copy; only the indexer does). Then
`terraform test` (tests/deploy/upstream.tftest.hcl, a mocked AWS provider: nothing is created)
plans and applies the module in each mode, where terraform and an AWS provider are at hand.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from serverless_pypi.core.config import Settings
from serverless_pypi.core.names import normalize_project_name
from serverless_pypi.index import layout
from tests.helpers.servers import ROOT
from tests.helpers.terraform import MODULE_FILES, blocks, local, locals_, resources, unquote

TFTEST = Path(__file__).with_name("upstream.tftest.hcl")
ENVIRONMENT = (
    "UPSTREAM_INDEX_URL",
    "UPSTREAM_MODE",
    "UPSTREAM_TTL",
    "UPSTREAM_CREDENTIALS_SECRET",
    "PULL_QUEUE_URL",
)

# stand-ins for the values AWS assigns, to evaluate the grants
BUCKET_ARN = "arn:aws:s3:::acme-pypi"
PULL_QUEUE = "arn:aws:sqs:us-east-1:123456789012:serverless-pypi-pull"
DLQ = "arn:aws:sqs:us-east-1:123456789012:serverless-pypi-reindex-dlq"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:pypi-AbCdEf"
REFERENCES = {
    "aws_s3_bucket.pypi.arn": BUCKET_ARN,
    "aws_sqs_queue.pull[0].arn": PULL_QUEUE,
    "aws_sqs_queue.dlq.arn": DLQ,
    "var.upstream_credentials_secret_arn": SECRET,
    "aws_cloudwatch_log_group.api.arn": "arn:aws:logs:us-east-1:123456789012:log-group:api",
    "aws_cloudwatch_log_group.reindex.arn": "arn:aws:logs:us-east-1:123456789012:log-group:ix",
}


def variables() -> dict[str, dict[str, Any]]:
    return {unquote(n): body for block in blocks("variable") for n, body in block.items()}


# -- variables -----------------------------------------------------------------------------------


def test_the_upstream_variables_and_their_defaults() -> None:
    found = variables()
    expected = {
        "upstream_index_url": ("string", '""'),
        "upstream_mode": ("string", '"mirror"'),
        "upstream_ttl": ("number", 300),
        "upstream_credentials_secret_arn": ("string", '""'),
        "private_projects": ("list(string)", []),
        "lambda_api_fallback_index_url": ("string", None),
    }
    for name, (kind, default) in expected.items():
        assert name in found, name
        assert found[name]["type"].removeprefix("${").removesuffix("}") == kind, name
        assert found[name]["default"] == default, name
    # the modes the code knows, and only those
    from serverless_pypi.core.config import UPSTREAM_MODES

    condition = found["upstream_mode"]["validation"][0]["condition"]
    assert re.findall(r'\\?"(\w+)\\?"', condition) == list(UPSTREAM_MODES)
    # no variable carries a password: credentials come from Secrets Manager only
    assert not [n for n in found if re.search("password|username|token", n)]


def _terraform_regex(variable: str) -> re.Pattern[str]:
    condition = variables()[variable]["validation"][0]["condition"]
    match = re.search(r'regex\("(.+?)", var\.', condition)
    assert match, condition
    # an HCL string literal: \\ is one backslash (RE2 and Python agree on this pattern)
    return re.compile(match.group(1).replace("\\\\", "\\"))


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://pypi.org/simple/", True),
        ("http://127.0.0.1:8080/simple", True),
        ("https://nexus.example.com/repository/pypi/simple/", True),
        ("https://alice:s3cret@pypi.example.org/simple/", False),  # credentials: a secret
        ("https://token@pypi.example.org/simple/", False),
        ("ftp://pypi.example.org/simple/", False),
        ("pypi.org/simple/", False),
        ("https://pypi.org/simple/ extra", False),
    ],
)
def test_the_upstream_url_is_http_and_carries_no_credentials(url: str, accepted: bool) -> None:
    assert bool(_terraform_regex("upstream_index_url").fullmatch(url)) is accepted


@pytest.mark.parametrize(
    ("arn", "accepted"),
    [
        (SECRET, True),
        ("arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x-AbCdEf", True),
        ("arn:aws:ssm:us-east-1:123456789012:parameter/pypi", False),
        ("alice:s3cret", False),
    ],
)
def test_the_credentials_are_a_secrets_manager_secret(arn: str, accepted: bool) -> None:
    assert bool(_terraform_regex("upstream_credentials_secret_arn").fullmatch(arn)) is accepted


# -- the functions' environment ------------------------------------------------------------------


def test_the_api_function_gets_every_upstream_variable_and_the_code_reads_each() -> None:
    api = local("api_environment")
    reindex = local("reindex_environment")
    sources = "".join(p.read_text() for p in (ROOT / "src/serverless_pypi").rglob("*.py"))
    for name in ENVIRONMENT:
        assert name in api, f"the API function does not get {name}"
        assert f'"{name}"' in sources, f"the module sets {name}, which no code reads"
    # the indexer copies from the upstream (URL, credentials) but never sends to the queue
    assert {"UPSTREAM_INDEX_URL", "UPSTREAM_CREDENTIALS_SECRET"} <= set(reindex)
    assert "PULL_QUEUE_URL" not in reindex
    # set only when they mean something, so the code's defaults apply otherwise
    raw = locals_()["api_environment"]
    assert raw["UPSTREAM_INDEX_URL"] == "${local.upstream ? var.upstream_index_url : null}"
    assert raw["UPSTREAM_TTL"] == "${local.upstream ? tostring(var.upstream_ttl) : null}"
    assert raw["PULL_QUEUE_URL"] == "${local.upstream_mirror ? aws_sqs_queue.pull[0].url : null}"
    assert raw["FALLBACK_INDEX_URL"] == "${var.lambda_api_fallback_index_url}"


@pytest.mark.parametrize("mode", ["redirect", "proxy", "mirror"])
def test_values_as_the_module_writes_them_configure_the_index(mode: str) -> None:
    settings = Settings.from_env(
        {
            "UPSTREAM_INDEX_URL": "https://pypi.org/simple/",
            "UPSTREAM_MODE": mode,
            "UPSTREAM_TTL": "300",  # tostring(var.upstream_ttl)
        }
    )
    assert settings.upstream_mode == mode
    assert settings.upstream_ttl == 300
    assert (settings.upstream_index_url or "").rstrip("/") == "https://pypi.org/simple"


def test_the_fallback_variable_alone_still_means_redirect() -> None:
    settings = Settings.from_env({"FALLBACK_INDEX_URL": "https://pypi.org/simple/"})
    assert settings.upstream_mode == "redirect"
    assert settings.fallback_index_url == "https://pypi.org/simple"


def test_the_module_never_sets_both_urls() -> None:
    # what the code refuses (FALLBACK_INDEX_URL is redirect mode only), the plan refuses first
    lifecycle = resources("aws_lambda_function")["api"]["lifecycle"][0]
    conditions = [unquote(p["condition"]) for p in lifecycle["precondition"]]
    assert (
        '${var.lambda_api_fallback_index_url == null || var.upstream_index_url == ""}' in conditions
    )
    with pytest.raises(ValueError, match="FALLBACK_INDEX_URL"):
        Settings.from_env(
            {
                "FALLBACK_INDEX_URL": "https://pypi.org/simple/",
                "UPSTREAM_INDEX_URL": "https://pypi.org/simple/",
                "UPSTREAM_MODE": "mirror",
            }
        )


# -- least privilege -----------------------------------------------------------------------------


def _resolve(expression: str, prefix: str) -> str:
    """An ARN expression of the module with the locals and AWS's values filled in."""

    def one(match: re.Match[str]) -> str:
        reference = match.group(1)
        if reference == "local.s3_prefix":
            return prefix
        if reference in REFERENCES:
            return REFERENCES[reference]
        name = reference.removeprefix("local.")
        assert name != reference, f"cannot evaluate ${{{reference}}}"
        return _resolve(str(local(name)), prefix)

    return re.sub(r"\$\{([^}]+)\}", one, expression)


def _documents_of(role: str) -> list[str]:
    """The policy documents attached to a role (inline role policies)."""
    found = []
    for name, body in resources("aws_iam_role_policy").items():
        if body["role"] != f"${{aws_iam_role.{role}.id}}":
            continue
        match = re.fullmatch(
            r"\$\{data\.aws_iam_policy_document\.(\w+)(?:\[0\])?\.json\}", body["policy"]
        )
        assert match, f"{name}: {body['policy']}"
        found.append(match.group(1))
    return found


def _statements_of(role: str, prefix: str) -> list[tuple[str, set[str], list[str]]]:
    """(effect, actions, resources) of every statement a role gets."""
    documents: dict[str, Any] = {}
    for block in blocks("data"):
        for kind, by_name in block.items():
            if unquote(kind) == "aws_iam_policy_document":
                documents.update({unquote(n): body for n, body in by_name.items()})
    statements = []
    for document in _documents_of(role):
        body = documents[document]
        assert "dynamic" not in body, f"{document}: a dynamic statement is not evaluated here"
        for statement in body["statement"]:
            effect = unquote(statement.get("effect", '"Allow"'))
            actions = set(unquote(statement["actions"]))
            arns = [_resolve(unquote(r), prefix) for r in statement["resources"]]
            statements.append((effect, actions, arns))
    return statements


def allowed(role: str, action: str, arn: str, prefix: str = "") -> bool:
    """IAM's evaluation of identity policies: an explicit Deny wins, else any Allow."""

    def matches(statement: tuple[str, set[str], list[str]]) -> bool:
        _, actions, arns = statement
        action_ok = any(fnmatch.fnmatchcase(action, a) for a in actions)
        return action_ok and any(fnmatch.fnmatchcase(arn, r) for r in arns)

    statements = [s for s in _statements_of(role, prefix) if matches(s)]
    return bool(statements) and all(effect == "Allow" for effect, _, _ in statements)


NAME = normalize_project_name("requests")
WHEEL = "requests-2.32.3-py3-none-any.whl"
DIGEST = "70761cfe03c773ceb22aa2f671b4757976145175cdfca038c02654d061d6dcc6"


def _object(prefix: str, key: str) -> str:
    return f"{BUCKET_ARN}/{prefix}{key}"


@pytest.mark.parametrize("prefix", ["", "pypi/"])
def test_the_api_function_caches_pages_and_metadata_but_never_writes_a_copy(prefix: str) -> None:
    page = _object(prefix, layout.upstream_page_key(NAME))
    metadata = _object(prefix, layout.upstream_metadata_key(NAME, DIGEST, WHEEL))
    copy = _object(prefix, layout.upstream_file_key(NAME, DIGEST, WHEEL))
    for key in (page, metadata, copy):
        assert allowed("api", "s3:GetObject", key, prefix), key
    assert allowed("api", "s3:PutObject", page, prefix)
    assert allowed("api", "s3:PutObject", metadata, prefix)
    # the explicit Deny: a request can ask for a copy, never plant one (multipart uploads
    # are s3:PutObject to IAM, and so is the destination of a CopyObject)
    assert not allowed("api", "s3:PutObject", copy, prefix)
    # a revalidated page that no longer lists a file forgets its copy
    assert allowed("api", "s3:DeleteObject", copy, prefix)
    # published files are still the API function's to write (uploads)
    assert allowed("api", "s3:PutObject", _object(prefix, f"{NAME}/{WHEEL}"), prefix)


@pytest.mark.parametrize("prefix", ["", "pypi/"])
def test_only_the_indexer_writes_pulled_through_copies(prefix: str) -> None:
    copy = _object(prefix, layout.upstream_file_key(NAME, DIGEST, WHEEL))
    assert allowed("reindex", "s3:PutObject", copy, prefix)
    assert allowed("reindex", "s3:AbortMultipartUpload", copy, prefix)
    assert allowed("reindex", "s3:DeleteObject", copy, prefix)
    # ... and nowhere else: not a published file, not outside the prefix
    assert not allowed("reindex", "s3:PutObject", _object(prefix, f"{NAME}/{WHEEL}"), prefix)
    assert not allowed("reindex", "s3:AbortMultipartUpload", _object(prefix, f"{NAME}/{WHEEL}"))
    if prefix:
        outside = _object("", layout.upstream_file_key(NAME, DIGEST, WHEEL))
        assert not allowed("reindex", "s3:PutObject", outside, prefix)
        assert not allowed("api", "s3:PutObject", _object("", f"{NAME}/{WHEEL}"), prefix)


def test_the_denied_namespace_is_the_layouts() -> None:
    assert local("upstream_prefix") == "${local.reserved_prefix}upstream/"
    assert _resolve("${local.upstream_prefix}", "") == layout.UPSTREAM
    assert (
        _resolve("${local.upstream_files_arn}", "p/") == f"{BUCKET_ARN}/p/{layout.UPSTREAM_FILES}*"
    )


def test_the_queue_is_for_the_api_to_send_and_the_indexer_to_receive() -> None:
    assert allowed("api", "sqs:SendMessage", PULL_QUEUE)
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:PurgeQueue"):
        assert not allowed("api", action, PULL_QUEUE), action
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
        assert allowed("reindex", action, PULL_QUEUE), action
    assert not allowed("reindex", "sqs:SendMessage", PULL_QUEUE)
    # the indexer still only sends to its dead-letter queue, the API function not at all
    assert allowed("reindex", "sqs:SendMessage", DLQ)
    assert not allowed("api", "sqs:SendMessage", DLQ)


def test_both_functions_read_the_one_secret_and_nothing_else() -> None:
    other = "arn:aws:secretsmanager:us-east-1:123456789012:secret:other-XyZ123"
    for role in ("api", "reindex"):
        assert allowed(role, "secretsmanager:GetSecretValue", SECRET), role
        assert not allowed(role, "secretsmanager:GetSecretValue", other), role
        assert not allowed(role, "secretsmanager:ListSecrets", SECRET), role


def test_every_upstream_grant_exists_only_when_it_is_needed() -> None:
    counts = {name: body.get("count") for name, body in resources("aws_iam_role_policy").items()}
    assert counts["api_pull"] == counts["reindex_pull"] == "${local.upstream_mirror ? 1 : 0}"
    assert counts["api_upstream_credentials"] == "${local.upstream_secret ? 1 : 0}"
    assert counts["reindex_upstream_credentials"] == (
        "${local.upstream_mirror && local.upstream_secret ? 1 : 0}"
    )
    for kind in ("aws_sqs_queue", "aws_sqs_queue_policy", "aws_lambda_event_source_mapping"):
        assert resources(kind)["pull"]["count"] == "${local.upstream_mirror ? 1 : 0}", kind
    assert local("upstream_mirror") == '${local.upstream && var.upstream_mode == "mirror"}'


# -- the pull queue ------------------------------------------------------------------------------


def test_the_pull_queue_is_encrypted_bounded_and_drains_into_the_dead_letter_queue() -> None:
    queue = resources("aws_sqs_queue")["pull"]
    assert queue["sqs_managed_sse_enabled"] is True
    assert "deadLetterTargetArn = aws_sqs_queue.dlq.arn" in queue["redrive_policy"]
    # visibility above the indexer's timeout (Lambda checks it when the mapping is created)
    visibility = queue["visibility_timeout_seconds"]
    assert visibility == "${min(6 * var.lambda_reindex_timeout, 43200)}"
    timeout = variables()["lambda_reindex_timeout"]["default"]
    assert min(6 * timeout, 43200) > timeout
    # the queue refuses plain HTTP, like the dead-letter queue
    policy = blocks("data")
    documents = {
        unquote(n): body
        for block in policy
        for kind, by_name in block.items()
        if unquote(kind) == "aws_iam_policy_document"
        for n, body in by_name.items()
    }
    tls = documents["pull"]["statement"][0]
    assert unquote(tls["effect"]) == "Deny"
    assert unquote(tls["condition"][0])["variable"] == "aws:SecureTransport"


def test_the_indexer_takes_bounded_batches_and_reports_each_failure() -> None:
    mapping = resources("aws_lambda_event_source_mapping")["pull"]
    assert mapping["function_name"] == "${aws_lambda_function.reindex.arn}"
    assert mapping["event_source_arn"] == "${aws_sqs_queue.pull[0].arn}"
    assert unquote(mapping["function_response_types"]) == ["ReportBatchItemFailures"]
    assert mapping["batch_size"] == "${var.upstream_pull_batch_size}"
    scaling = mapping["scaling_config"][0]
    assert scaling["maximum_concurrency"] == "${var.upstream_pull_maximum_concurrency}"
    found = variables()
    assert found["upstream_pull_batch_size"]["default"] == 1
    assert found["upstream_pull_maximum_concurrency"]["default"] == 5


def test_the_readme_names_every_upstream_variable_and_output() -> None:
    readme = (ROOT / "terraform/README.md").read_text()
    for name in variables():
        if name.startswith("upstream_"):
            assert f"| `{name}` |" in readme, name
    for name in ("upstream_pull_queue_url", "upstream_pull_queue_arn"):
        assert f"| `{name}` |" in readme, name
    for name in ENVIRONMENT:
        assert f"`{name}`" in readme, name


# -- terraform test: the module planned and applied against a mocked provider --------------------

#: where a provider may already be on disk (a filesystem mirror: `terraform init -plugin-dir`)
PLUGIN_DIRS = [Path(p) for p in (os.environ.get("TF_PLUGIN_DIR", ""), "/opt/tf-plugins") if p]


def _terraform_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    return {
        **env,
        "HOME": str(home),
        "TF_CLI_CONFIG_FILE": os.devnull,
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "TF_REGISTRY_CLIENT_TIMEOUT": "10",
    }


def _run(
    argv: list[str], env: dict[str, str], timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=timeout, env=env
    )


def _adapt_to_provider_5(module: Path) -> None:
    """Let a copy of the module run on AWS provider 5, for a machine whose only provider on
    disk is that one: the two spellings the module takes from provider 6 (front.tf), neither
    of which the upstream settings touch."""
    versions = module / "versions.tf"
    versions.write_text(versions.read_text().replace('">= 6.28, < 7.0"', '">= 5.0"'))
    front = module / "front.tf"
    text = front.read_text()
    text = re.sub(r"^\s*invoked_via_function_url\s*=\s*true\s*$", "", text, flags=re.MULTILINE)
    front.write_text(text.replace("data.aws_region.current.region", "data.aws_region.current.name"))


def _initialised_copy(tmp_path: Path, terraform: str) -> Path:
    """The module and the test file in a temporary directory, `terraform init`-ed."""
    module = tmp_path / "module"
    (module / "tests").mkdir(parents=True)
    for path in MODULE_FILES:
        shutil.copy(path, module / path.name)
    shutil.copy(TFTEST, module / "tests" / TFTEST.name)
    env = _terraform_env(tmp_path)
    init = [terraform, f"-chdir={module}", "init", "-backend=false", "-input=false", "-no-color"]
    mirrors = [d for d in PLUGIN_DIRS if (d / "registry.terraform.io/hashicorp/aws").is_dir()]
    attempts = [[*init, f"-plugin-dir={d}"] for d in mirrors] or [init]
    for argv in attempts:
        if _run(argv, env, timeout=120).returncode == 0:
            return module
    old = [d for d in mirrors if any((d / "registry.terraform.io/hashicorp/aws").glob("5.*"))]
    if old:
        _adapt_to_provider_5(module)
        done = _run([*init, f"-plugin-dir={old[0]}"], env, timeout=120)
        if done.returncode == 0:
            return module
    pytest.skip("no AWS provider for terraform here (no registry, no plugin directory)")


@pytest.mark.slow
def test_terraform_test_plans_and_applies_each_mode(tmp_path: Path) -> None:
    """tests/deploy/upstream.tftest.hcl: what each mode deploys, what the plan refuses."""
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed here; the HCL checks above still ran")
    module = _initialised_copy(tmp_path, terraform)
    env = _terraform_env(tmp_path)
    validate = _run([terraform, f"-chdir={module}", "validate", "-no-color"], env)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    package = tmp_path / "lambda.zip"
    package.write_bytes(b"not run: the provider is mocked")
    done = _run(
        [terraform, f"-chdir={module}", "test", "-no-color", f"-var=lambda_package_path={package}"],
        env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"Success! (\d+) passed, 0 failed", done.stdout), done.stdout


def test_the_terraform_test_file_is_fmt_clean() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed here")
    done = _run([terraform, "fmt", "-check", "-list=true", str(TFTEST)], _terraform_env(ROOT))
    assert done.returncode == 0, f"not `terraform fmt`-clean:\n{done.stdout}{done.stderr}"
