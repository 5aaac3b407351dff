"""`serverless-pypi upload`: the command line of the Upload 2.0 client (PEP 694).

    upload --index URL [--token T | --trusted-publishing] [--stage] [--jobs N]
           [--no-attestations] FILE...

A thin adapter: it parses the arguments, reads the files, picks the credentials, runs each
release through `serverless_pypi.upload_client` (the protocol, HTTP, the mechanisms: see its
docstring) and prints what happened. An index without the session API gets the files through
the legacy upload API instead, with a note on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from serverless_pypi.upload_client.credentials import (
    basic_authorization,
    burn_token,
    mint_token,
    split_credentials,
)
from serverless_pypi.upload_client.errors import NoSessionApi, UploadError
from serverless_pypi.upload_client.files import LocalFile, Release, group_releases
from serverless_pypi.upload_client.legacy import legacy_upload
from serverless_pypi.upload_client.progress import Progress
from serverless_pypi.upload_client.transport import Http
from serverless_pypi.upload_client.uploader import Outcome, Uploader

__all__ = ["add_commands", "cmd_upload"]


# -- the command -------------------------------------------------------------------------------


def _read_files(names: Sequence[str], err: TextIO) -> tuple[list[LocalFile], int]:
    files, failed = [], 0
    for name in names:
        try:
            files.append(LocalFile.read(Path(name)))
        except UploadError as e:
            print(f"error: {name}: {e}", file=err)
            failed += 1
    return files, failed


def _credentials(args: argparse.Namespace, index_url: str, token: str | None) -> tuple[str, bool]:
    """The token to send, and whether it was minted here (trusted publishing)."""
    if args.trusted_publishing:
        return mint_token(index_url, os.environ), True
    token = args.token or token or os.environ.get("SERVERLESS_PYPI_TOKEN", "").strip()
    if not token:
        raise ValueError(
            "no credentials: give --token T (a write token), set SERVERLESS_PYPI_TOKEN, or use "
            "--trusted-publishing in CI"
        )
    return token, False


def _legacy(
    http: Http, args: argparse.Namespace, release: Release, progress: Progress, status: int
) -> Outcome:
    outcome = Outcome()
    if args.stage:
        outcome.errors.append(
            f"{release.project} {release.version}: the index has no Upload 2.0 session API "
            f"(its session root answered {status}): --stage needs one; nothing uploaded"
        )
        return outcome
    url = args.legacy_url or args.index
    for local in release.files:
        try:
            legacy_upload(http, url, local, progress)
        except UploadError as e:
            outcome.errors.append(f"{local.filename}: legacy upload: {e}")
        else:
            outcome.lines.append(f"published (legacy API): {release.project}/{local.filename}")
    return outcome


def cmd_upload(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    index_url, inline_token = split_credentials(args.index.strip())
    if not index_url.endswith("/"):
        index_url += "/"
    files, failed = _read_files(args.files, err)
    if not files:
        return 1
    token, minted = _credentials(args, index_url, inline_token)
    http = Http(index_url, basic_authorization(token))
    progress = Progress.for_terminal(err)
    uploader = Uploader(
        http,
        index_url,
        jobs=args.jobs,
        progress=progress,
        attestations=not args.no_attestations,
    )
    noted = False
    try:
        for release in group_releases(files):
            try:
                outcome = uploader.release(release, stage=args.stage)
            except NoSessionApi as e:
                if not noted and not args.stage:
                    print(
                        f"note: the index has no Upload 2.0 session API ({uploader.root} "
                        f"answered {e.status}): uploaded with the legacy API",
                        file=err,
                    )
                    noted = True
                outcome = _legacy(http, args, release, progress, e.status)
            except UploadError as e:
                outcome = Outcome(errors=[str(e)])
            progress_lines(outcome, out, err)
            failed += len(outcome.errors)
    finally:
        progress.close()
        if minted:
            burn_token(index_url, token)
    return 1 if failed else 0


def progress_lines(outcome: Outcome, out: TextIO, err: TextIO) -> None:
    for line in outcome.lines:
        print(line, file=out, flush=True)
    for line in outcome.notes:
        print(f"note: {line}", file=err, flush=True)
    for line in outcome.errors:
        print(f"error: {line}", file=err, flush=True)


def add_commands(commands: Any) -> None:
    """Register `upload` on the CLI."""
    upload = commands.add_parser(
        "upload",
        help="upload distributions through the index's Upload 2.0 sessions (PEP 694)",
        description="Upload wheels and sdists to an index with a token, a release at a time: "
        "the files go into one Upload 2.0 session (PEP 694; on S3 straight to the bucket, in "
        "parallel parts), are verified, and appear together when the session is published. "
        "Running the command again resumes an interrupted upload. An index without the "
        "session API gets the files through the legacy upload API. Exits 1 if any file "
        "failed.",
    )
    upload.add_argument(
        "--index",
        required=True,
        metavar="URL",
        help="the index's simple URL, e.g. https://pypi.example.com/simple/ (sessions live "
        "below it, at _upload/)",
    )
    who = upload.add_mutually_exclusive_group()
    who.add_argument("--token", metavar="T", help="a write token (default: $SERVERLESS_PYPI_TOKEN)")
    who.add_argument(
        "--trusted-publishing",
        action="store_true",
        help="exchange the CI job's OIDC token for a token (GitHub Actions, or "
        "$SERVERLESS_PYPI_OIDC_TOKEN)",
    )
    upload.add_argument(
        "--stage",
        action="store_true",
        help="upload and verify, but do not publish: print the stage URL to install from",
    )
    upload.add_argument("--jobs", type=int, default=4, help="parts sent in parallel (default 4)")
    upload.add_argument(
        "--no-attestations",
        action="store_true",
        help="do not send the <file>.*.attestation files beside each file (PEP 740; sent by "
        "default, before the file is completed)",
    )
    upload.add_argument(
        "--legacy-url",
        metavar="URL",
        help="where the legacy upload API is, for an index without sessions (default: --index)",
    )
    upload.add_argument("files", nargs="+", metavar="FILE", help="wheels and sdists")
    upload.set_defaults(func=cmd_upload)
