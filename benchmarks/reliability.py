"""Regenerate docs/reliability.md: run the reliability tests and the service load test, tabulate what held.

Each row of the table is one kind of abuse: what was tried, how many cases (hypothesis examples actually run,
parametrized cases, requests, kills), the figure that matters, and whether every test behind it passed. Numbers
come from this run: pytest's own report (`-rA`) and hypothesis' statistics, and `bench_server_load.py`'s JSON.

    python benchmarks/reliability.py [--out docs/reliability.md] [--requests 5000] [--clients 50]
(`make reliability`; ~9 minutes on 2 CPU cores; `make test` runs the same tests, not the load test.)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (area, what was tried, node-id prefixes of the tests behind it)
ROWS = [
    ("model output", "the action parser on arbitrary text: unicode, control characters, raw bytes, tag soup",
     ["tests/test_prompt_reward.py::test_parser_never_raises", "tests/test_prompt_reward.py::test_no_closing_tag"]),
    ("model output", "the parser against the authors' regex on clean actions; the answer extractor against theirs",
     ["tests/test_prompt_reward.py::test_a_clean_action_agrees", "tests/test_prompt_reward.py::test_extract_answer"]),
    ("model output", "the reward on arbitrary text and gold answers (bounded, deterministic)",
     ["tests/test_prompt_reward.py::test_reward_is_bounded"]),
    ("model output", "outputs of 0.9-2 MB with up to 200,000 tags: parsed to the right action, no answer extracted "
                     "(the time is not asserted)",
     ["tests/test_prompt_reward.py::test_huge_and_tag_heavy"]),
    ("masks", "random scripted trajectories (random actions, tag soup, tags cut mid-way, random passage lengths) "
              "through the real rollout: every gen_mask=1 token is the model's choice, every inserted token masked, "
              "real Qwen2.5 and SmolLM2 tokenizers",
     ["tests/test_fuzz_rollout.py"]),
    ("service", "malformed JSON, wrong types, negative or huge topk, very long queries, oversized bodies: 4xx with "
                "a message, then still serving; the authors' trainer's shapes (no queries, blank ones, thousands, "
                "topk 0) answered as their server does",
     ["tests/test_server.py::test_bad_requests", "tests/test_server.py::test_a_streamed",
      "tests/test_server.py::test_their_"]),
    ("service", "binding beyond 127.0.0.1 without --allow-remote; a failing index -> 503 with its reason",
     ["tests/test_server.py::test_binding_beyond", "tests/test_server.py::test_a_failing_retriever"]),
    ("client", "service down: retries with back-off then an error naming the URL; no retry of a 4xx; a restart "
               "mid-call is ridden out",
     ["tests/test_server.py::test_client_fails_loudly", "tests/test_server.py::test_client_does_not_retry",
      "tests/test_server.py::test_client_survives"]),
    ("training", "SIGKILL mid-step and mid-checkpoint-write, then --resume: bit-identical to an uninterrupted run "
                 "(processes on one thread), every metrics row once, no partial files",
     ["tests/test_train.py::test_sigkill", "tests/test_train.py::test_a_kill_during_checkpoint",
      "tests/test_train.py::test_resume_continues_exactly"]),
    ("training", "non-finite loss: update skipped, weights unchanged, logged; training goes on",
     ["tests/test_train.py::test_a_nonfinite", "tests/test_grpo.py::test_step_learns_and_a_nonfinite"]),
    ("training", "CUDA out-of-memory (injected; no GPU here): rollout in halves, micro-batch halved, then advice",
     ["tests/test_train.py::test_out_of_memory"]),
    ("user input", "malformed corpus and question rows, a missing offline package, an unknown config key or wrong type",
     ["tests/test_corpus.py::test_malformed", "tests/test_inputs.py::test_malformed",
      "tests/test_inputs.py::test_a_missing", "tests/test_train.py::test_config_errors",
      "tests/test_cli.py::test_errors_are_one_clear_line"]),
    ("user input", "an index built for another corpus or encoder; an index folder without a manifest",
     ["tests/test_retrieval.py::test_save_load_round_trip_and_mismatch",
      "tests/test_retrieval.py::test_missing_manifest"]),
    ("loading", "no module can unpickle a user file (static check); a state.pt holding code is refused, not run; "
                "adapters are safetensors",
     ["tests/test_inputs.py::test_no_module", "tests/test_inputs.py::test_a_checkpoint"]),
]


def run_tests() -> tuple[dict[str, str], dict[str, int], float]:
    """(outcome per test id, hypothesis examples run per test id, seconds)."""
    files = sorted({p.split("::")[0] for _, _, prefixes in ROWS for p in prefixes})
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", *files, "-q", "-rA", "-p", "no:cacheprovider",
                           "--hypothesis-show-statistics"], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    # -rA's lines: "PASSED id" or "FAILED id - reason"; an id's parameters may hold spaces
    pattern = r"^(PASSED|FAILED|ERROR|SKIPPED) (.+?)(?: - .*)?$"
    outcomes = {m.group(2): m.group(1) for m in re.finditer(pattern, proc.stdout, re.M)}
    examples, current = {}, None
    for line in proc.stdout.splitlines():
        head = re.match(r"^(tests/\S+::.+):$", line.strip())
        if head:
            current = head.group(1)
        m = re.search(r"(\d+) passing( examples)?,", line)
        if m and current:
            examples[current] = examples.get(current, 0) + int(m.group(1))
    if not outcomes:
        sys.exit(f"pytest produced no results:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return outcomes, examples, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "reliability.md"))
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=50)
    args = ap.parse_args()

    outcomes, examples, test_seconds = run_tests()
    with tempfile.TemporaryDirectory() as tmp:
        load_json = Path(tmp) / "load.json"
        bench = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_server_load.py"), "--requests",
                                str(args.requests), "--clients", str(args.clients), "--json", str(load_json)],
                               cwd=ROOT, capture_output=True, text=True)
        if not load_json.exists():
            sys.exit(f"bench_server_load.py failed:\n{bench.stdout[-2000:]}\n{bench.stderr[-3000:]}")
        load = json.loads(load_json.read_text())

    lines = ["# Reliability", "",
             f"Regenerated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `make reliability` "
             f"(`benchmarks/reliability.py`) on {_machine()}. Every figure below is from that run; the tests are also "
             "part of `make test`.", "",
             "| area | what was tried | cases | result |", "|---|---|---:|---|"]
    total_examples, all_ok = 0, True
    for area, what, prefixes in ROWS:
        ids = [t for t in outcomes if any(t.startswith(p) for p in prefixes)]
        passed = sum(outcomes[t] == "PASSED" for t in ids)
        n_examples = sum(v for t, v in examples.items() if any(t.startswith(p) for p in prefixes))
        total_examples += n_examples
        ok = bool(ids) and passed == len(ids)
        all_ok &= ok
        cases = f"{n_examples:,} generated" if n_examples else f"{len(ids)} test{'s' if len(ids) != 1 else ''}"
        lines.append(f"| {area} | {what} | {cases} | {'held' if ok else '**FAILED**'} "
                     f"({passed}/{len(ids)} tests passed) |")
    ld = load["load"]
    abuse_ok = sum(a["status"] == a["expected"] and a["served_after"] and a["well_formed"] for a in load["abuse"])
    restarts_ok = sum(r["answered"] for r in load["restarts"])
    lines += [
        f"| service | load on loopback: {ld['clients']} concurrent clients, one real question a request (BM25 over "
        f"10,033 passages) | {ld['requests']:,} requests | "
        f"{'held' if ld['errors'] == 0 else '**FAILED**'}: {ld['errors']} "
        f"errors; p50 {ld['p50_ms']} ms, p99 {ld['p99_ms']} ms, max {ld['max_ms']} ms; {ld['requests_per_s']} req/s |",
        f"| service | abuse over HTTP against the running service, each followed by a good request | "
        f"{len(load['abuse'])} inputs | {abuse_ok}/{len(load['abuse'])} answered as expected (the right 4xx, or 200 "
        f"with well-formed rows) and served after |",
        "| client | the service process SIGKILLed, a client asks while it is down, and it restarts 1 s into the "
        f"call | "
        f"{len(load['restarts'])} restarts | "
        f"{restarts_ok}/{len(load['restarts'])} calls answered correctly after the restart "
        f"({', '.join(str(r['seconds_to_answer']) for r in load['restarts'])} s) |",
        "",
        f"Generated cases in all: **{total_examples:,}** (hypothesis examples actually run, from its statistics). "
        f"All {len(outcomes)} tests of the {len({t.split('::')[0] for t in outcomes})} files these rows draw on: "
        f"{sum(v == 'PASSED' for v in outcomes.values())} passed, in {test_seconds:.0f} s.",
        "",
        "Abuse inputs and the service's answers:", "",
        "| input | status | message (start) |", "|---|---:|---|",
        *[f"| {a['input']} | {a['status']} | {_cell(a['message'])} |" for a in load["abuse"]],
        "",
        "Not covered here: real CUDA out-of-memory (no GPU on this machine; the handling is tested with an injected "
        "`torch.OutOfMemoryError`).",
    ]
    all_ok &= bool(load["ok"])
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}: {'all held' if all_ok else 'SOMETHING FAILED'}; {total_examples:,} generated cases, "
          f"load {ld['requests']} requests / {ld['errors']} errors, p99 {ld['p99_ms']} ms")
    sys.exit(0 if all_ok else 1)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:100]


def _machine() -> str:
    import os
    import platform

    return f"{os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}"


if __name__ == "__main__":
    main()
