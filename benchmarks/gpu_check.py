"""`make gpu-check`: measure, on the GPU at hand, what the T4 tier promises (searchr1_lite/tiers.py), in minutes.

The model is Qwen2.5-3B-shaped with random weights and the real Qwen2.5 tokenizer (nothing is downloaded). It is
built on the GPU in fp16 under a fixed seed, saved to a temporary folder and loaded by the project's own path:
`load_policy(folder, quantization="4bit", gradient_checkpointing=True, compute=<the T4's fp16>, LoRA r=16)`.
Then, with the T4 tier's lesson-04 config (searchr1_lite/configs/qwen2.5-3b-hotpotqa.yaml plus the tier's overrides)
on the synthetic world's questions and passages (HotpotQA is not reachable offline):

    load       load_policy: read the fp16 weights, quantise to NF4, add LoRA
    rollout    one rollout of prompts_per_step x group_size trajectories. A random model almost never writes a tag,
               so every turn runs to max_new_tokens: this measures the cost of a decode step, not search behaviour
    update     one masked GRPO step (grpo_step, as train_step calls it) on those trajectories
    train      `train(cfg, policy=...)` for 2 steps on the loaded model, as lesson 04 does: the loop end to end

Each phase records its wall time and its peak GPU memory (max_memory_allocated and max_memory_reserved). The
figures (seconds per decode step, update tokens per second, peak memory) are printed and written as JSON beside the
estimate `tiers.estimate(TIERS["t4"], "04")` and the assumptions it rests on (T4_DECODE_STEP_S, UPDATE_EFFICIENCY,
SPEEDS); measured on another GPU, they are converted to a T4 by the same bandwidth / FLOPs ratios the estimate uses.

    python benchmarks/gpu_check.py --out benchmarks/results/gpu.json --doc docs/gpu.md   # what `make gpu-check` runs
    python benchmarks/gpu_check.py --cpu-smoke --out /tmp/smoke.json    # the same code path, tiny model, CPU, < 1 min
    python benchmarks/gpu_check.py --render gpu.json --doc docs/gpu.md  # a JSON measured elsewhere into the docs

Without a GPU (and without --cpu-smoke) it prints "no GPU: ..." and exits 0.

On the device tool's GPU machine (torch, transformers, peft, accelerate there; not bitsandbytes, bm25s, the
tokenizer package): first `bash benchmarks/gpu_wheels.sh` here, then run with carry [".gpu-wheels"]:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu-wheels/*.whl && PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out $OUT/gpu.json
"""  # noqa: E501  (the device command is one line on purpose: it is copied as is)

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the package from this checkout, installed or not (the GPU machine has no -e install)
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may need the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from searchr1_lite import tiers  # noqa: E402

GB = 1e9
SEED = 0
TIER = "t4"
LESSON = "04"
TRAIN_LOOP_STEPS = 2
PHASES = ("build", "load", "rollout", "update", "train")
DOC_BEGIN, DOC_END = "<!-- gpu-check:begin -->", "<!-- gpu-check:end -->"

# Spec-sheet speeds of GPUs the check may run on, for converting its figures to a T4 by the ratios tiers.SPEEDS uses
# (bandwidth for decoding, dense fp16/bf16 tensor-core peak for the update). Matched by name, first hit wins.
DEVICE_SPEEDS = {
    "H200": tiers.GPUSpeed(4800, 990),
    "H100": tiers.GPUSpeed(3350, 990),  # SXM; a PCIe H100 is ~2000 GB/s, ~756 TFLOP/s
    "A100": tiers.SPEEDS["a100"],
    "L4": tiers.SPEEDS["l4"],
    "T4": tiers.SPEEDS["t4"],
}

# Qwen2.5-3B's shape (its config.json); the smoke run keeps the vocabulary (the real tokenizer) and shrinks the rest.
QWEN25_3B_SHAPE = dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                       num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
                       max_position_embeddings=32768, rope_theta=1e6)
SMOKE_SHAPE = {**QWEN25_3B_SHAPE, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
               "num_attention_heads": 4}
# The smoke run's settings, on top of the tier's: tiny, so the same code path finishes in seconds on a CPU.
SMOKE_OVERRIDES = ["prompts_per_step=2", "group_size=2", "max_new_tokens=8", "max_turns=1", "max_obs_tokens=64",
                   "micro_batch_size=2"]
# The world's questions and passages stand in for HotpotQA (unreachable offline); the loop's final evaluation is cut
# to a few questions: it is the code path that is checked there, and the 8-minute budget is the rollout's.
COMMON_OVERRIDES = ["questions=world", "corpus=world", "progress=false", "eval_size=4", "samples_per_eval=1"]


@dataclasses.dataclass
class Plan:
    """What one run of the check does: where, in which dtype, with which model shape and settings."""

    device: str
    compute: torch.dtype
    shape: dict
    overrides: list[str]
    smoke: bool


def make_plan(smoke: bool) -> Plan:
    tier = tiers.TIERS[TIER]
    if smoke:  # the CPU tier's compute dtype: bitsandbytes' CPU kernels are float32
        return Plan("cpu", getattr(torch, tiers.TIERS["cpu"].compute_dtype), SMOKE_SHAPE,
                    COMMON_OVERRIDES + SMOKE_OVERRIDES, True)
    return Plan("cuda", getattr(torch, tier.compute_dtype), QWEN25_3B_SHAPE, list(COMMON_OVERRIDES), False)


# --------------------------------------------------------------------------- measuring a phase


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@contextlib.contextmanager
def phase(name: str, plan: Plan, phases: dict):
    """Time a phase and record its own peak GPU memory (the peak counters are reset as it starts)."""
    if plan.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    _sync(plan.device)
    row = phases.setdefault(name, {})
    start = time.perf_counter()
    yield row
    _sync(plan.device)
    row["seconds"] = time.perf_counter() - start
    cuda = plan.device.startswith("cuda")
    row["peak_allocated_gb"] = torch.cuda.max_memory_allocated() / GB if cuda else None
    row["peak_reserved_gb"] = torch.cuda.max_memory_reserved() / GB if cuda else None
    # the process's peak RSS so far (not per phase): the only memory figure a CPU run has
    row["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB
    print(f"  {name}: {row['seconds']:.1f} s" + (f", peak {row['peak_allocated_gb']:.2f} GB allocated, "
                                                 f"{row['peak_reserved_gb']:.2f} GB reserved" if cuda else ""))


def _free(device: str) -> None:
    """Drop what the last phase left cached, so the next phase's reserved peak is its own."""
    import gc

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- the phases


def build_model(plan: Plan, folder: Path) -> int:
    """Random Qwen2.5-shaped weights, created directly on the device in fp16 (seconds, not minutes of CPU init),
    saved with the real tokenizer so that load_policy reads it like any local model folder. Returns its parameters."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from searchr1_lite.models import qwen25_tokenizer

    tok = qwen25_tokenizer()
    config = Qwen2Config(**plan.shape, bos_token_id=None, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    torch.manual_seed(SEED)
    with torch.device(plan.device):
        model = Qwen2ForCausalLM._from_config(config, dtype=torch.float16)
    params = model.num_parameters()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    return params


def tier_config(plan: Plan, folder: Path, output_dir: Path, extra: list[str] = ()):
    """The T4 tier's lesson-04 training config, on this model folder and the world's data."""
    from searchr1_lite.config import TrainConfig

    s = tiers.TIERS[TIER].settings(LESSON)
    return TrainConfig.load(s["config"], s["overrides"] + plan.overrides +
                            [f"model={folder}", f"output_dir={output_dir}", *extra])


def load(plan: Plan, folder: Path, cfg):
    """The project's real loading path, with the tier's compute dtype forced (a T4's fp16 on a bf16-capable GPU)."""
    from searchr1_lite.models import load_policy

    p = cfg.policy
    return load_policy(str(folder), quantization=p.quantization, gradient_checkpointing=p.gradient_checkpointing,
                       compute=plan.compute, lora_r=p.lora_r, lora_alpha=p.lora_alpha, device=plan.device)


def decode_steps(trajectories) -> int:
    """Forward passes of the rollout's sampling loop: each turn runs until its longest row stops."""
    turns = max(len(t.turns) for t in trajectories)
    return sum(max(t.turns[k].generated for t in trajectories if len(t.turns) > k) for k in range(turns))


def run_rollout(model, tok, cfg, row: dict):
    """One step's rollout, as train_step does it: prompts_per_step questions, each group_size times."""
    from searchr1_lite.rollout import rollout
    from searchr1_lite.runtime import rollout_fitting_memory
    from searchr1_lite.train import make_retriever, pick_questions, split_questions

    retriever, corpus = make_retriever(cfg.data)
    train_qs, _ = split_questions(cfg.data, corpus, cfg.seed)
    picks = [train_qs[i] for i in pick_questions(len(train_qs), 0, cfg.optim.prompts_per_step, cfg.seed)]
    questions = [e.question for e in picks for _ in range(cfg.optim.group_size)]
    model.eval()
    res = rollout_fitting_memory(rollout, model, tok, questions, retriever, cfg.rollout, cfg.optim.group_size)
    ts, steps = res.trajectories, decode_steps(res.trajectories)
    row.update(trajectories=len(ts), max_turns=cfg.rollout.max_turns, max_new_tokens=cfg.rollout.max_new_tokens,
               decode_steps=steps, generate_seconds=res.seconds_generate, search_seconds=res.seconds_search,
               seconds_per_decode_step=res.seconds_generate / max(steps, 1), generated_tokens=res.generated_tokens,
               answered=sum(t.answer is not None for t in ts), searches=sum(t.searches for t in ts),
               mean_length=sum(len(t.ids) for t in ts) / len(ts))
    return res


def run_update(model, tok, cfg, res, row: dict) -> None:
    """One masked GRPO step on the rollout, built as train_step builds it. The rewards are seeded coin flips: a
    random model earns none, and all-zero advantages would make a step that measures nothing real."""
    from searchr1_lite.grpo import TrajectoryBatch, group_advantages, grpo_step
    from searchr1_lite.runtime import step_fitting_memory
    from searchr1_lite.train import make_optimizer

    gcfg = cfg.grpo_config()
    optimizer, _ = make_optimizer(model, cfg)
    rng = random.Random(SEED)
    rewards = torch.tensor([float(rng.random() < 0.5) for _ in res.trajectories])  # [n]
    advantages = group_advantages(rewards, cfg.optim.group_size, gcfg.adv_scale, gcfg.adv_eps)  # [n]
    t = res.tensors(tok.pad_token_id)
    batch = TrajectoryBatch(t["input_ids"], t["attention_mask"], t["gen_mask"], t["logprobs"])
    start = time.perf_counter()
    step = functools.partial(grpo_step, model, batch, advantages, optimizer, gcfg)  # reads gcfg when called
    m = step_fitting_memory(step, [optimizer], gcfg)
    del step
    _sync(str(next(model.parameters()).device))
    seconds = time.perf_counter() - start
    tokens = int(t["attention_mask"].sum())  # every token of every row, as the estimate's "update tokens"
    row.update(tokens=tokens, tokens_trained=m["tokens_trained"], micro_batch_size=gcfg.micro_batch_size,
               update_seconds=seconds, tokens_per_s=tokens / seconds, loss=m["loss"], skipped=m["skipped"])
    del optimizer


def run_train_loop(plan: Plan, folder: Path, work: Path, policy, row: dict) -> None:
    """`train(cfg, policy=...)` for TRAIN_LOOP_STEPS steps on the model already loaded, as lesson 04 does it:
    a fresh adapter, checkpoints, the final evaluation and the adapter included."""
    from searchr1_lite.train import train

    cfg = tier_config(plan, folder, work / "run", [f"max_steps={TRAIN_LOOP_STEPS}"])
    run = train(cfg, policy=policy)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    keep = ("step", "rollout_seconds", "update_seconds", "step_seconds", "peak_memory_mb", "loss", "skipped")
    row.update(steps=len(rows), adapter_saved=(run / "adapter").is_dir(),
               rows=[{k: r.get(k) for k in keep} for r in rows])


# --------------------------------------------------------------------------- the figures beside the estimate


def device_label(plan: Plan) -> tuple[str, tiers.GPUSpeed | None]:
    """The device's name and, where known, its spec-sheet speeds."""
    if not plan.device.startswith("cuda"):
        return "CPU (smoke run: a tiny model, not a GPU figure)", None
    name = tiers.device_name()
    speed = next((s for key, s in DEVICE_SPEEDS.items() if key in torch.cuda.get_device_name()), None)
    return name, speed


def figures(result: dict) -> dict:
    """Each measured figure beside the estimate's assumption, converted to a T4 where the device's speeds are
    known, as tiers.estimate_seconds does: a decode step keeps its host's part and moves its memory part to the T4's
    bandwidth; update throughput scales by tensor-core peak."""
    ph, t4, speed = result["phases"], tiers.SPEEDS["t4"], result["device_speed"]
    params = result["model"]["params"]
    step_s, tok_s = ph["rollout"]["seconds_per_decode_step"], ph["update"]["tokens_per_s"]
    memory_s = lambda gbs: tiers.DECODE_GB * params / tiers.QWEN25_3B.params / gbs  # noqa: E731  (a step's memory part)
    t4_step = step_s - memory_s(speed["bandwidth_gbs"]) + memory_s(t4.bandwidth_gbs) if speed else None
    fl = t4.fp16_tflops / speed["fp16_tflops"] if speed else None
    efficiency = tok_s * 8 * params / (speed["fp16_tflops"] * 1e12) if speed else None
    assumed_tok_s = t4.fp16_tflops * 1e12 * tiers.UPDATE_EFFICIENCY / (8 * tiers.QWEN25_3B.params)  # the estimate's
    peak, reserved = (_max_over(ph, key, ("load", "rollout", "update")) for key in ("peak_allocated_gb",
                                                                                  "peak_reserved_gb"))
    est = tiers.estimate(tiers.TIERS[TIER], LESSON)
    return {
        "decode_step_s": {"measured": step_s, "t4_equivalent": t4_step,
                          "assumed_t4": tiers.T4_DECODE_STEP_S,
                          "how": f"{ph['rollout']['generate_seconds']:.2f} s generating / "
                                 f"{ph['rollout']['decode_steps']} decode steps of {ph['rollout']['trajectories']} "
                                 "rows (prefills included); T4 = measured - DECODE_GB / device GB/s "
                                 "+ DECODE_GB / T4 GB/s"},
        "update_tokens_per_s": {"measured": tok_s, "t4_equivalent": tok_s * fl if fl else None,
                                "assumed_t4": assumed_tok_s, "effective_efficiency": efficiency,
                                "assumed_efficiency": tiers.UPDATE_EFFICIENCY,
                                "how": f"{ph['update']['tokens']:,} tokens / {ph['update']['update_seconds']:.2f} s; "
                                       "efficiency = tokens/s x 8 x params / device peak; T4 = x T4 TFLOP/s / device "
                                       "TFLOP/s"},
        "peak_memory_gb": {"measured_allocated": peak, "measured_reserved": reserved,
                           "estimate": est["memory"].value, "how": est["memory"].how},
        "lesson04_time_min": {"estimate": est["time"].value, "estimate_how": est["time"].how,
                              "projected_from_measured": _projected_minutes(t4_step, tok_s * fl) if speed else None},
    }


def _max_over(phases: dict, key: str, names: tuple[str, ...]) -> float | None:
    """The largest of a figure over some phases; None where no phase has it (a CPU run has no GPU memory)."""
    values = [phases[n][key] for n in names if phases[n][key] is not None]
    return max(values) if values else None


def _projected_minutes(step_s: float, tok_s: float) -> float:
    """The estimate's own arithmetic for lesson 04 on a T4 with the measured speeds in place of the assumed ones
    (the work, decode steps and update tokens, is the estimate's; so is its 3-minute download-and-load)."""
    w = tiers._train_work(tiers.TIERS[TIER].settings(LESSON))
    return (w["decode"] * step_s + w["tokens"] / tok_s + 3 * 60) / 60


# --------------------------------------------------------------------------- the run


def check(plan: Plan) -> dict:
    """Every phase in order, each measured; returns the result (phases, figures, assumptions)."""
    device, speed = device_label(plan)
    print(f"gpu-check on {device}: tier {TIER} (compute {plan.compute}), lesson {LESSON}; random weights, so every "
          "turn runs to max_new_tokens: this measures decode cost per step, not search behaviour")
    phases: dict = {}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        folder = work / "model"
        cfg = tier_config(plan, folder, work / "unused")
        with phase("build", plan, phases) as row:
            params = row["params"] = build_model(plan, folder)
        _free(plan.device)
        with phase("load", plan, phases):
            model, tok = load(plan, folder, cfg)
        with phase("rollout", plan, phases) as row:
            res = run_rollout(model, tok, cfg, row)
        with phase("update", plan, phases) as row:
            run_update(model, tok, cfg, res, row)
        del res
        _free(plan.device)
        with phase("train", plan, phases) as row:
            run_train_loop(plan, folder, work, (model, tok), row)
    result = {"device": device, "device_speed": dataclasses.asdict(speed) if speed else None, "smoke": plan.smoke,
              "tier": TIER, "lesson": LESSON, "compute_dtype": str(plan.compute).removeprefix("torch."),
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
              "model": {"params": params, **plan.shape}, "settings": _settings(cfg), "phases": phases,
              "assumptions": assumptions()}
    result["figures"] = figures(result)
    result["total_seconds"] = sum(p["seconds"] for p in phases.values())
    return result


def assumptions() -> dict:
    """What the estimate assumes (tiers.py), beside the figures measured against it."""
    return {"T4_DECODE_STEP_S": tiers.T4_DECODE_STEP_S, "DECODE_HOST_S": tiers.DECODE_HOST_S,
            "DECODE_GB": tiers.DECODE_GB, "UPDATE_EFFICIENCY": tiers.UPDATE_EFFICIENCY,
            "SPEEDS": {k: dataclasses.asdict(v) for k, v in tiers.SPEEDS.items()}}


def _settings(cfg) -> dict:
    o, r = cfg.optim, cfg.rollout
    s = tiers.TIERS[TIER].settings(LESSON)
    return {"config": s["config"], "tier_overrides": s["overrides"], "prompts_per_step": o.prompts_per_step,
            "group_size": o.group_size, "max_turns": r.max_turns, "max_new_tokens": r.max_new_tokens,
            "micro_batch_size": cfg.grpo.micro_batch_size, "data": cfg.data.questions,
            "train_loop_steps": TRAIN_LOOP_STEPS}


# --------------------------------------------------------------------------- output


def _fmt(x, spec: str = ".3g", unit: str = "") -> str:
    """A figure, or n/a where this run has none (no conversion off a known GPU, no GPU memory on a CPU)."""
    return "n/a" if x is None else format(x, spec) + unit


def _cells(result: dict) -> dict[str, str]:
    """Each figure formatted once, for the printed summary and the markdown alike."""
    f, sp, t4 = result["figures"], result["device_speed"], tiers.SPEEDS["t4"]
    d, u, m, t = f["decode_step_s"], f["update_tokens_per_s"], f["peak_memory_gb"], f["lesson04_time_min"]
    return {
        "step": _fmt(d["measured"], ".3g", " s"), "step_t4": _fmt(d["t4_equivalent"], ".3g", " s"),
        "step_assumed": f"{d['assumed_t4']:.3g} s",
        "tok": _fmt(u["measured"], ",.0f", " tokens/s"), "tok_t4": _fmt(u["t4_equivalent"], ",.0f", " tokens/s"),
        "tok_assumed": f"{u['assumed_t4']:,.0f} tokens/s", "eff": _fmt(u["effective_efficiency"], ".3g"),
        "eff_assumed": f"{u['assumed_efficiency']:.3g}",
        "alloc": _fmt(m["measured_allocated"], ".2f", " GB"), "reserved": _fmt(m["measured_reserved"], ".2f", " GB"),
        "mem_est": f"{m['estimate']:.1f} GB",
        "time_t4": _fmt(t["projected_from_measured"], ".0f", " min"), "time_est": f"{t['estimate']:.0f} min",
        "bw": (f"host part kept, {tiers.DECODE_GB} GB at {t4.bandwidth_gbs:.0f}, not {sp['bandwidth_gbs']:.0f}, GB/s"
               if sp else "no conversion"),
        "fl": f"x {t4.fp16_tflops:.0f} / {sp['fp16_tflops']:.0f} TFLOP/s" if sp else "no conversion",
    }


def summary(result: dict) -> str:
    """The figures in a few printed lines."""
    c = _cells(result)
    return "\n".join([
        f"decode step: {c['step']} on this device; as a T4 {c['step_t4']} (assumed {c['step_assumed']})",
        f"update: {c['tok']}; as a T4 {c['tok_t4']} (assumed {c['tok_assumed']}); efficiency {c['eff']} "
        f"(assumed {c['eff_assumed']})",
        f"peak memory: {c['alloc']} allocated, {c['reserved']} reserved (estimate {c['mem_est']})",
        f"lesson 04 on a T4: projected {c['time_t4']} (estimate {c['time_est']})",
        f"total {result['total_seconds']:.0f} s"])


def render_markdown(result: dict) -> str:
    """docs/gpu.md's measured section: the device, each figure beside its estimate, the phases."""
    c, f, ph, s = _cells(result), result["figures"], result["phases"], result["settings"]
    what = ("a tiny smoke-run model on the CPU tier's float32: not a GPU figure" if result["smoke"] else
            f"Qwen2.5-3B-shaped with random weights, computing in {result['compute_dtype']} (the T4 tier's)")
    return "\n".join([
        f"Measured on **{result['device']}** ({result['date']}, torch {result['torch']}): {what}, "
        f"{result['model']['params'] / 1e9:.2f}B parameters. Settings: `{s['config']}` with {s['tier_overrides']}, "
        f"{s['prompts_per_step']} x {s['group_size']} trajectories, {s['max_turns'] + 1} turns of "
        f"{s['max_new_tokens']} tokens, micro-batch {s['micro_batch_size']}, data `{s['data']}`. Random weights "
        "never write a tag, so every turn runs to max_new_tokens: the rollout measures decode cost per step.",
        "",
        "| figure | measured on this device | as a T4 (tiers.estimate_seconds' model) | estimate's assumption "
        "(tiers.py) |",
        "| --- | --- | --- | --- |",
        f"| decode step, {ph['rollout']['trajectories']} rows | {c['step']} | {c['step_t4']} ({c['bw']}) | "
        f"T4_DECODE_STEP_S = {c['step_assumed']} |",
        f"| update throughput | {c['tok']} (efficiency {c['eff']}) | {c['tok_t4']} ({c['fl']}) | {c['tok_assumed']} "
        f"on a T4 (UPDATE_EFFICIENCY = {c['eff_assumed']}) |",
        f"| peak GPU memory (load, rollout, update) | {c['alloc']} allocated, {c['reserved']} reserved | the same "
        f"(memory does not scale) | {c['mem_est']} ({f['peak_memory_gb']['how']}) |",
        f"| lesson 04, whole run | | {c['time_t4']} (the estimate's arithmetic, measured speeds) | {c['time_est']} "
        f"({f['lesson04_time_min']['estimate_how']}) |",
        "",
        "| phase | seconds | peak allocated GB | peak reserved GB |",
        "| --- | --- | --- | --- |",
        *[f"| {p} | {ph[p]['seconds']:.1f} | {_fmt(ph[p]['peak_allocated_gb'], '.2f')} | "
          f"{_fmt(ph[p]['peak_reserved_gb'], '.2f')} |" for p in PHASES],
        "",
        "A decode step converts to a T4 by keeping its host's part (Python and kernel launches, the same on any GPU) "
        "and moving its memory part (DECODE_GB read at the GPU's bandwidth) to the T4's bandwidth. The update "
        "converts by tensor-core peak, as if a T4 reached the same fraction of its peak as this GPU did: a bound "
        "from below, since a big GPU is harder to keep busy with the same small matrices. So the whole run "
        "projected from it is a bound from above.",
    ])



def splice(doc: Path, section: str) -> None:
    """Replace what lies between the doc's gpu-check markers with `section`."""
    text = doc.read_text()
    head, rest = text.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    doc.write_text(f"{head}{DOC_BEGIN}\n{section}\n{DOC_END}{tail}")


def write(result: dict, out: Path | None, doc: Path | None) -> None:
    """The JSON at `out`, its markdown beside it (gpu.md: what a device run brings back), and into `doc`."""
    section = render_markdown(result)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text(section + "\n")
        print(f"wrote {out} and {out.with_suffix('.md')}")
    if doc:
        splice(doc, section)
        print(f"updated {doc}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="where to write the JSON (and its markdown beside it, .md)")
    ap.add_argument("--doc", type=Path, help="a markdown file whose gpu-check section gets the figures (GPU runs only)")
    ap.add_argument("--cpu-smoke", action="store_true", help="the same code path on the CPU, tiny model and settings")
    ap.add_argument("--render", type=Path, help="render an existing JSON into --doc (and print its summary); no run")
    args = ap.parse_args(argv)
    if args.render:
        result = json.loads(args.render.read_text())
        result["figures"] = figures(result)  # the measured phases, read with today's estimate (tiers.py)
        result["assumptions"] = assumptions()
        print(summary(result))
        write(result, None, args.doc)
        return 0
    if args.cpu_smoke and args.doc:
        ap.error("--doc takes GPU figures only; a smoke run writes --out")
    if not args.cpu_smoke and not torch.cuda.is_available():
        print("no GPU: nothing measured (gpu-check needs a CUDA GPU; --cpu-smoke runs the same path on the CPU)")
        return 0
    result = check(make_plan(args.cpu_smoke))
    print(summary(result))
    write(result, args.out, args.doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
