"""`python -m serverless_pypi`: the command line."""

import sys

from serverless_pypi.adapters.cli import main

sys.exit(main())
