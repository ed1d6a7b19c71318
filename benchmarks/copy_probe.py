"""Which city names a policy copies from the passage it retrieved: every single-hop birthplace question of a demo's
world (training and test), answered greedily, and the probability of the gold name after the policy's own words.

    python benchmarks/copy_probe.py runs/demo                       # the base model, phase 1 and phase 2
    python benchmarks/copy_probe.py runs/demo --runs train --out docs/multi-hop/copy-probe.json

For each policy it prints, per city, the greedy answers that were right and the median (over that city's questions)
of p(name | everything up to the last "... was born in" the policy wrote after its retrieved passages), teacher-forced
over all the name's tokens. The base model is the runs' base with the adapter switched off. docs/multi-hop section 26
reads it: reinforcement learning taught the 135M policy to copy 28 of the world's 29 city names, and not Drothen.
"""

import argparse
import collections
import contextlib
import dataclasses
import json
import math
from pathlib import Path

import torch

from searchr1_lite.models import load_policy
from searchr1_lite.reward import trajectory_reward
from searchr1_lite.rollout import rollout
from searchr1_lite.train import load_run_config, make_retriever


def birthplace_questions(demo: Path) -> list[dict]:
    rows = []
    for split in ("train", "test"):
        for line in (demo / "world" / f"{split}.jsonl").read_text().splitlines():
            r = json.loads(line)
            if r["hops"] == 1 and r["kind"] == "birthplace":
                rows.append({**r, "split": split})
    return rows


def copy_logprob(model, tokenizer, text: str, name: str) -> float | None:
    """log p(" name") after the last " was born in" that follows the last passage; None if the policy wrote none."""
    cut = text.rfind(" was born in")
    if cut < text.rfind("</information>") or text.rfind("</information>") < 0:
        return None
    prefix = text[:cut + len(" was born in")]
    a = tokenizer(prefix, add_special_tokens=False).input_ids
    b = tokenizer(prefix + " " + name, add_special_tokens=False).input_ids
    if b[:len(a)] != a:  # the name merged with the prefix's last token: no clean split to score
        return None
    with torch.no_grad():
        logp = model(torch.tensor([b])).logits[0].float().log_softmax(-1)
    return sum(logp[i - 1, b[i]].item() for i in range(len(a), len(b)))


def probe(model, tokenizer, questions: list[dict], retriever, rollout_cfg) -> list[dict]:
    cfg = dataclasses.replace(rollout_cfg, temperature=0.0, seed=0)
    result = rollout(model, tokenizer, [q["question"] for q in questions], retriever, cfg, progress=True)
    rows = []
    for q, t in zip(questions, result.trajectories):
        gold = q["golden_answers"][0]
        rows.append({"id": q["id"], "split": q["split"], "gold": gold, "answer": t.answer,
                     "em": trajectory_reward(t.answer, q["golden_answers"]),
                     "copy_logprob": copy_logprob(model, tokenizer, tokenizer.decode(t.ids), gold)})
    return rows


def summary(label: str, rows: list[dict]) -> str:
    lines = [f"== {label}: greedy EM {sum(r['em'] for r in rows) / len(rows):.3f} over {len(rows)} questions"]
    by_city = collections.defaultdict(list)
    for r in rows:
        by_city[r["gold"]].append(r)
    for city, rs in sorted(by_city.items(), key=lambda kv: sum(r["em"] for r in kv[1]) / len(kv[1])):
        lps = sorted(r["copy_logprob"] for r in rs if r["copy_logprob"] is not None)
        median = f"{math.exp(lps[len(lps) // 2]):.3f}" if lps else "  -  "
        wrong = collections.Counter(r["answer"] for r in rs if not r["em"]).most_common(3)
        lines.append(f"  {city:10s} right {sum(r['em'] for r in rs):.0f}/{len(rs)}  p(copy) median {median}"
                     + (f"  wrong answers {wrong}" if wrong else ""))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("demo", type=Path, help="a demo's folder (runs/demo): its world/ and trained runs")
    ap.add_argument("--runs", nargs="+", default=["train", "train-two-hop"], help="its runs to probe")
    ap.add_argument("--out", type=Path, help="write every row here as JSON")
    args = ap.parse_args()
    questions = birthplace_questions(args.demo)
    out = {}
    for name in args.runs:
        cfg = load_run_config(args.demo / name)
        retriever = make_retriever(cfg.data)[0]
        p = cfg.policy
        model, tokenizer = load_policy(p.model, quantization=p.quantization, adapter=str(args.demo / name / "adapter"),
                                       lora_layers=p.lora_layers)
        model.eval()
        for label, adapter_off in (("base", True), (name, False)):
            if label in out:
                continue
            with model.disable_adapter() if adapter_off else contextlib.nullcontext():
                out[label] = probe(model, tokenizer, questions, retriever, cfg.rollout)
            print(summary(label, out[label]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
