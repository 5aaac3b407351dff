"""`Change`: what a change of a shared document computed, and whether to write it.

The writers of documents (`Catalog.update_project` for a manifest, `TokenDocument.update` for
the token list) take a function that edits the document in place and returns a `Change`;
the update returns its `result`. Kept apart from the catalog so that the token list, which
the server reads on every locked request, does not import the renderers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Change"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Change(Generic[T]):
    """What a change of a document computed on one attempt (see `Catalog.update_project`).

    `result` is what the update returns to its caller; `write` says whether the document,
    as the change edited it, is to be written (False: there was nothing to change).
    """

    result: T
    write: bool = True
