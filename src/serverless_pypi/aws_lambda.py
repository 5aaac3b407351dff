"""The Lambda handler strings `serverless_pypi.aws_lambda.api_handler` and `.reindex_handler`.

The Terraform module and existing deployments name these; the handlers live in
`serverless_pypi.adapters.aws_lambda`.
"""

from serverless_pypi.adapters.aws_lambda import api_handler, reindex_handler

__all__ = ["api_handler", "reindex_handler"]
