"""The demo's recipe on a GPU, with a larger group and more steps: issue 18's second data point, in minutes.

`DemoSettings()` is what `make demo` runs: phase 1 on the world's four kinds of question, then phase 2 on the author
chains, and the same held-out test. On top of it, this adds only what a GPU affords:
- 8 questions x 16 samples a step, where the CPU has 4 x 8. A larger group gives more chances that one sample
  searches twice and is right.
- Phase 2 may take up to 100 steps, where the CPU allows 30. The time budget stops it first. It evaluates the dev
  questions every 10 steps instead of every 2.
- Micro-batches of 32 rows in the update.

The world, the prompts, the learning rates, the temperatures and the turn limits are the demo's own. The model
computes in float32, as on the CPU.

    python benchmarks/gpu_demo.py --out runs/demo-gpu --budget-minutes 6   # on a GPU; writes report.md there
    python benchmarks/gpu_demo.py --smoke --out /tmp/gpu-demo-smoke        # the same code path, tiny, on a CPU

Besides the demo's own files, it writes device.json: the device, the library versions, and the wall time. It prints
report.md at the end, so the log alone holds the results. `--archive FILE.tar.gz` packs the folder without adapters and
checkpoints: the device tool brings back files of at most 16 MiB, and the two adapters alone make 19 MB.

On the device tool's machine the model needs two calls: its GGUF (94 MiB) is larger than one call may carry (64 MiB,
the working tree included). `bash benchmarks/gpu_demo_carry.sh` writes both calls' folders and prints their commands.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the package from this checkout, installed or not (the GPU machine has no -e install)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from searchr1_lite.demo import DemoSettings, run_demo  # noqa: E402

GPU_BATCH = {"prompts_per_step": 8, "group_size": 16, "micro_batch_size": 32}  # the CPU's: 4 x 8, micro-batch 8
PHASE_2_STEPS = 100  # the CPU's 30; the budget stops phase 2 first
# the CPU's 2. On the H200 the 50 held-out questions took 4-7 s and a step 6.2 s: the 12 dev questions every 2 steps
# (a batch as long as its longest answer) would take a fifth to a third of phase 2, every 10 a twentieth or so
PHASE_2_EVAL_EVERY = 10


def gpu_settings(budget_minutes: float) -> DemoSettings:
    """The default demo with a GPU's batch and phase-2 steps, within `budget_minutes` in all."""
    s = DemoSettings()
    return dataclasses.replace(s, budget_minutes=budget_minutes, train={**s.train, **GPU_BATCH},
                               two_hop_phase={**s.two_hop_phase, **GPU_BATCH, "max_steps": PHASE_2_STEPS,
                                              "eval_every": PHASE_2_EVAL_EVERY})


def smoke_settings() -> DemoSettings:
    """gpu_settings' code path (two phases, both worlds, the report) at a size a CPU finishes in a few minutes."""
    tiny = {"prompts_per_step": 2, "group_size": 2, "micro_batch_size": 4, "max_new_tokens": 16, "max_steps": 1}
    return dataclasses.replace(gpu_settings(30.0), world="world:seed=0,people=60,kinds=birthplace+author_birthplace",
                               phase_1_world="world:seed=0,people=60", test_per_kind=2, budget_minutes=None,
                               train={**tiny, "eval_size": 2}, two_hop_phase={**DemoSettings().two_hop_phase, **tiny})


def device_info() -> dict:
    import torch
    import transformers

    cuda = torch.cuda.is_available()
    return {"device": torch.cuda.get_device_name() if cuda else "CPU", "torch": torch.__version__,
            "transformers": transformers.__version__, "cuda": torch.version.cuda if cuda else None,
            "cpu_threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d")}


LEFT_OUT = ("adapter", "latest", "checkpoint-")  # folders the archive leaves out: weights, not results


def archive(folder: Path, path: Path) -> None:
    """`folder` as a .tar.gz, without its adapters and checkpoints."""
    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if any(part.startswith(LEFT_OUT) for part in Path(info.name).parts) else info

    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=folder.name, filter=keep)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/demo-gpu"))
    ap.add_argument("--budget-minutes", type=float, default=6.0, help="the whole demo's budget (default 6)")
    ap.add_argument("--smoke", action="store_true", help="tiny settings: checks the code path on a CPU")
    ap.add_argument("--archive", type=Path, help="also pack the run folder, without weights, into this .tar.gz")
    args = ap.parse_args(argv)
    settings = smoke_settings() if args.smoke else gpu_settings(args.budget_minutes)
    start = time.perf_counter()
    report = run_demo(args.out, settings, fresh=True, progress=False)
    info = {**device_info(), "wall_seconds": round(time.perf_counter() - start, 1), "smoke": args.smoke,
            "gpu_batch": GPU_BATCH, "phase_2_steps": PHASE_2_STEPS,
            "phase_2_eval_every": PHASE_2_EVAL_EVERY, "budget_minutes": settings.budget_minutes}
    (args.out / "device.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"\n{report.read_text()}\n{json.dumps(info)}")
    if args.archive:
        archive(args.out, args.archive)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
