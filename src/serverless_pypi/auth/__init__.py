"""Who may read and who may upload: API tokens (their format and verification) and the access
decisions made from them. The token list itself is derived data, kept by `serverless_pypi.index`.
"""
