"""The stage of an Upload 2.0 session (PEP 694 "stage previews"): the index as it would be
once the session is published.

`StageRepository` wraps the whole stack (policies included) for one open session: the
session's project page lists the files the index serves now plus the session's complete
staged files, each linked below the stage URL and served from its staged object; every other
question (other projects, the project list, their files and metadata) passes through
untouched. So `pip install --index-url <stage>` and `--extra-index-url <stage>` both work,
while the public pages never list a staged file. Staged files are previews: the policy's
cooldown and upload cutoff, which apply to published files, do not hide them.
"""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from serverless_pypi.core.errors import NoSuchFile, NoSuchProject
from serverless_pypi.core.http import IfNoneMatch, compress, make_etag
from serverless_pypi.core.model import FileRecord, Manifest, format_upload_time
from serverless_pypi.core.names import NormalizedName, parse_distribution_filename
from serverless_pypi.core.render import API_VERSION, project_page, render_html, render_json
from serverless_pypi.repository.base import (
    CoreMetadata,
    Download,
    ProjectList,
    ProjectPage,
    ProvenanceObject,
    Redirect,
    Repository,
    RepositoryWrapper,
    StoredPage,
)
from serverless_pypi.storage.base import NotFound, Store

if TYPE_CHECKING:
    from serverless_pypi.index.sessions import StagedFile, UploadSession

__all__ = ["StageRepository"]


def _no_redirect(method: str) -> Redirect | None:
    return None  # rendered here: no store object holds this page


def _upload_time(staged: StagedFile) -> str:
    """PEP 700 `upload-time` of a staged file: when its upload was completed."""
    moment = datetime.now(UTC)
    if staged.completed:
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(staged.completed.replace("Z", "+00:00"))
    return format_upload_time(moment)


def _order(entry: dict[str, Any]) -> tuple[int, Version, str]:
    """The order pages list files in (`Manifest.sorted_files`): by version, then name."""
    try:
        return (1, parse_distribution_filename(entry["filename"]).version, entry["filename"])
    except (ValueError, InvalidVersion):
        return (0, Version("0"), entry["filename"])


class StageRepository(RepositoryWrapper):
    """`inner` with the complete staged files of `session` on its project's page.

    `staged_key(filename)` is where a staged file's bytes are, `metadata_key(filename)` its
    core metadata; `url_ttl` the lifetime of the store's download URLs (presigned S3 URLs),
    seconds.
    """

    def __init__(
        self,
        inner: Repository,
        session: UploadSession,
        store: Store,
        staged_key: Callable[[str], str],
        metadata_key: Callable[[str], str],
        *,
        url_ttl: int = 900,
    ) -> None:
        super().__init__(inner)
        self.session = session
        self.store = store
        self.staged_key = staged_key
        self.metadata_key = metadata_key
        self.url_ttl = url_ttl
        self.staged = {n: f for n, f in session.files.items() if f.status == "complete"}

    def _staged_file(self, name: NormalizedName, filename: str) -> StagedFile | None:
        return self.staged.get(filename) if name == self.session.name else None

    def owns(self, name: NormalizedName) -> bool:
        return name == self.session.name or self.inner.owns(name)

    def project_list(self) -> ProjectList:
        listed = self.inner.project_list()
        if not self.staged or self.session.name in listed.names:
            return listed
        return ProjectList(listed.names | {self.session.name}, listed.last_modified)

    def project_page(
        self, name: NormalizedName, *, json: bool, if_none_match: IfNoneMatch | None
    ) -> ProjectPage:
        if name != self.session.name or not self.staged:
            return self.inner.project_page(name, json=json, if_none_match=if_none_match)
        page = self._merged(self._published(name))
        body = render_json(page) if json else render_html(page)
        # a strong tag of the identity bytes; the web layer compares the client's tags
        return StoredPage(compress(body), make_etag(body), _no_redirect)

    def _published(self, name: NormalizedName) -> dict[str, Any]:
        """The project's page as the index serves it now (PEP 691 dict), possibly empty."""
        empty: dict[str, Any] = {
            "meta": {"api-version": API_VERSION},
            "name": name,
            "versions": [],
            "files": [],
        }
        try:
            found = self.inner.project_page(name, json=True, if_none_match=None)
        except NoSuchProject:
            return empty  # the session's release is the project's first
        if isinstance(found, StoredPage):
            page: dict[str, Any] = json.loads(gzip.decompress(found.data))
            return page
        if isinstance(found, Manifest):
            return project_page(found)
        return empty  # a redirect elsewhere (an upstream): not a page of this index

    def _merged(self, page: dict[str, Any]) -> dict[str, Any]:
        records = {
            filename: FileRecord(
                filename=filename,
                key=self.staged_key(filename),
                size=staged.size,
                upload_time=_upload_time(staged),
                sha256=staged.hashes.get("sha256"),
                requires_python=staged.requires_python,
                metadata_sha256=staged.metadata_sha256,
            )
            for filename, staged in self.staged.items()
        }
        entries = project_page(Manifest(self.session.name, records))["files"]
        published = [f for f in page["files"] if f["filename"] not in records]
        files = sorted([*published, *entries], key=_order)
        versions = {Version(v) for v in page.get("versions", [])}
        versions.add(Version(self.session.version))
        return {**page, "versions": [str(v) for v in sorted(versions)], "files": files}

    def locate(self, name: NormalizedName, filename: str, method: str) -> Download:
        if self._staged_file(name, filename) is None:
            return self.inner.locate(name, filename, method)
        try:
            return self.store.deliver(self.staged_key(filename), method, self.url_ttl)
        except NotFound:
            raise NoSuchFile(f"No file {filename!r} in this stage.") from None

    def metadata(self, name: NormalizedName, filename: str) -> CoreMetadata:
        staged = self._staged_file(name, filename)
        if staged is None:
            return self.inner.metadata(name, filename)
        if staged.metadata_sha256 is None:
            raise NoSuchFile(f"No core metadata for {filename!r} in this stage.")
        try:
            blob = self.store.get(self.metadata_key(filename))
        except NotFound:
            raise NoSuchFile(f"No core metadata for {filename!r} in this stage.") from None
        return CoreMetadata(blob.data, blob.etag, blob.last_modified)

    def provenance(self, name: NormalizedName, filename: str) -> ProvenanceObject:
        if self._staged_file(name, filename) is not None:
            raise NoSuchFile(f"No provenance (PEP 740) for the staged file {filename!r}.")
        return self.inner.provenance(name, filename)
