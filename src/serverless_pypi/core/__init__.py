"""The pure core: names, the page model, rendering, content negotiation, HTTP values.

Nothing in this package performs I/O or imports boto3 or a server library.
"""
