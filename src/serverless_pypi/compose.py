"""The composition root: the one place the application is assembled, for every front.

The repository stack, read top to bottom (each layer wraps the one below it, and a
deployment without a feature simply has one layer fewer). On top of every stack, the
policies (the store's policy document, revalidated every POLICY_TTL seconds):

    PolicyRepository     cooldown, uploaded-before, revocations, project statuses (PEP 792):
      |                  pages filtered and files refused; upstream names refused by the
      |                  allow / deny lists and namespaces (PEP 752); a project no rule
      |                  touches passes through untouched (the private fast path)
      ...                one of the stacks below

Without an upstream, the store alone; in `redirect` mode (UPSTREAM_MODE, or
FALLBACK_INDEX_URL):

    FallbackRepository   unknown, non-private projects redirected to the upstream
      StoreRepository    the index's own store: precomputed pages, manifests, metadata

In `proxy` and `mirror` modes (UPSTREAM_INDEX_URL), two sources side by side, never mixed:

    PrivateFirstRepository   the store's own projects and PRIVATE_PROJECTS names from the
      |                      store only; every other name from the upstream
      StoreRepository        the index's own store, as above
      UpstreamRepository     the upstream's pages, cached in the store (UpstreamCache) and
                             revalidated after UPSTREAM_TTL; downloads redirected to the
                             upstream (proxy) or served from verified copies a `Puller`
                             makes in the store (mirror)

Around it, the application: the access check on reads (REQUIRE_AUTH_FOR_READ), the upload
handler, the Upload 2.0 session API and its stages (`web.sessions`, `repository.stage`: a
stage wraps the whole stack above for one session) and trusted publishing at the host root
(`web.oidc`: the OIDC verifier and joserfc).
Each is built at its first use, so an open index answers reads without importing tokens, the
upload stack (multipart), packaging or a JOSE library: the Lambda cold start stays small.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from serverless_pypi.core.config import Settings
from serverless_pypi.core.http import Request, Response
from serverless_pypi.repository.base import Repository
from serverless_pypi.repository.fallback import FallbackRepository
from serverless_pypi.repository.private_first import PrivateFirstRepository
from serverless_pypi.repository.store import StoreRepository
from serverless_pypi.storage.base import Store
from serverless_pypi.web.app import Application, SessionHandler, StageLookup
from serverless_pypi.web.oidc import OidcRoutes
from serverless_pypi.web.paths import is_upload_route

if TYPE_CHECKING:
    from serverless_pypi.auth.access import AccessControl
    from serverless_pypi.core.names import NormalizedName
    from serverless_pypi.index.sessions import Sessions
    from serverless_pypi.repository.policy import PolicyRepository
    from serverless_pypi.repository.upstream import Puller
    from serverless_pypi.upstream.client import UpstreamClient
    from serverless_pypi.web.sessions import SessionRoutes
    from serverless_pypi.web.trusted_publishing import TrustedPublishing
    from serverless_pypi.web.upload import UploadHandler

__all__ = ["build_application", "build_repository", "upstream_client"]


def build_repository(
    store: Store,
    settings: Settings | None = None,
    *,
    puller: Puller | None = None,
    background_pulls: bool = True,
) -> Repository:
    """The repository stack the settings ask for, over `store`.

    `puller` copies upstream files into the store in mirror mode (the Lambda front passes
    its queue); None there means a `BackgroundPuller` (the local server's thread pool), or,
    with `background_pulls=False` (a front that freezes between requests), nobody: the
    copies the store holds are served, and no new ones are made.
    """
    settings = settings or Settings()
    return _policies(store, settings, _sources(store, settings, puller, background_pulls))


def _sources(
    store: Store, settings: Settings, puller: Puller | None, background_pulls: bool
) -> Repository:
    """The stack below the policies: the store, and the upstream as the settings ask."""
    repository: Repository = StoreRepository(store, url_ttl=settings.presigned_url_ttl)
    if settings.upstream_index_url is None:
        return repository
    if settings.upstream_mode == "redirect":
        return FallbackRepository(
            repository,
            settings.fallback_index_url or settings.upstream_index_url,
            settings.private_projects,
        )
    return PrivateFirstRepository(
        repository,
        _upstream(store, settings, puller, background_pulls=background_pulls),
        settings.private_projects,
    )


def _policies(store: Store, settings: Settings, sources: Repository) -> PolicyRepository:
    """The policy layer on top, always: without a policy document it costs one read that
    misses every POLICY_TTL seconds, and every question passes through. Imported at the first
    request, not with the Lambda module (the cold start)."""
    from serverless_pypi.index.policies import PolicyReader
    from serverless_pypi.repository.policy import PolicyRepository

    return PolicyRepository(sources, PolicyReader(store, ttl=settings.policy_ttl).current)


def upstream_client(settings: Settings) -> UpstreamClient:
    """The client of the upstream index the settings name (proxy and mirror modes)."""
    from serverless_pypi.upstream.client import UpstreamClient

    if settings.upstream_index_url is None:
        raise ValueError("no upstream index is configured (UPSTREAM_INDEX_URL)")
    return UpstreamClient(
        settings.upstream_index_url,
        username=settings.upstream_username,
        password=settings.upstream_password,
        timeout=settings.upstream_timeout,
    )


def _upstream(
    store: Store, settings: Settings, puller: Puller | None, *, background_pulls: bool
) -> Repository:
    """The upstream of proxy and mirror modes (imported only when one is configured)."""
    from serverless_pypi.index.upstream_cache import UpstreamCache
    from serverless_pypi.repository.upstream import UpstreamRepository

    client = upstream_client(settings)
    cache = UpstreamCache(store)
    if settings.upstream_mode == "mirror" and puller is None and background_pulls:
        from serverless_pypi.index.pull import BackgroundPuller

        puller = BackgroundPuller(cache, client)
    return UpstreamRepository(
        client,
        cache,
        mode=settings.upstream_mode,
        ttl=settings.upstream_ttl,
        url_ttl=settings.presigned_url_ttl,
        puller=puller if settings.upstream_mode == "mirror" else None,
    )


def build_application(
    store: Store,
    settings: Settings | None = None,
    *,
    uploads: bool = True,
    max_inline_body: int | None = None,
    max_upload_size: int | None = None,
    too_large_hint: str = "",
    puller: Puller | None = None,
    background_pulls: bool = True,
    oidc_fetch: Callable[[str], bytes] | None = None,
) -> Application:
    """The application over `store`, as every front serves it.

    The front's own limits are parameters: `max_inline_body` (the largest body it carries:
    larger pages are redirected to the store), `max_upload_size` (the largest upload it can
    carry, below MAX_UPLOAD_SIZE) and `too_large_hint` (what to do instead, appended to the
    413). `uploads=False` serves reads only. `puller` and
    `background_pulls`: see `build_repository`. `oidc_fetch`: how the OIDC issuers'
    documents are read (`TrustedPublishing`).
    """
    settings = settings or Settings()
    if max_inline_body is not None:
        settings = dataclasses.replace(settings, max_inline_body=max_inline_body)
    upload_limit = min(settings.max_upload_size, max_upload_size or settings.max_upload_size)
    # one policy reader for pages, downloads, uploads and the PEP 752 data: one conditional
    # read of the policy document per POLICY_TTL
    repository = _policies(store, settings, _sources(store, settings, puller, background_pulls))

    @functools.cache
    def access() -> AccessControl:
        # tokens are needed by uploads and by a locked index only: an open index reads
        # without importing them
        from serverless_pypi.auth.access import AccessControl
        from serverless_pypi.auth.tokens import TokenCache

        return AccessControl(TokenCache(store), settings)

    @functools.cache
    def uploader() -> UploadHandler:
        # built at the first upload: reads, the common case, never import the upload stack
        from serverless_pypi.index.catalog import Catalog
        from serverless_pypi.web.upload import UploadHandler

        return UploadHandler(
            Catalog(store),
            settings,
            access().check_upload,
            max_file_size=upload_limit,
            too_large_hint=too_large_hint,
            # the policy in force, as the pages see it: statuses and namespaces (PEP 792, 752)
            policies=repository.policies,
            claim_namespace=access().check_namespace,
            attest=attest,
        )

    def attest(
        request: Request, project: NormalizedName, filename: str, sha256: str, items: list[Any]
    ) -> bytes:
        # PEP 740: pypi-attestations and sigstore are imported by an upload that carries
        # attestations, never before
        from serverless_pypi.auth.attestations import AttestationCheck
        from serverless_pypi.auth.publishers import PublisherStore

        check = AttestationCheck(PublisherStore(store).list, access().minted_by)
        return check(request, project, filename, sha256, items)

    def upload(request: Request) -> Response:
        return uploader()(request)

    @functools.cache
    def trusted_publishing() -> TrustedPublishing:
        # built at the first mint or burn: joserfc is imported then, never on reads
        from serverless_pypi.web.trusted_publishing import TrustedPublishing

        return TrustedPublishing(
            store,
            oidc_fetch,
            minted=access().tokens.reload,
            read_lifetime=timedelta(seconds=settings.oidc_read_token_ttl),
        )

    # PEP 807 and PyPI's token exchange, at the host root; minting only where uploads are
    host_root = OidcRoutes(
        audience=settings.oidc_audience,
        exchange=trusted_publishing if uploads else None,
        upload_paths=is_upload_route,
    )

    # PEP 694 Upload 2.0: the session API and the stages, wherever uploads are
    sessions, stage = _upload_sessions(
        store, settings, repository, access, max_upload_size, attest=attest
    )
    return Application(
        repository,
        settings,
        upload=upload if uploads else None,
        access=access() if settings.require_auth_for_read else None,
        policies=repository.policies,
        host_root=host_root,
        sessions=sessions if uploads else None,
        stage=stage if uploads else None,
    )


def _upload_sessions(
    store: Store,
    settings: Settings,
    repository: PolicyRepository,
    access: Callable[[], AccessControl],
    front_limit: int | None,
    *,
    attest: Callable[[Request, NormalizedName, str, str, list[Any]], bytes],
) -> tuple[SessionHandler, StageLookup]:
    """The Upload 2.0 session API (`web.sessions`) and the stage of a session token
    (`repository.stage`), over `store`. Built at their first use: reads never import them.
    `front_limit`: the largest body the front carries (http-post-bytes through Lambda);
    `attest` verifies PEP 740 attestations (each mechanism's `attestations_url`)."""

    @functools.cache
    def sessions() -> Sessions:
        from serverless_pypi.index.sessions import Sessions

        return Sessions(
            store,
            ttl=settings.upload_session_ttl,
            max_file_size=settings.upload_session_max_file_size,
        )

    @functools.cache
    def routes() -> SessionRoutes:
        from serverless_pypi.web.sessions import SessionRoutes

        return SessionRoutes(
            sessions,
            access().check_upload,
            max_file_size=settings.upload_session_max_file_size,
            front_limit=front_limit,
            policies=repository.policies,
            claim_namespace=access().check_namespace,
            attest=attest,
        )

    def api(request: Request, segments: list[str]) -> Response:
        return routes()(request, segments)

    def stage(token: str) -> Repository:
        from serverless_pypi.repository.stage import StageRepository

        session = sessions().by_token(token)
        return StageRepository(
            repository,
            session,
            store,
            functools.partial(sessions().staged_key, session.id),
            functools.partial(sessions().staged_metadata_key, session.id),
            url_ttl=settings.presigned_url_ttl,
        )

    return api, stage
