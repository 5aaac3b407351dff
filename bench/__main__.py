"""`python -m bench`: run the benchmarks and write docs/benchmarks.md (see bench/run.py)."""

import sys

from .run import main

sys.exit(main())
