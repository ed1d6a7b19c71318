"""`make gpu-check` (benchmarks/gpu_check.py): its no-GPU exit, its CPU smoke run end to end, its T4 arithmetic."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from searchr1_lite import tiers

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _module():
    """The script as a module (benchmarks/ is no package); registered first, as its dataclass needs."""
    if "gpu_check" not in sys.modules:
        spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
        sys.modules["gpu_check"] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules["gpu_check"]


def _run(*args: str) -> subprocess.CompletedProcess:
    """The real command, with CUDA hidden and the network off, as `make gpu-check` runs it."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)


def test_without_a_gpu_it_says_so_and_exits_0(tmp_path):
    out = tmp_path / "gpu.json"
    proc = _run("--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no GPU" in proc.stdout
    assert not out.exists()  # nothing measured, nothing written


@pytest.mark.slow
def test_cpu_smoke_run_writes_every_phase_and_figure(tmp_path):
    out = tmp_path / "gpu.json"
    proc = _run("--cpu-smoke", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    phases = result["phases"]
    assert list(phases) == ["build", "load", "rollout", "update", "train"]
    for name, row in phases.items():
        assert row["seconds"] > 0, name
        assert {"peak_allocated_gb", "peak_reserved_gb", "peak_rss_gb"} <= set(row), name
    ro, up, tr = phases["rollout"], phases["update"], phases["train"]
    assert ro["trajectories"] == 4 and ro["decode_steps"] > 0 and ro["seconds_per_decode_step"] > 0
    assert up["tokens"] > 0 and up["tokens_per_s"] > 0 and up["skipped"] == 0
    assert tr["steps"] == 2 and tr["adapter_saved"]
    f = result["figures"]
    assert f["decode_step_s"]["measured"] == ro["seconds_per_decode_step"]
    assert f["update_tokens_per_s"]["measured"] == up["tokens_per_s"]
    assert f["peak_memory_gb"]["estimate"] > 0 and f["lesson04_time_min"]["estimate"] > 0
    assert result["assumptions"]["T4_DECODE_STEP_S"] > 0 and result["smoke"] is True
    md = out.with_suffix(".md").read_text()
    assert "not a GPU figure" in md and all(f"| {p} |" in md for p in phases)
    assert "decode step:" in proc.stdout and "update:" in proc.stdout


def _fake_result(module, speed):
    """A result as check() assembles it, with round numbers, for the conversion arithmetic."""
    phases = {p: {"seconds": 1.0, "peak_allocated_gb": 5.0, "peak_reserved_gb": 6.0, "peak_rss_gb": 1.0}
              for p in module.PHASES}
    phases["rollout"].update(trajectories=16, decode_steps=480, generate_seconds=24.0, seconds_per_decode_step=0.05)
    phases["update"].update(tokens=15_000, update_seconds=5.0, tokens_per_s=3000.0)
    phases["update"]["peak_allocated_gb"] = 9.0
    return {"phases": phases, "device_speed": speed, "model": {"params": 3.09e9}}


def test_figures_convert_to_a_t4_by_the_estimates_ratios():
    gc = _module()
    result = _fake_result(gc, {"bandwidth_gbs": 4800, "fp16_tflops": 990})
    f = gc.figures(result)
    # the host's part stays, the memory part moves to the T4's bandwidth
    assert f["decode_step_s"]["t4_equivalent"] == pytest.approx(0.05 - tiers.DECODE_GB / 4800 + tiers.DECODE_GB / 320)
    assert f["update_tokens_per_s"]["t4_equivalent"] == pytest.approx(3000 * 65 / 990)
    assert f["update_tokens_per_s"]["effective_efficiency"] == pytest.approx(3000 * 8 * 3.09e9 / 990e12)
    assert f["peak_memory_gb"]["measured_allocated"] == 9.0 and f["peak_memory_gb"]["measured_reserved"] == 6.0
    assert f["lesson04_time_min"]["projected_from_measured"] > 0
    unknown = gc.figures(_fake_result(gc, None))  # a device without known speeds: measured, not converted
    assert unknown["decode_step_s"]["t4_equivalent"] is None
    assert unknown["lesson04_time_min"]["projected_from_measured"] is None


def test_decode_steps_are_each_turns_longest_row():
    gc = _module()
    turn = lambda n: SimpleNamespace(generated=n)  # noqa: E731
    ts = [SimpleNamespace(turns=[turn(5), turn(3)]), SimpleNamespace(turns=[turn(7)])]
    assert gc.decode_steps(ts) == 7 + 3


def test_render_fills_the_docs_section_and_docs_carry_the_device_command(tmp_path):
    gc = _module()
    doc = tmp_path / "gpu.md"
    docs = (ROOT / "docs" / "gpu.md").read_text()
    assert "No GPU figure has been measured yet" in docs or "Measured on **" in docs
    command = next(line.strip() for line in gc.__doc__.splitlines() if "pip install" in line)
    assert command in docs  # the script's docstring and the docs give the same device command
    doc.write_text(docs)
    result = _fake_result(gc, {"bandwidth_gbs": 4800, "fp16_tflops": 990})
    result.update(device="NVIDIA H200, 139.8 GB", smoke=False, compute_dtype="float16", torch="2.x", date="today",
                  settings={"config": "c", "tier_overrides": [], "prompts_per_step": 4, "group_size": 4,
                            "max_turns": 2, "max_new_tokens": 160, "micro_batch_size": 4, "data": "world"},
                  figures=gc.figures(result), total_seconds=5.0)
    gc.write(result, None, doc)
    text = doc.read_text()
    assert "No GPU figure has been measured yet" not in text and "Measured on **NVIDIA H200" in text
    assert "0.0634 s (host part kept, 4.6 GB at 320, not 4800, GB/s)" in text  # 0.05 s on the H200, as a T4
    assert text.count(gc.DOC_BEGIN) == 1 and text.endswith(gc.DOC_END + "\n")
