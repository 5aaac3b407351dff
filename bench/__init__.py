"""Benchmarks behind every speed claim: `make bench` writes docs/benchmarks.md and its plots."""
