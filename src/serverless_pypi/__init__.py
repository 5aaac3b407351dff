"""serverless-pypi: a private Python package index for AWS Lambda + S3 or a local directory."""

__version__ = "0.1.0"
