"""The README's shell examples and docs/guide.md's, typed as a newcomer would: every line of their ```bash blocks is
accounted for.

Each line is run here in a shell that has sourced .venv/bin/activate, in README order, in the folder where the quick
demo ran (tests/conftest.py runs that line, shared with tests/test_demo.py), with the changes to small settings
listed in SMALL; or it is parsed only, because it needs the hub or a GPU (its options and config must still exist);
or NOT_RUN says why not. A new README line that fits none of these fails the test.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import readme_shell_lines

from searchr1_lite.cli import build_parser

NOT_RUN = {
    "make demo": "the 30-minute demo: phase 1 is the quick demo's code (the conftest fixture), phase 2 runs under "
                 "a tiny budget in tests/test_demo.py",
    "make test": "this suite",
    "make lab": "an interactive JupyterLab server",
    "source .venv/bin/activate": "every line below runs after it (the shell's first command)",
    "searchr1-lite demo --quick": "run as written by the quick_demo fixture (tests/conftest.py)",
}
NEEDS_HUB_OR_GPU = re.compile(r"(^|\s)(Qwen/|qwen2\.5-|runs/qwen)")  # hub models, the GPU configs and their runs


def small(line: str, port: int) -> str:
    """The line with small settings: few questions and steps, its own index folder and a free port."""
    for pattern, repl in [(r"/tmp/idx", "idx"), (r"--limit \d+", "--limit 2"), (r"max_steps=\d+", "max_steps=1"),
                          (r"\b8000\b", str(port)), (r"runs/demo/train", "runs/demo-quick/train"),
                          (r"runs/a runs/b", "runs/demo-quick/train runs/smollm2-cpu")]:
        line = re.sub(pattern, repl, line)
    return line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, server: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"serve did not listen on {port} (exit code {server.poll()})")


@pytest.mark.slow
def test_readme_shell_examples_run_as_typed(quick_demo):
    cwd, port = quick_demo.parents[1], _free_port()
    activate = Path(sys.prefix) / "bin" / "activate"  # .venv/bin/activate, wherever the checkout is
    shell = lambda line: ["bash", "-c", f"source {activate} && {line}"]  # noqa: E731
    outputs, servers = {}, []
    try:
        for line, argv in readme_shell_lines():
            command = " ".join(argv[:3])
            if any(line.startswith(key) for key in NOT_RUN):
                continue
            assert argv[0] == "searchr1-lite", f"README line neither run nor excused (NOT_RUN): {line}"
            if NEEDS_HUB_OR_GPU.search(line):
                args = build_parser().parse_args(argv[1:])  # the options exist; SystemExit(2) if not
                if args.command == "train":
                    from searchr1_lite.config import TrainConfig

                    TrainConfig.load(args.config, args.set)
                continue
            typed = small(line, port)  # the comment too: bash drops it
            if argv[1] == "serve":
                servers.append(subprocess.Popen(shell(typed), cwd=cwd, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.PIPE, start_new_session=True))
                _wait_for(port, servers[-1])
                continue
            done = subprocess.run(shell(typed), cwd=cwd, capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, f"{typed}\n{done.stderr[-3000:]}"
            outputs.setdefault(command, []).append(done.stdout)
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
    # what the README says each of them shows
    for said in outputs["searchr1-lite search --index"] + outputs["searchr1-lite search --url"]:
        first_hit = next(line for line in said.splitlines() if line.strip().startswith("1."))
        assert "Mona Lisa" in first_hit, said  # "the Mona Lisa passage comes first"
    rollout = outputs["searchr1-lite rollout --model"][0]  # worked example, plain text, greedy: the model searches
    assert "<search>" in rollout and '<information>Doc 1(Title: "Mona Lisa")' in rollout
    sampled = outputs["searchr1-lite rollout --run"][0]  # the quick demo's phase 1, 16 samples, one line each
    assert sampled.splitlines()[15].startswith("16/16: searches")
    assert "right: " in sampled and "GRPO group of" in sampled
    assert (cwd / "runs" / "smollm2-cpu" / "adapter").is_dir() and (cwd / "dynamics.png").is_file()
    assert "usage: searchr1-lite" in outputs["searchr1-lite --help"][0]
