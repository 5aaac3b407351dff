"""The HTTP application: routes, content negotiation, access checks, cache headers, the upload
protocol, and the one table from errors to statuses. It reads everything it serves through a
`serverless_pypi.repository.Repository` and never builds a storage key.
"""
