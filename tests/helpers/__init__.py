"""Helpers shared by every kind of test; fixtures stay in tests/conftest.py.

- `servers`: paths (ROOT, BIN), moto's server and environment, live `serverless-pypi serve`
- `clients`: pip, uv, twine and the command line, run as clients of a test index
- `dists`: real wheels and sdists built without a build backend, and their hashes
- `forms`: upload forms as twine and uv post them
- `index`: publishing into a store, and reading the pages the index serves
- `lambda_events`: the indexer's invocations and the recorded events of the API fronts
- `terraform`: the Terraform module parsed offline, the Lambda build script as a module
"""
