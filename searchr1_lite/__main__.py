"""`python -m searchr1_lite ...`: the `searchr1-lite` command, for a Python whose scripts folder is not on PATH."""

from .cli import run

run()
