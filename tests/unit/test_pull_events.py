"""Pull messages (mirror mode) in indexer invocations: parsed to (project, file), or unreadable.

The message is what `index.pull.pull_message` builds; anything else that claims to be one
(a name not normalized, a path in the file name, missing fields) is unreadable, so an SQS
message carrying it reaches the dead-letter queue instead of being acted on.
"""

from __future__ import annotations

from typing import Any

import pytest

from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index.events import parse_invocation
from serverless_pypi.index.pull import pull_message
from tests.helpers.lambda_events import BUCKET, sqs


def test_the_message_the_api_function_sends_is_read() -> None:
    body = pull_message(NormalizedName("my-pkg"), "my_pkg-1.0-py3-none-any.whl")
    invocation = parse_invocation(sqs(body, body, {"reindex": "full"}), BUCKET)
    assert invocation.from_sqs
    [first, second, third] = invocation.messages
    assert first.pulls == second.pulls == [("my-pkg", "my_pkg-1.0-py3-none-any.whl")]
    assert (first.keys, first.full_reindex, first.unreadable) == ([], False, [])
    assert third.pulls == [] and third.full_reindex


def test_a_direct_invocation_with_a_pull() -> None:
    invocation = parse_invocation({"pull": {"project": "a", "file": "a-1.0.tar.gz"}}, BUCKET)
    assert not invocation.from_sqs
    assert invocation.messages[0].pulls == [("a", "a-1.0.tar.gz")]


@pytest.mark.parametrize(
    ("pull", "why"),
    [
        ({"project": "My_Pkg", "file": "x-1.0.tar.gz"}, "not normalized"),
        ({"project": "-bad-", "file": "x-1.0.tar.gz"}, "invalid name"),
        ({"project": "a", "file": "../../index.html"}, "invalid name"),
        ({"project": "a", "file": ".serverless-pypi"}, "invalid name"),
        ({"project": "a"}, "without a project and a file"),
        ({"project": 1, "file": "x"}, "without a project and a file"),
        ("a/x.tar.gz", "without a project and a file"),
    ],
)
def test_anything_else_is_unreadable(pull: Any, why: str) -> None:
    [message] = parse_invocation(sqs({"pull": pull}), BUCKET).messages
    assert message.pulls == []
    assert len(message.unreadable) == 1 and why in message.unreadable[0]
