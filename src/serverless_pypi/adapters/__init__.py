"""The thin edges: AWS Lambda events, the local HTTP server and the command line.

Each turns its native input into a `Request` (or a command), calls what `serverless_pypi.compose`
assembled, and converts the `Response` back. No behaviour of the index lives here.
"""
