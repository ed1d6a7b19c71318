"""Measure each lesson on this machine's tier: wall time and the kernel's peak memory. Writes the figures the
lessons print as "measured" (searchr1_lite/reference/measured.json) and prints them as JSON and one line.

    python benchmarks/time_notebooks.py [--tier cpu] [--only 01 04]

Each notebook runs in a fresh process (nbclient), so the peak memory (the kernel's RSS, RAM) is its own. For a
GPU tier's GPU memory, `make gpu-check`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from searchr1_lite.tiers import lesson_id

ROOT = Path(__file__).resolve().parents[1]
MEASURED = ROOT / "searchr1_lite" / "reference" / "measured.json"

CHILD = """
import resource, sys, time
import nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
start = time.perf_counter()
NotebookClient(nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
seconds = time.perf_counter() - start
nbformat.write(nb, sys.argv[3])  # the executed copy, outputs and all: what the figures came from
print(seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB on Linux: the kernel's peak
"""


def machine() -> str:
    cores = os.cpu_count()
    return f"{platform.machine()} CPU, {cores} cores" if cores else platform.machine()


def run(path: Path, tier: str) -> dict:
    env = {**os.environ, "SEARCHR1_LITE_TIER": tier}
    workdir = ROOT / "runs" / "time_notebooks"
    workdir.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(workdir), str(workdir / path.name)], env=env,
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{path.name} failed:\n{out.stderr[-3000:]}")
    seconds, rss_kib = out.stdout.split()[-2:]
    return {"seconds": round(float(seconds), 1), "peak_gb": round(int(rss_kib) / 2**20, 2),
            "machine": machine(), "date": datetime.date.today().isoformat()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tier", default="cpu")
    ap.add_argument("--only", nargs="*", default=None, help="lesson numbers, e.g. 01 04 (default: all)")
    args = ap.parse_args()
    figures = json.loads(MEASURED.read_text()) if MEASURED.exists() else {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        if args.only and lesson_id(path.name) not in args.only:
            continue
        figures.setdefault(args.tier, {})[lesson_id(path.name)] = row = run(path, args.tier)
        print(f"{path.name}: {row['seconds']:.0f} s, peak {row['peak_gb']:.2f} GB", flush=True)
    MEASURED.write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    rows = figures[args.tier]
    print(json.dumps(rows))
    print(f"tier {args.tier}: " + ", ".join(f"{k} {v['seconds'] / 60:.1f} min / {v['peak_gb']:.1f} GB"
                                            for k, v in sorted(rows.items())))


if __name__ == "__main__":
    main()
