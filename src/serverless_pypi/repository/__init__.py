"""What the web layer serves, behind one small interface (`base.Repository`).

`store.StoreRepository` serves the index's own store; each feature is a wrapper around another
repository (`fallback.FallbackRepository` first), and `serverless_pypi.compose` stacks them.
"""
