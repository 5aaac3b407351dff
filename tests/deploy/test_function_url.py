"""The function URL front grants what public access needs since October 2025 (issue 10, item 21).

A function URL with auth type NONE created since October 2025 answers 403 unless the function's
resource policy allows both `lambda:InvokeFunctionUrl` (condition `lambda:FunctionUrlAuthType =
NONE`) and `lambda:InvokeFunction` (condition `lambda:InvokedViaFunctionUrl = true`), as the
Lambda developer guide's "Control access to Lambda function URLs" says.
"""

from __future__ import annotations

import re
from typing import Any

from tests.helpers.terraform import TF, parsed, resources, unquote

#: the statement ids the AWS provider gives the grants it adds, outside the state, on creation
PROVIDER_STATEMENT_IDS = {"FunctionURLAllowPublicAccess", "FunctionURLAllowInvokeAction"}


def _function_url_grants() -> dict[str, dict[str, Any]]:
    """The permissions that exist exactly when the function URL does, by action."""
    url_count = resources("aws_lambda_function_url")["api"]["count"]
    grants: dict[str, dict[str, Any]] = {}
    for name, body in resources("aws_lambda_permission").items():
        if body.get("count") == url_count:
            grant = unquote(body)
            assert grant["action"] not in grants, f"two grants of {grant['action']}: {name}"
            grants[grant["action"]] = grant
    return grants


def test_the_function_url_front_grants_both_public_invoke_permissions() -> None:
    grants = _function_url_grants()
    assert set(grants) == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    for grant in grants.values():
        assert grant["function_name"] == "${aws_lambda_function.api.function_name}"
        assert grant["principal"] == "*"
        assert "qualifier" not in grant  # the URL is on the unqualified function
    url = grants["lambda:InvokeFunctionUrl"]
    assert url["function_url_auth_type"] == "NONE"
    invoke = grants["lambda:InvokeFunction"]
    # without it, the grant would let anyone invoke the function directly, not only by URL
    assert invoke["invoked_via_function_url"] is True
    assert "function_url_auth_type" not in invoke  # AWS: only valid with InvokeFunctionUrl


def test_the_grants_do_not_collide_with_the_providers_own_statements() -> None:
    ids = [grant["statement_id"] for grant in _function_url_grants().values()]
    assert len(set(ids)) == len(ids) == 2
    assert not set(ids) & PROVIDER_STATEMENT_IDS


def test_the_provider_version_supports_invoked_via_function_url() -> None:
    (terraform,) = parsed(TF / "versions.tf")["terraform"]
    (providers,) = terraform["required_providers"]
    constraint = unquote(providers["aws"]["version"])
    # hashicorp/aws 6.28.0 added `invoked_via_function_url` to aws_lambda_permission
    minimum = re.search(r">=\s*(\d+)\.(\d+)", constraint)
    assert minimum, constraint
    assert (int(minimum.group(1)), int(minimum.group(2))) >= (6, 28)
