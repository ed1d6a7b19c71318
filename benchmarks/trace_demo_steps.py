"""Record the demo's first training steps, token for token: for showing that a change to the code changes no behaviour.

    python benchmarks/trace_demo_steps.py 3 /tmp/before     # on the old code (PYTHONPATH=<old checkout>)
    python benchmarks/trace_demo_steps.py 3 /tmp/after      # on the new code
    python benchmarks/trace_demo_steps.py --compare /tmp/before /tmp/after

It trains the demo's recipe (`searchr1-lite demo` settings, seed 0) for N steps with a reward function that records
every sampled trajectory (its token ids, loss mask and reward) and writes them with their SHA-256 to DIR/trace.json.
Two traces with the same digest sampled the same tokens and earned the same rewards at every step.
"""

import argparse
import hashlib
import json
import time
from pathlib import Path


def record(steps: int, out: Path) -> dict:
    import searchr1_lite
    from searchr1_lite.demo import DemoSettings, train_config
    from searchr1_lite.reward import trajectory_reward
    from searchr1_lite.train import train

    cfg = train_config(DemoSettings(), out / "run")
    cfg.progress = False
    rows = []

    def reward(t, e):  # the demo's own reward, recorded
        r = trajectory_reward(t.answer, e.answers, t.well_formed, cfg.format_bonus)
        rows.append({"question": e.question, "ids": t.ids, "gen_mask": t.gen_mask, "reward": r})
        return r

    start = time.time()
    train(cfg, stop_after=steps, reward_fn=reward)
    digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
    trace = {"package": searchr1_lite.__file__, "steps": steps, "sha256": digest, "seconds": time.time() - start,
             "rows": rows}
    (out / "trace.json").write_text(json.dumps(trace))
    return trace


def compare(a: Path, b: Path) -> bool:
    x, y = (json.loads((p / "trace.json").read_text()) for p in (a, b))
    same = [r == s for r, s in zip(x["rows"], y["rows"])]
    print(f"{a}: {len(x['rows'])} trajectories, {x['sha256'][:16]} ({x['package']})")
    print(f"{b}: {len(y['rows'])} trajectories, {y['sha256'][:16]} ({y['package']})")
    print(f"identical trajectories: {sum(same)}/{max(len(x['rows']), len(y['rows']))}; "
          f"rewards {[r['reward'] for r in x['rows']] == [r['reward'] for r in y['rows']]}")
    return x["sha256"] == y["sha256"]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("steps_or_dir", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--compare", nargs=2, metavar="DIR")
    args = ap.parse_args()
    if args.compare:
        raise SystemExit(0 if compare(*map(Path, args.compare)) else 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t = record(int(args.steps_or_dir), out)
    print(f"{t['steps']} steps, {len(t['rows'])} trajectories, sha256 {t['sha256']} ({t['seconds']:.0f} s)")
