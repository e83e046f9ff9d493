"""`python -m bench.crosscheck ...`, the same as `bench crosscheck ...`."""

import sys

from bench.crosscheck.cli import main

sys.exit(main())
