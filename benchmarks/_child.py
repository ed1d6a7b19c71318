"""What the benchmarks share: one variant run in a fresh process (so that its peak memory is its own; it prints JSON
last), and one way to report a result (the JSON, the file it is kept in, one summary line)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run_child(script: str, variant: str, argv: list[str]) -> dict:
    cmd = [sys.executable, script, "--child", variant, *argv]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def forward_args(args, skip: tuple[str, ...] = ("child", "json")) -> list[str]:
    """argparse values back into `--key=value` arguments for the child (the parent alone writes the JSON)."""
    return [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in skip]


def report(result: dict, path: str | None, summary: str) -> None:
    """Print the result, keep it at `path` (if given: `make bench` keeps each in benchmarks/results/), then the one
    summary line, last, so that a log's tail says what was measured."""
    text = json.dumps(result, indent=2) + "\n"
    print(text, end="")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    print(f"SUMMARY {summary}", flush=True)
