"""The client of PEP 694 Upload 2.0 sessions, run by `serverless-pypi upload`.

PEP 694 (draft; the revision posted 26-Jun-2026 with python/peps#5012) has no client yet; this
is one, for this index and any other that implements the same protocol. The files are grouped
by release (name and version, read from the file names with `packaging`); each release is one
publishing session below the index URL (`<URL>/_upload/`, the session root this index
documents; every other URL comes from the `links` of the answers, as the PEP requires):

1. `POST <root>` creates the session; a 409 with a Location (a session of that release is
   open) resumes it: a file it holds complete with the same sha256 and size is kept, a pending
   one is finished (on S3 only the parts S3 does not hold yet are sent), one in `error` is
   deleted and uploaded again.
2. One file upload session per file, with the first mechanism the index offers that the
   client knows: `vnd-serverlesspypi-s3multipart-presigned-v1` (the bytes go straight to S3
   over presigned part URLs, `--jobs` parts at a time, each retried) or `http-post-bytes`
   (one POST of the raw bytes to the index).
3. `complete` for each file (the index verifies size, hashes and the archive), then
   `publish`: every file of the release appears in one step. With `--stage` the session stays
   open and the command prints its stage URL, from which pip and uv install the release.

An index without the session API (`POST <root>` answered 404, 405, 406 or 415) gets the files
through the legacy upload API (the multipart form twine sends) instead.

HTTP is the standard library's (`urllib.request`; SSL_CERT_FILE and the proxy variables apply);
credentials go only to the index's own origin, never to the presigned S3 URLs.

What lives where (the command line itself is `serverless_pypi.adapters.upload_cli`):

- `errors`: UploadError, and NoSessionApi for an index without the session API.
- `files`: a distribution file read and hashed (LocalFile), the files grouped by Release.
- `protocol`: PEP 694's media type and mechanism names, the request bodies (pure).
- `transport`: HTTP (Http, Answer, error_text), its timeouts and attempts.
- `credentials`: a token as twine sends it, and trusted publishing's token exchange.
- `progress`: the progress bar, and a reader of a file's bytes that counts them.
- `uploader`: the session flow, a release at a time (Uploader, Outcome).
- `s3_multipart`: the S3 mechanism (presigned part URLs, parts in parallel, resuming).
- `legacy`: the legacy upload API's form, for an index without sessions.

Only the command line uses this package: the Lambda zip leaves it out
(scripts/build_lambda.py LEFT_OUT_MODULES).
"""
