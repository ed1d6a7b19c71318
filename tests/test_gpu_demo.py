"""benchmarks/gpu_demo.py: the demo's recipe on a GPU changes only the batch, phase 2's steps and evaluations, and
the budget."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import tarfile
from pathlib import Path

from searchr1_lite.demo import DemoSettings

ROOT = Path(__file__).resolve().parents[1]


def _module():
    if "gpu_demo" not in sys.modules:
        spec = importlib.util.spec_from_file_location("gpu_demo", ROOT / "benchmarks" / "gpu_demo.py")
        sys.modules["gpu_demo"] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules["gpu_demo"]


def test_the_gpu_demo_is_the_default_demo_with_a_gpus_batch_and_phase_2_steps():
    gd = _module()
    s, default = gd.gpu_settings(8.0), DemoSettings()
    batch = {"prompts_per_step": 8, "group_size": 16, "micro_batch_size": 32}
    assert s.train == {**default.train, **batch}
    assert s.two_hop_phase == {**default.two_hop_phase, **batch, "max_steps": 100, "eval_every": 10}
    assert s.budget_minutes == 8.0
    same = {"train", "two_hop_phase", "budget_minutes"}
    assert {k: v for k, v in dataclasses.asdict(s).items() if k not in same} == \
        {k: v for k, v in dataclasses.asdict(default).items() if k not in same}


def test_the_archive_keeps_results_and_leaves_out_weights(tmp_path):
    gd = _module()
    run = tmp_path / "gd"
    for name in ("report.md", "eval/rag.json", "train/metrics.jsonl", "train/adapter/adapter_model.safetensors",
                 "train/checkpoint-3/optimizer.pt", "train-two-hop/latest/state.json"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(name)
    gd.archive(run, tmp_path / "a.tar.gz")
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        files = sorted(m.name for m in tar.getmembers() if m.isfile())
    assert files == ["gd/eval/rag.json", "gd/report.md", "gd/train/metrics.jsonl"]
