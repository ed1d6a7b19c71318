"""Run one benchmark variant in a fresh process, so that its peak memory is its own; it prints JSON last."""

from __future__ import annotations

import json
import subprocess
import sys


def run_child(script: str, variant: str, argv: list[str]) -> dict:
    cmd = [sys.executable, script, "--child", variant, *argv]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def forward_args(args, skip: str = "child") -> list[str]:
    """argparse values back into `--key=value` arguments for the child."""
    return [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k != skip]
