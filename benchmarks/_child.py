"""What the benchmarks share: one variant run in a fresh process (so that its peak memory is its own; it prints JSON
last), a retrieval service in a process of its own, and one way to report a result (the JSON, the file it is kept
in, one summary line)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_child(script: str, variant: str, argv: list[str]) -> dict:
    cmd = [sys.executable, script, "--child", variant, *argv]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def forward_args(args, skip: tuple[str, ...] = ("child", "json")) -> list[str]:
    """argparse values back into `--key=value` arguments for the child (the parent alone writes the JSON)."""
    return [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in skip]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(argv: list[str], port: int, timeout: float = 120.0) -> subprocess.Popen:
    """`python argv... --port PORT` in a process of its own (as deployed: client and server share no GIL), returned
    once its /health answers. One that exits first is said at once, with its exit code and the end of its stderr."""
    import httpx

    # a file, not a pipe: nobody reads it while the service runs (closing ours leaves the child its own handle)
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([sys.executable, *argv, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {log.read()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return proc
            except httpx.HTTPError:
                time.sleep(0.1)
        stop_service(proc)
    raise RuntimeError(f"{' '.join(argv)} did not answer in {timeout:.0f} s")


def stop_service(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def report(result: dict, path: str | None, summary: str) -> None:
    """Print the result, keep it at `path` (if given: `make bench` keeps each in benchmarks/results/), then the one
    summary line, last, so that a log's tail says what was measured."""
    text = json.dumps(result, indent=2) + "\n"
    print(text, end="")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    print(f"SUMMARY {summary}", flush=True)
