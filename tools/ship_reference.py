"""Ship a finished run with the package (searchr1_lite/reference/), for a lesson to set its own run beside.

    python tools/ship_reference.py demo runs/demo        # lesson 05: searchr1-lite demo --one-phase --no-mask
                                                         #   --budget-minutes 0 --steps 15
    python tools/ship_reference.py run lesson04 RUN_DIR  # lesson 04: its CPU tier run longer (SETTINGS max_steps=8)

`demo` writes demo.metrics.jsonl and demo-no-mask.metrics.jsonl (the masked run and the ablation) and
demo.summary.json (the demo's settings, its held-out EM per method, where and when it ran). `run` writes
NAME.metrics.jsonl and NAME.about.json (the run's config). Metrics go without their timing columns: those measure the
machine and whatever else ran on it. Every number a lesson prints about a shipped run comes from these files.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from searchr1_lite.demo import DemoSettings  # noqa: E402
from searchr1_lite.train import TIMING_METRICS  # noqa: E402

REFERENCE = ROOT / "searchr1_lite" / "reference"


def _ran(run: Path) -> str:
    """When the run ended (its metrics file's last write), and on what kind of machine (this one, presumably)."""
    return f"{datetime.date.fromtimestamp((run / 'metrics.jsonl').stat().st_mtime).isoformat()} on {platform.machine()}"


def _finished(*paths: Path, hint: str) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"not a finished run (missing {', '.join(missing)}); {hint}")


def _metrics(run: Path, path: Path) -> Path:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k not in TIMING_METRICS}) + "\n" for r in rows))
    return path


def ship_run(name: str, run: Path, out: Path = REFERENCE) -> list[Path]:
    _finished(run / "adapter", run / "config.json", hint=f"train {run} to its last step first")
    about = {"config": json.loads((run / "config.json").read_text()), "ran": _ran(run)}
    (out / f"{name}.about.json").write_text(json.dumps(about, indent=1) + "\n")
    return [_metrics(run, out / f"{name}.metrics.jsonl"), out / f"{name}.about.json"]


def ship_demo(demo: Path, out: Path = REFERENCE) -> list[Path]:
    runs = {"train": "demo", "train-no-mask": "demo-no-mask"}
    _finished(*(demo / r / "adapter" for r in runs), demo / "summary.json",
              hint=f"run: searchr1-lite demo --one-phase --no-mask --budget-minutes 0 --out {demo}")
    settings = json.loads((demo / "settings.json").read_text())
    one_phase = " --one-phase" if settings.get("two_hop_phase") is None else ""
    steps = settings["train"].get("max_steps")  # phase 1's, when not today's default
    steps = f" --steps {steps}" if steps not in (None, DemoSettings().train["max_steps"]) else ""
    about = {"command": f"searchr1-lite demo{one_phase} --no-mask --budget-minutes {settings['budget_minutes'] or 0}"
                        f"{steps}",
             "settings": settings, "methods": json.loads((demo / "summary.json").read_text())["methods"],
             "ran": _ran(demo / "train-no-mask")}
    (out / "demo.summary.json").write_text(json.dumps(about, indent=1) + "\n")
    return [*(_metrics(demo / r, out / f"{name}.metrics.jsonl") for r, name in runs.items()),
            out / "demo.summary.json"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("demo").add_argument("folder", type=Path, help="the demo's folder (its --out)")
    one = sub.add_parser("run")
    one.add_argument("name", help="the reference's name, e.g. lesson04")
    one.add_argument("folder", type=Path, help="the run folder (its output_dir)")
    args = parser.parse_args()
    written = ship_demo(args.folder) if args.what == "demo" else ship_run(args.name, args.folder)
    for p in written:
        print(f"wrote {p.relative_to(ROOT)}")
