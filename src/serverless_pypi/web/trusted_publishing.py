"""Trusted publishing's minting side: OIDC tokens exchanged for short upload or read tokens.

`serverless_pypi.web.oidc` answers the routes (`/_/oidc/*`, PEP 807 discovery); this is the
`Exchange` it calls. It is built at the first mint (see `serverless_pypi.compose`), so joserfc
and the verifier are imported then and never on reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from serverless_pypi.storage.base import Store
from serverless_pypi.web.oidc import Minted

if TYPE_CHECKING:
    from serverless_pypi.auth.oidc import OidcVerifier

__all__ = ["TrustedPublishing"]


class TrustedPublishing:
    """The minting side of trusted publishing over `store` (`web.oidc.Exchange`): built at
    the first mint, so joserfc and the verifier are imported then and never on reads.

    One verifier (and its cache of the issuers' keys) per audience: OIDC_AUDIENCE, else
    each host name the index is asked under (a few at most; the oldest is dropped past 16).
    `fetch` reads the issuers' discovery documents and keys (default: https, bounded).
    """

    MAX_AUDIENCES = 16

    def __init__(
        self,
        store: Store,
        fetch: Callable[[str], bytes] | None = None,
        minted: Callable[[], None] = lambda: None,
        *,
        read_lifetime: timedelta = timedelta(minutes=15),
    ) -> None:
        from serverless_pypi.auth.oidc import https_fetch
        from serverless_pypi.auth.publishers import PublisherStore
        from serverless_pypi.auth.tokens import TokenStore

        self.store = store
        self.fetch = fetch or https_fetch()
        self.publishers = PublisherStore(store)
        self.tokens = TokenStore(store)
        #: called after a mint: the process's token cache reads the list again, so the
        #: upload that follows at once is not refused for a token it has not seen yet
        self.minted = minted
        #: how long a read token minted for a read publisher lives (OIDC_READ_TOKEN_TTL)
        self.read_lifetime = read_lifetime
        self._verifiers: dict[str, OidcVerifier] = {}
        self._lock = threading.Lock()

    def _verifier(self, audience: str) -> OidcVerifier:
        from serverless_pypi.auth.oidc import OidcVerifier

        with self._lock:
            verifier = self._verifiers.get(audience)
            if verifier is None:
                if len(self._verifiers) >= self.MAX_AUDIENCES:
                    self._verifiers.pop(next(iter(self._verifiers)))
                verifier = self._verifiers[audience] = OidcVerifier(self.fetch, audience=audience)
            return verifier

    def mint(self, jwt: str, audience: str) -> Minted:
        from serverless_pypi.auth.oidc import OidcRefused, OidcUnavailable, mint
        from serverless_pypi.core.errors import DomainError
        from serverless_pypi.web.oidc import TokenRefused

        try:
            token, expires, _ = mint(
                self._verifier(audience),
                self.publishers,
                self.tokens,
                self.store,
                jwt,
                read_lifetime=self.read_lifetime,
            )
        except OidcUnavailable as e:
            # the issuer did not answer: not the CI job's fault, worth a retry
            raise TokenRefused(e.code, e.message, status=503) from None
        except OidcRefused as e:
            raise TokenRefused(e.code, e.message) from None
        except (DomainError, ValueError) as e:
            # a stored publisher or token list that does not parse, a pattern refused
            message = e.message if isinstance(e, DomainError) else str(e)
            raise TokenRefused("invalid-publisher", message) from None
        self.minted()
        return Minted(token, expires)

    def burn(self, token: str) -> None:
        """Revoke `token` if it is a minted one (uv posts it after publishing). A token of
        the CLI's is left alone, and an id alone revokes nothing: only the whole token,
        checked against its hash, names what to revoke."""
        from serverless_pypi.auth.tokens import verify

        records, _ = self.tokens.read()
        record = verify(records, token)
        if record is not None and record.publisher is not None:
            self.tokens.revoke([record.id])
