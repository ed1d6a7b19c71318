"""`make bench`'s scripts still run against today's package: each one's measured child at its smallest size.

A benchmark is run by hand, rarely: bench_step_vs_trl.py stopped at its config once the config refused
`eval_size: 0` (1000db5), and nothing said so until `make bench` ran a day later. These run the same children
in-process, on the tiny random Qwen2, for what they return, not for their speed."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))  # their shared `_child` helper
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["ours", "trl"])
def test_one_training_step_against_trl_runs_at_its_smallest(variant, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    bench = _bench("bench_step_vs_trl")
    args = argparse.Namespace(model="tiny-qwen2", prompts=1, group=2, turns=1, tokens=8, micro_batch=2)
    out = bench.run_ours(args) if variant == "ours" else bench.run_trl(args)
    assert out["variant"] == variant and out["step_seconds"] > 0 and out["peak_memory_mb"] > 0


@pytest.mark.parametrize("impl", ["chunked", "naive"])
def test_one_grpo_step_runs_at_its_smallest(impl):
    out = _bench("bench_grpo").child(impl, batch=2, seq=16, repeats=1)
    assert out["impl"] == impl and out["seconds"] > 0 and out["tokens"] > 0 and out["loss"] == out["loss"]  # not NaN


def test_a_benchmark_keeps_what_it_prints_and_ends_with_its_summary(tmp_path, capsys):
    report = _bench("_child").report
    result = {"engine": {"tokens_per_s": 45.2}, "goal_met": False}
    kept = tmp_path / "results" / "rollout.json"  # its folder is made
    report(result, str(kept), "engine 45 tok/s")
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == "SUMMARY engine 45 tok/s"
    assert json.loads("\n".join(printed[:-1])) == result == json.loads(kept.read_text())


def test_the_services_own_cost_is_timed_with_the_wait_taken_off():
    from searchr1_lite.corpus import Passage

    canned = [[Passage("7", '"Drothen"\nA city.', 1.5)]]
    ms = _bench("bench_retrieval").transport_ms(canned, ["where is Drothen?"], repeats=1, wait_ms=30)
    assert 0 < ms < 30  # a served request (the client checks its one row) costs something, and less than the sleep


def test_a_service_that_dies_at_start_is_said_with_its_error_not_waited_for():
    start_service = _bench("_child").start_service
    with pytest.raises(RuntimeError, match=r"exited 3: .*no index at /nowhere"):
        start_service(["-c", "import sys; sys.stderr.write('no index at /nowhere'); sys.exit(3)"], port=9)


@pytest.mark.parametrize("name", re.search(r"^BENCHES := (.+)$", (ROOT / "Makefile").read_text(), re.M)[1].split())
def test_every_benchmark_make_bench_runs_takes_json(name):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--json" in out
