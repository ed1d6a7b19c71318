"""`python -m searchr1_lite ...`: the `searchr1-lite` command, for a Python whose scripts folder is not on PATH."""

import os

from .cli import run

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
run()
