"""The index's derived data, and the only code that knows where it lives (`layout`).

`catalog` writes it (compare-and-swap, renderings that converge to their manifest), `reader`
reads it for serving; `publish`, `indexer` and `curation` change it only through the catalog.
"""
