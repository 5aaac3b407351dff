"""serverless-pypi: a private Python package index for AWS Lambda + S3 or a local directory."""

#: The one source of the version. setuptools reads it from here without importing the package
#: (pyproject.toml, [tool.setuptools.dynamic]) and `serverless-pypi --version` prints it. It is
#: never read back through importlib.metadata: the Lambda zip has no dist-info of the package.
__version__ = "0.2.0"
