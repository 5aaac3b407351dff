"""The upstream index (issue 12): HTTP to it, over `serverless_pypi.storage.http1`.

A layer of its own between `index` and `storage`: `index` (the upstream cache, pulling files
through) and `repository` use it; it uses only `storage` (the HTTP/1.1 connection) and `core`
(the page model in `serverless_pypi.core.upstream`).
"""
