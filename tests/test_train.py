"""The training loop: config handling, a CPU run, exact resume, the 4-bit path, crash safety of checkpoints."""

import json
import os
import re
import shutil

import pytest
import torch
from safetensors.torch import load_file

from searchr1_lite.cli import main
from searchr1_lite.train import TIMING_METRICS, TrainConfig, latest_checkpoint, train

TIMING = set(TIMING_METRICS)


def even_share(trajectory, example):
    """A reward that varies within a group for a random-weight model (EM is always 0 for it): the share of sampled
    tokens with an even id. It makes the policy move, so the resume test compares weights that changed."""
    ids = trajectory.sampled_ids()
    return sum(i % 2 == 0 for i in ids) / max(1, len(ids))


def _cfg(tmp_path, name, **kw):
    return TrainConfig.load("tiny-cpu", [f"output_dir={tmp_path / name}"] + [f"{k}={v}" for k, v in kw.items()])


def _rows(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rat: 0.1\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown key 'learning_rat' \(did you mean 'learning_rate'\?\)"):
        TrainConfig.load(bad)
    with pytest.raises(ValueError, match="max_steps must be int, got 'three'"):
        TrainConfig.load(None, ["max_steps=three"])
    with pytest.raises(ValueError, match="expected key=value"):
        TrainConfig.load(None, ["max_steps"])
    cfg = TrainConfig.load("qwen2.5-3b-qlora", ["learning_rate=2e-5", "quantization=null"])
    assert cfg.optim.learning_rate == 2e-5 and cfg.policy.quantization is None and cfg.optim.group_size == 5


def test_settings_that_would_learn_nothing_are_refused_before_the_run_folder(tmp_path):
    """Temperature 0 made every log-prob NaN and every step a skip; a GRPO group of one has advantage 0 everywhere
    (its sample is its own baseline). PPO, whose critic is the baseline, may sample each question once, and a
    rollout may decode greedily (`searchr1-lite rollout --temperature 0`)."""
    for sets, says in [({"temperature": 0}, "rollout.temperature must be above 0 for training, not 0"),
                       ({"group_size": 1}, "optim.group_size 1 gives GRPO nothing to learn"),
                       ({"two_hop_group_size": 1}, "optim.two_hop_group_size 1 gives GRPO nothing to learn")]:
        with pytest.raises(ValueError, match=f"^{re.escape(says)}"):
            train(_cfg(tmp_path, "refused", **sets))
        assert not (tmp_path / "refused").exists()
    ppo = _cfg(tmp_path, "ppo", algorithm="ppo", group_size=1, max_steps=1, save_every=1, eval_size=1)
    assert (train(ppo) / "adapter").is_dir()


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """tiny-cpu's 4 steps uninterrupted: what every interrupted-and-resumed run here must end as (trained once)."""
    return train(_cfg(tmp_path_factory.mktemp("straight"), "straight"), reward_fn=even_share)


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path, straight):
    split = _cfg(tmp_path, "split")
    train(split, stop_after=2, reward_fn=even_share)
    assert latest_checkpoint(tmp_path / "split").name == "checkpoint-2"
    with open(tmp_path / "split" / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "reward_me')  # a kill in the middle of writing step 3's row
    with pytest.raises(FileExistsError, match="--resume"):
        train(split, reward_fn=even_share)
    saved = (tmp_path / "split" / "config.json").read_text()
    other = _cfg(tmp_path, "split", lora_r=8, learning_rate=0.5)  # a resume used to take these and rewrite the file
    with pytest.raises(ValueError, match=r"these settings differ: optim.learning_rate .* -> 0.5; policy.lora_r 4 -> 8"):
        train(other, resume=True, reward_fn=even_share)
    assert (tmp_path / "split" / "config.json").read_text() == saved
    train(split, resume=True, reward_fn=even_share)
    a = load_file(straight / "adapter" / "adapter_model.safetensors")
    b = load_file(tmp_path / "split" / "adapter" / "adapter_model.safetensors")
    first = load_file(straight / "checkpoint-1" / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], first[k]) for k in a)  # the weights did move
    assert _rows(straight) == _rows(tmp_path / "split") and len(_rows(straight)) == 4
    assert all(r["skipped"] == 0 for r in _rows(straight)) and any(r["grad_norm"] > 0 for r in _rows(straight))


def test_a_metrics_line_cut_short_by_a_kill_is_skipped_and_a_bad_one_before_it_named(tmp_path, caplog):
    """A kill (or a reader racing the writer) can cut the last row short: readers skip it, a resume drops it; a bad
    line with rows after it is not a cut write, so it is an error naming the file and the line."""
    from searchr1_lite.checkpoint import drop_rows_after, read_rows
    from searchr1_lite.cli import _finished
    from searchr1_lite.plots import load_metrics

    path = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "reward_mean": s / 10} for s in (1, 2, 3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 4, "rew')
    assert read_rows(path) == rows and "line (4) is cut short" in caplog.text
    assert list(load_metrics(tmp_path)["step"]) == [1, 2, 3] and not _finished(tmp_path, 4) and _finished(tmp_path, 3)
    assert drop_rows_after(tmp_path, 2) == rows[:2]  # the rows a resume goes on from (no samples file: none)
    assert path.read_text() == "".join(json.dumps(r) + "\n" for r in rows[:2])
    path.write_text(json.dumps(rows[0]) + '\n{"step": 2,\n' + json.dumps(rows[2]) + "\n")
    with pytest.raises(ValueError, match=f"{path}, line 2: not a JSON row"):
        read_rows(path)


@pytest.mark.slow
def test_ppo_trains_and_resumes_exactly_with_its_critic(tmp_path):
    """A separate critic: its head, its optimizer and its own adapter all come back (a shared one has no adapter)."""
    kw = {"algorithm": "ppo", "critic": "separate", "max_steps": 3}
    whole = train(_cfg(tmp_path, "whole", **kw), reward_fn=even_share)
    train(_cfg(tmp_path, "split", **kw), stop_after=1, reward_fn=even_share)
    split = train(_cfg(tmp_path, "split", **kw), resume=True, reward_fn=even_share)
    rows = _rows(whole)
    assert rows == _rows(split) and len(rows) == 3
    assert all(r["skipped"] == 0 and r["value_loss"] > 0 for r in rows) and rows[0]["value_mean"] == 0.0
    heads = [torch.load(run / "checkpoint-3" / "critic.pt", weights_only=True)["head"] for run in (whole, split)]
    assert all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0]) and heads[0]["score.weight"].abs().sum() > 0
    a, b = (load_file(run / "checkpoint-3" / "critic-adapter" / "adapter_model.safetensors") for run in (whole, split))
    first = load_file(whole / "checkpoint-1" / "critic-adapter" / "adapter_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a) and any(not torch.equal(a[k], first[k]) for k in a)


@pytest.mark.slow
def test_a_time_budget_stops_after_the_last_step_that_fits(tmp_path):
    from searchr1_lite.runtime import over_budget

    run = train(_cfg(tmp_path, "short", time_budget_s=0.001))  # no step fits: one runs, then it stops
    rows = _rows(run)
    assert len(rows) == 1 and rows[0]["stopped"].startswith("time budget") and "eval_em" in rows[0]
    assert (run / "adapter" / "adapter_model.safetensors").exists() and latest_checkpoint(run).name == "checkpoint-1"
    rows = _rows(train(_cfg(tmp_path, "ample", time_budget_s=1e6)))
    assert len(rows) == 4 and not any("stopped" in r for r in rows)
    # spent 60 s; the next step ~ the last three's mean (20 s); the final evaluation ~ half a rollout (8 s / 2)
    assert not over_budget(100.0, [30.0, 10.0, 20.0], rollout_seconds=8.0, eval_share=0.5)  # 60 + 20 + 4 <= 100
    assert over_budget(100.0, [30.0, 10.0, 20.0], rollout_seconds=50.0, eval_share=0.5)  # 60 + 20 + 25 > 100
    assert not over_budget(None, [1e9], rollout_seconds=1e9, eval_share=1.0)  # no budget: never


def test_peak_memory_is_in_mib_on_linux_and_macos_and_none_without_resource(monkeypatch):
    """ru_maxrss is KiB on Linux and bytes on macOS (a laptop's rows said 1024x the memory), and Windows has no
    `resource` module (every training step raised ImportError)."""
    import resource
    import sys

    from searchr1_lite.runtime import peak_memory_mb

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(resource, "getrusage", lambda who: type("Usage", (), {"ru_maxrss": 3 * 2**20})())
    monkeypatch.setattr(sys, "platform", "linux")
    assert peak_memory_mb() == 3 * 1024  # 3 GiB in KiB
    monkeypatch.setattr(sys, "platform", "darwin")
    assert peak_memory_mb() == 3  # 3 MiB in bytes
    monkeypatch.setitem(sys.modules, "resource", None)  # as on Windows: `import resource` raises ImportError
    assert peak_memory_mb() is None


@pytest.mark.slow
def test_a_resumed_run_counts_the_time_spent_before_it(tmp_path):
    """The budget is the run's, not the process's: steps before a resume count (their rows' step_seconds)."""
    cfg = _cfg(tmp_path, "resumed", time_budget_s=1e5)
    train(cfg, stop_after=2)
    path = tmp_path / "resumed" / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({**r, "step_seconds": 6e4}) + "\n" for r in rows))  # as if 2 x 60,000 s
    rows = _rows(train(cfg, resume=True))
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[-1]["stopped"].startswith("time budget: 120")


@pytest.mark.slow
def test_a_kill_during_checkpoint_write_leaves_the_last_one(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, "crash", max_steps=3)
    train(cfg, stop_after=1, reward_fn=even_share)
    import searchr1_lite.train as train_mod

    def dies_midway(run, step, *a, **k):  # what a SIGKILL mid-save leaves: a half-written temp folder
        (run / f".checkpoint-{step}.tmp1").mkdir()
        (run / f".checkpoint-{step}.tmp1" / "state.pt").write_bytes(b"\x00partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "save_checkpoint", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, resume=True, reward_fn=even_share)
    assert latest_checkpoint(tmp_path / "crash").name == "checkpoint-1"
    monkeypatch.undo()
    train(cfg, resume=True, reward_fn=even_share)  # resumes from step 1; the row of the lost step 2 is redone once
    assert [r["step"] for r in _rows(tmp_path / "crash")] == [1, 2, 3]


def test_4bit_lora_path_on_cpu(tmp_path):
    """bitsandbytes NF4 runs on CPU: rollouts in 4-bit, then gradients that are really there (bitsandbytes' CPU fast
    path, taken after an eval-mode forward, has no backward: load_policy keeps it off)."""
    from bitsandbytes.nn import Linear4bit

    run = train(_cfg(tmp_path, "q4", quantization="4bit", max_steps=2), reward_fn=even_share)
    rows = _rows(run)
    assert len(rows) == 2 and any(r["grad_norm"] > 0 for r in rows) and not any(r["skipped"] for r in rows)
    assert (run / "adapter" / "adapter_model.safetensors").exists()
    from searchr1_lite.models import load_policy

    model, _ = load_policy("tiny-qwen2", quantization="4bit", adapter=str(run / "adapter"))
    assert isinstance(model.base_model.model.model.layers[0].self_attn.q_proj.base_layer, Linear4bit)


def test_cli_train_writes_metrics_checkpoint_and_adapter(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["train", "--config", "tiny-cpu", "--set", "max_steps=2", f"output_dir={out}", "--merge"]) == 0
    assert (out / "metrics.jsonl").exists() and (out / "checkpoint-2" / "state.pt").exists()
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out / "merged")  # plain transformers, no peft
    assert merged.config.model_type == "qwen2"
    assert main(["train", "--config", "tiny-cpu", "--set", "bogus=1"]) == 2
    assert "unknown key 'bogus'" in capsys.readouterr().err


def test_report_to_names_the_missing_package(tmp_path):
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    with pytest.raises(ValueError, match="report_to=wandb needs its package: pip install wandb"):
        train(_cfg(tmp_path, "wb", report_to="wandb", max_steps=1))
    with pytest.raises(ValueError, match="report_to must be one of none, tensorboard, wandb"):
        train(_cfg(tmp_path, "wb2", report_to="mlflow", max_steps=1))


def test_a_nonfinite_loss_skips_the_update_and_says_so(tmp_path, caplog):
    """A reward that turns NaN makes the loss NaN: that step is skipped (weights kept), logged, and training goes on;
    the collapse check names the last good checkpoint (row 3 is sampled from checkpoint-2, row 2 from checkpoint-1)."""
    def nan_at_step_3(trajectory, example, calls=[0]):
        calls[0] += 1
        return float("nan") if 9 <= calls[0] <= 12 else even_share(trajectory, example)  # the 3rd step's 4 rewards

    with caplog.at_level("WARNING", logger="searchr1_lite"):
        run = train(_cfg(tmp_path, "nan", max_steps=4), reward_fn=nan_at_step_3)
    rows = _rows(run)
    assert [r["skipped"] for r in rows] == [0, 0, 1, 0] and rows[3]["grad_norm"] > 0
    assert "step 3: the loss or gradient norm is not finite; update skipped" in caplog.text
    kept = load_file(run / "checkpoint-2" / "adapter" / "adapter_model.safetensors")
    after_skip = load_file(run / "checkpoint-3" / "adapter" / "adapter_model.safetensors")
    assert all(torch.equal(kept[k], after_skip[k]) for k in kept)
    assert [("collapse" in r) for r in rows] == [False, False, True, False]
    assert rows[2]["collapse"].startswith("non_finite at step 3") and "loss=nan" in rows[2]["collapse"]
    assert rows[2]["collapse"].endswith("last good checkpoint: checkpoint-1")
    assert "collapse check: non_finite at step 3" in caplog.text


def test_turns_cut_at_the_token_cap_are_counted_and_named(tmp_path, caplog):
    """A random-weight model never writes a stop string, so every turn runs out of max_new_tokens: the row counts it,
    and so does the evaluation, and the log names the setting to raise."""
    with caplog.at_level("WARNING", logger="searchr1_lite"):
        rows = _rows(train(_cfg(tmp_path, "cut", max_steps=1, eval_every=1)))
    assert rows[0]["cut_turn_rate"] == 1.0 and rows[0]["eval_cut_turn_rate"] == 1.0
    assert rows[0]["valid_action_rate"] == rows[0]["eval_valid_action_rate"] == 0.0
    cap = _cfg(tmp_path, "cap").rollout.max_new_tokens
    assert f"turns ran out of rollout.max_new_tokens ({cap})" in caplog.text
    assert f"--set max_new_tokens={2 * cap} on the command line" in caplog.text  # larger than the cap that cut them


def test_out_of_memory_halves_the_work_and_goes_on(tmp_path, monkeypatch, caplog, capsys):
    """CUDA out-of-memory, injected (this machine has no GPU): a rollout too big is redone in halves, an update too
    big lowers the micro-batch for the rest of the run; at one trajectory / micro-batch 1 it stops with advice."""
    import searchr1_lite.grpo as grpo_mod
    import searchr1_lite.rollout as rollout_mod

    real_rollout, real_step = rollout_mod.rollout, grpo_mod.grpo_step
    seen = {"rollout": [], "step": []}

    def rollout_fits_2(model, tokenizer, questions, *a, **k):
        seen["rollout"].append(len(questions))
        if len(questions) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_rollout(model, tokenizer, questions, *a, **k)

    def step_fits_1(model, batch, advantages, optimizer, cfg, **k):
        seen["step"].append(cfg.micro_batch_size)
        if cfg.micro_batch_size > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real_step(model, batch, advantages, optimizer, cfg, **k)

    monkeypatch.setattr(rollout_mod, "rollout", rollout_fits_2)
    monkeypatch.setattr(grpo_mod, "grpo_step", step_fits_1)
    with caplog.at_level("WARNING", logger="searchr1_lite"):
        run = train(_cfg(tmp_path, "oom", max_steps=2, micro_batch_size=4), reward_fn=even_share)
    rows = _rows(run)
    assert len(rows) == 2 and [r["micro_batch_size"] for r in rows] == [1, 1] and rows[0]["grad_norm"] > 0
    assert seen["rollout"][:3] == [4, 2, 2] and seen["step"][:4] == [4, 2, 1, 1]  # halved once, then kept
    assert "micro_batch_size lowered to 2" in caplog.text and "retrying in parts of 2 and 2" in caplog.text

    def never_fits(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(rollout_mod, "rollout", never_fits)
    with pytest.raises(RuntimeError, match="out of memory rolling out a single trajectory: lower group_size"):
        train(_cfg(tmp_path, "oom-stop", max_steps=1), reward_fn=even_share)
    capsys.readouterr()
    assert main(["train", "--config", "tiny-cpu", "--set", f"output_dir={tmp_path / 'oom-cli'}", "max_steps=1"]) == 2
    err = capsys.readouterr().err  # the advice, not a traceback
    assert err.startswith("searchr1-lite train: error: out of memory rolling out a single trajectory: lower group_size")


KILLER = """
import os, signal, sys, torch
import searchr1_lite.grpo as grpo
from searchr1_lite.train import TrainConfig, train
where, at = sys.argv[2], int(sys.argv[3])
def even_share(t, e):
    ids = t.sampled_ids()
    return sum(i % 2 == 0 for i in ids) / max(1, len(ids))
if where == "step":  # killed in the middle of step `at`: after the weights moved, before anything is written
    real, calls = grpo.grpo_step, [0]
    def step(*a, **k):
        out = real(*a, **k)
        calls[0] += 1
        if calls[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    grpo.grpo_step = step
else:  # killed while writing checkpoint `at`: the adapter is on disk, state.pt half written
    real_save = torch.save
    def save(obj, f, *a, **k):
        if str(f).endswith("state.pt") and f".checkpoint-{at}." in str(f):
            open(f, "wb").write(b"PK\\x03\\x04partial")
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *a, **k)
    torch.save = save
cfg = TrainConfig.load("tiny-cpu", [f"output_dir={sys.argv[1]}", "max_steps=4"])
train(cfg, resume=where == "none", reward_fn=even_share)  # the second run: --resume ("fresh": uninterrupted)
"""


def _run_killer(tmp_path, run, where, at):
    """KILLER in a new process on one thread. With two, a CPU kernel's result can differ in the last bit between two
    processes on the same inputs (measured: the step after a resume, 3 of 6 runs; one thread: 0 of 6), and on a
    random-weight model's flat distribution a last bit can change a sampled token, so runs are compared at one."""
    import subprocess
    import sys

    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(script), str(run), where, str(at)], capture_output=True, text=True,
                          env=env)


@pytest.fixture(scope="module")
def straight_one_thread(tmp_path_factory):
    """tiny-cpu's 4 steps uninterrupted, in a new process on one thread as the killed and resumed runs below."""
    tmp = tmp_path_factory.mktemp("straight-one-thread")
    done = _run_killer(tmp, tmp / "run", "fresh", 0)
    assert done.returncode == 0, done.stderr[-2000:]
    return tmp / "run"


@pytest.mark.slow
@pytest.mark.parametrize("where, at", [("step", 3), ("checkpoint", 2), ("checkpoint", 1)])
def test_sigkill_then_resume_loses_nothing(tmp_path, straight_one_thread, where, at):
    """A real SIGKILL (no handler runs) mid-step or mid-checkpoint; the next run resumes from the last complete
    checkpoint and ends bit-identical to an uninterrupted run, every metrics row present exactly once."""
    straight = straight_one_thread
    run = tmp_path / "run"
    first = _run_killer(tmp_path, run, where, at)
    assert first.returncode == -9, first.stderr[-2000:]
    assert [r["step"] for r in _rows(run)] == list(range(1, at if where == "step" else at + 1))
    if at > 1:
        assert latest_checkpoint(run).name == f"checkpoint-{at - 1}"
    else:
        assert latest_checkpoint(run) is None
    again = _run_killer(tmp_path, run, "none", 0)
    assert again.returncode == 0, again.stderr[-2000:]
    assert _rows(run) == _rows(straight)  # no row lost, none twice
    a = load_file(straight / "adapter" / "adapter_model.safetensors")
    b = load_file(run / "adapter" / "adapter_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list(run.glob(".checkpoint-*"))  # the half-written temp folder is gone


def test_the_gpu_config_trains_a_step_on_cpu_with_a_tiny_model(tmp_path):
    """qwen2.5-3b-qlora as written (4-bit, gradient checkpointing, micro-batch 2, group 5, 4 turns) with
    tiny-qwen2 for the 3B model, the synthetic world for NQ+HotpotQA, 2 prompts for 8 and short turns."""
    overrides = ["model=tiny-qwen2", "questions=world", "corpus=world", "max_steps=1", "prompts_per_step=2",
                 "max_new_tokens=12",
                 "max_obs_tokens=32", "eval_size=2", f"output_dir={tmp_path / 'gpu'}", "progress=false"]
    cfg = TrainConfig.load("qwen2.5-3b-qlora", overrides)
    assert (cfg.policy.quantization, cfg.policy.gradient_checkpointing, cfg.grpo.micro_batch_size) == ("4bit", True, 2)
    rows = _rows(train(cfg, reward_fn=even_share))
    assert len(rows) == 1 and rows[0]["grad_norm"] > 0 and not rows[0]["skipped"]


def test_every_question_is_served_once_per_epoch():
    from searchr1_lite.train import pick_questions

    n, per_step, steps = 7, 3, 14  # steps cross epoch boundaries mid-step (7 is not a multiple of 3)
    served = [i for s in range(steps) for i in pick_questions(n, s * per_step, per_step, seed=5)]
    epochs = [served[e * n : (e + 1) * n] for e in range(steps * per_step // n)]
    assert all(sorted(e) == list(range(n)) for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1  # each epoch shuffled anew
    assert served[:n] == pick_questions(n, 0, n, seed=5)  # the same draw, however the steps are cut


def test_paired_questions_serve_each_pair_side_by_side_once_an_epoch():
    from searchr1_lite.train import step_questions

    pairs = [(0, 5), (1, 6), (2, 7)]
    served = [step_questions(pairs, s * 4, 4, seed=2) for s in range(6)]  # 2 pairs a step, epochs of 3 pairs
    flat = [tuple(step[i : i + 2]) for step in served for i in (0, 2)]
    assert all(p in pairs for p in flat)
    assert sorted(flat[:3]) == sorted(flat[3:6]) == pairs


def test_a_paired_run_trains_each_two_hop_question_beside_its_single_hop_one(tmp_path, monkeypatch):
    """...in groups of their own sizes where two_hop_group_size is set (the advantages centred group by group)."""
    import searchr1_lite.grpo as grpo_mod

    seen, rewards, advantages = [], [], []
    real_step = grpo_mod.grpo_step

    def spy(model, batch, adv, *a, **k):
        advantages.append(adv.clone())
        return real_step(model, batch, adv, *a, **k)

    def record(trajectory, example):  # what each step trained on, group after group
        seen.append((example.meta["hops"], example.meta["person"]))
        rewards.append(float(len(rewards) % 3 == 0))  # varies within every group
        return rewards[-1]

    monkeypatch.setattr(grpo_mod, "grpo_step", spy)
    cfg = _cfg(tmp_path, "paired", questions="world:seed=0,people=60", corpus="world:seed=0,people=60",
               paired_questions="true", max_steps=2, group_size=2, two_hop_group_size=3)
    train(cfg, reward_fn=record)
    steps = [seen[i : i + 5] for i in range(0, 10, 5)]  # 2 steps: a two-hop question x 3 samples, its single-hop x 2
    assert len(seen) == 10 and all([h for h, _ in s] == [2, 2, 2, 1, 1] and len({p for _, p in s}) == 1 for s in steps)
    r = torch.tensor(rewards)
    want = [torch.cat([(g - g.mean()) / (g.std() + 1e-6) for g in (r[i : i + 3], r[i + 3 : i + 5])]) for i in (0, 5)]
    torch.testing.assert_close(torch.cat(advantages), torch.cat(want))
    with pytest.raises(ValueError, match="prompts_per_step must be even"):
        train(_cfg(tmp_path, "odd", questions="world", corpus="world", paired_questions="true", prompts_per_step=3))
    with pytest.raises(ValueError, match="no two-hop question whose single-hop one"):
        train(_cfg(tmp_path, "fanout", questions="fanoutqa", paired_questions="true"))
    with pytest.raises(ValueError, match="two_hop_group_size: 'fanoutqa' has no two-hop training question"):
        train(_cfg(tmp_path, "fanout-groups", questions="fanoutqa", two_hop_group_size=3))
    with pytest.raises(ValueError, match="two_hop_group_size must be at least 1"):
        train(_cfg(tmp_path, "no-groups", questions="world:seed=0,people=60", corpus="world:seed=0,people=60",
                   two_hop_group_size=0))


def test_checkpoints_keep_the_cuda_generators(monkeypatch, tmp_path):
    """LoRA dropout on a GPU draws from CUDA's generators: a resumed GPU run restores them too. The CUDA device is
    the one thing outside this machine, so its four functions are stood in for."""
    from searchr1_lite import checkpoint as train_mod
    from searchr1_lite.models import load_policy

    model, _ = load_policy("tiny-qwen2", lora_r=2, lora_alpha=4, lora_targets=["q_proj"], device="cpu")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    gpus = [torch.tensor([1, 2], dtype=torch.uint8), torch.tensor([3, 4], dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [g.clone() for g in gpus])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.extend)
    state = train_mod.torch_rng_state()
    gpus[0][0] = 99  # the generators move on after the save
    train_mod.restore_torch_rng(state)
    assert [g.tolist() for g in restored] == [[1, 2], [3, 4]]
    restored.clear()
    train_mod.restore_torch_rng({"torch_rng": torch.get_rng_state()})  # a checkpoint from before: CPU state only
    assert restored == []
    # and through a real checkpoint on disk (torch.load with weights_only=True)
    saved = train_mod.save_checkpoint(tmp_path, 1, model, opt, sched, 2, {"seed": 0})
    gpus[1][0] = 77
    assert train_mod.restore_checkpoint(saved, opt, sched) == (1, 2)
    assert [g.tolist() for g in restored] == [[99, 2], [3, 4]]  # the states as they were at the save


@pytest.mark.parametrize("mask_inserted", [True, False])
def test_inserted_passages_get_a_loss_only_in_the_no_mask_ablation(tmp_path, monkeypatch, mask_inserted):
    """The update trains what the policy sampled: its gen_mask is the rollout's, 0 on the inserted <information>
    block, with the sampling log-probs. The paper's no-mask ablation (mask_inserted: false) puts a loss on every
    response token, the block included, and trains on-policy (inserted tokens have no sampling log-prob). A scripted
    policy searches the run's real retriever, so every trajectory holds a block; the prompt and padding never count."""
    import searchr1_lite.grpo as grpo_mod
    import searchr1_lite.rollout as rollout_mod
    from searchr1_lite.models import qwen25_tokenizer
    from searchr1_lite.scripted import ScriptedLM

    script = ["<search> Mona Lisa </search>", "<answer> Leonardo </answer>"]
    results, batches, real_rollout, real_step = [], [], rollout_mod.rollout, grpo_mod.grpo_step

    def scripted(model, tokenizer, questions, *a, **k):
        results.append(real_rollout(ScriptedLM(tokenizer, [script]), tokenizer, questions, *a, **k))
        return results[-1]

    def spy(model, batch, *a, **k):
        batches.append(batch)
        return real_step(model, batch, *a, **k)

    monkeypatch.setattr(rollout_mod, "rollout", scripted)
    monkeypatch.setattr(grpo_mod, "grpo_step", spy)
    cfg = _cfg(tmp_path, "mask", max_steps=1, max_new_tokens=16, mask_inserted=str(mask_inserted).lower())
    train(cfg, reward_fn=even_share)
    (res, *_), (batch,) = results, batches  # (after the step's rollout: the final evaluation's)
    tok = qwen25_tokenizer()
    for i, t in enumerate(res.trajectories):
        assert t.searches == 1 and t.answer == "Leonardo" and batch.input_ids[i, : len(t.ids)].tolist() == t.ids
        mask = batch.gen_mask[i].tolist()
        start = t.prompt_len + t.turns[0].generated
        block = range(start, start + t.turns[0].inserted)
        assert tok.decode(t.ids[block.start : block.stop]).startswith("\n\n<information>Doc 1(Title: ")
        assert not any(mask[: t.prompt_len]) and not any(mask[len(t.ids) :])  # the prompt, the padding
        if mask_inserted:
            assert mask[: len(t.ids)] == t.gen_mask and not any(mask[j] for j in block)
        else:
            assert all(mask[t.prompt_len : len(t.ids)]) and all(mask[j] for j in block)
    if mask_inserted:
        assert torch.equal(batch.logprobs, res.tensors(tok.pad_token_id)["logprobs"])
    else:
        assert batch.logprobs is None


@pytest.mark.parametrize("adv_scale", ["group", "none"])
def test_adv_scale_reaches_the_update(tmp_path, monkeypatch, adv_scale):
    """adv_scale: none (Dr. GRPO) trains on rewards minus the group mean, unscaled; group divides by the group std."""
    import searchr1_lite.grpo as grpo_mod

    rewards, seen = [], []
    real_step = grpo_mod.grpo_step

    def spy(model, batch, advantages, *a, **k):
        seen.append(advantages.clone())
        return real_step(model, batch, advantages, *a, **k)

    def reward(t, e):
        rewards.append(even_share(t, e))
        return rewards[-1]

    monkeypatch.setattr(grpo_mod, "grpo_step", spy)
    train(_cfg(tmp_path, adv_scale, max_steps=1, group_size=4, adv_scale=adv_scale), reward_fn=reward)
    r = torch.tensor(rewards).view(-1, 4)
    centred = (r - r.mean(1, keepdim=True)).view(-1)
    scale = 1.0 if adv_scale == "none" else (r.std(1, keepdim=True) + 1e-6).expand(-1, 4).reshape(-1)
    assert centred.abs().max() > 0 and len(seen) == 1
    torch.testing.assert_close(seen[0], centred / scale)


def test_extra_search_cost_reaches_the_advantages_through_each_trajectorys_searches(tmp_path, monkeypatch):
    """A scripted policy answers every question right, trajectory i of a group after i searches (0, 1, 2): with
    extra_search_cost the rewards differ only by the searches after the first, counted from the real rollout by the
    real reward, and the update sees exactly those advantages."""
    import searchr1_lite.grpo as grpo_mod
    import searchr1_lite.rollout as rollout_mod
    from searchr1_lite.scripted import ScriptedLM

    answer = "<answer> Leonardo </answer>"
    scripts = [[answer], ["<search> Mona Lisa </search>", answer],
               ["<search> Mona Lisa </search>", "<search> painter </search>", answer]]
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"question": f"Who painted picture {i}?", "golden_answers": ["Leonardo"]})
                                 + "\n" for i in range(10)))
    seen, results, real_step, real_rollout = [], [], grpo_mod.grpo_step, rollout_mod.rollout

    def scripted(model, tokenizer, questions, *a, **k):
        results.append(real_rollout(ScriptedLM(tokenizer, scripts), tokenizer, questions, *a, **k))
        return results[-1]

    def spy(model, batch, advantages, *a, **k):
        seen.append(advantages)
        return real_step(model, batch, advantages, *a, **k)

    monkeypatch.setattr(grpo_mod, "grpo_step", spy)
    monkeypatch.setattr(rollout_mod, "rollout", scripted)
    train(_cfg(tmp_path, "cost", max_steps=1, group_size=3, prompts_per_step=2, extra_search_cost=0.25,
               questions=str(questions), max_turns=3, max_new_tokens=16))
    assert [(t.searches, t.answer) for t in results[0].trajectories] == [(0, "Leonardo"), (1, "Leonardo"),
                                                                         (2, "Leonardo")] * 2
    r = torch.tensor([1.0, 1.0, 0.75] * 2).view(-1, 3)  # the second search costs 0.25; the first is free
    torch.testing.assert_close(seen[0], ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)).view(-1))


@pytest.mark.slow
def test_runs_on_one_loaded_policy_start_from_a_fresh_adapter_each(tmp_path):
    """A lesson loads the model once and trains two runs on it: the second run must not start from the first's
    trained adapter, and a resumed run must continue from its checkpoint's adapter."""
    from searchr1_lite.models import load_policy

    cfg = _cfg(tmp_path, "a", max_steps=2)
    p = cfg.policy
    policy = load_policy(p.model, lora_r=p.lora_r, lora_alpha=p.lora_alpha, lora_targets=p.lora_targets)
    first = train(cfg, reward_fn=even_share, policy=policy)
    second = train(_cfg(tmp_path, "b", max_steps=2), reward_fn=even_share, policy=policy)
    a = load_file(first / "adapter" / "adapter_model.safetensors")
    b = load_file(second / "adapter" / "adapter_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a) and _rows(first) == _rows(second)
    assert any(r["grad_norm"] > 0 for r in _rows(first))  # it trained: the equality above is not trivial

    split = _cfg(tmp_path, "split", max_steps=2)
    train(split, reward_fn=even_share, policy=policy, stop_after=1)
    train(split, reward_fn=even_share, policy=policy, resume=True)
    c = load_file(tmp_path / "split" / "adapter" / "adapter_model.safetensors")
    assert all(torch.equal(a[k], c[k]) for k in a) and _rows(first) == _rows(tmp_path / "split")


def test_a_run_can_start_from_another_runs_adapter(tmp_path, straight):
    """policy.adapter (a curriculum's next phase): the run starts from those weights, loaded or reused in place; at
    learning rate 0 they are its final weights. A folder without an adapter is named before the model loads."""
    from searchr1_lite.models import load_policy

    start = straight / "checkpoint-2" / "adapter"
    saved = load_file(start / "adapter_model.safetensors")
    run = train(_cfg(tmp_path, "phase2", adapter=str(start), learning_rate=0.0, max_steps=1), reward_fn=even_share)
    assert all(torch.equal(saved[k], v) for k, v in load_file(run / "adapter" / "adapter_model.safetensors").items())
    cfg = _cfg(tmp_path, "reused", adapter=str(start), learning_rate=0.0, max_steps=1)
    p = cfg.policy
    policy = load_policy(p.model, lora_r=p.lora_r, lora_alpha=p.lora_alpha, lora_targets=p.lora_targets)
    reused = train(cfg, reward_fn=even_share, policy=policy)
    assert all(torch.equal(saved[k], v) for k, v in load_file(reused / "adapter" / "adapter_model.safetensors").items())
    sampled = ("reward_mean", "reward_std", "response_length_mean", "total_length_mean", "searches_mean")
    assert [{k: r[k] for k in sampled} for r in _rows(reused)] == [{k: r[k] for k in sampled} for r in _rows(run)]
    # the same weights sampled the same step
    with pytest.raises(FileNotFoundError, match=r"policy.adapter .*nowhere: no saved adapter there"):
        train(_cfg(tmp_path, "bad", adapter=str(tmp_path / "nowhere"), max_steps=1))


@pytest.mark.slow
def test_a_forked_run_replays_the_steps_that_followed(tmp_path):
    from searchr1_lite.checkpoint import fork_run

    run = train(_cfg(tmp_path, "run", max_steps=3), reward_fn=even_share)
    fork = fork_run(run, 1, tmp_path / "fork")
    assert [r["step"] for r in _rows(fork)] == [1]
    train(_cfg(tmp_path, "fork", max_steps=3), reward_fn=even_share, resume=True)
    assert _rows(fork) == _rows(run)
    with pytest.raises(FileNotFoundError, match="no checkpoint at step 7"):
        fork_run(run, 7, tmp_path / "nope")


def test_a_resume_falls_back_to_the_newest_complete_checkpoint(tmp_path, caplog):
    """`latest` naming a checkpoint that is gone or lacks a file (deleted by hand, damaged): the newest complete one,
    said in a warning. Deleting a damaged checkpoint, as its error says, must not restart the run from step 0."""
    run = tmp_path / "run"
    for step in (1, 2):
        _fake_checkpoint(run / f"checkpoint-{step}")
    (run / "latest").write_text("checkpoint-2")
    assert latest_checkpoint(run).name == "checkpoint-2" and not caplog.records
    (run / "checkpoint-2" / "python_rng.json").unlink()
    assert latest_checkpoint(run).name == "checkpoint-1"
    assert "names checkpoint-2, which lacks python_rng.json: resuming from checkpoint-1" in caplog.text
    shutil.rmtree(run / "checkpoint-2")
    (run / "latest").unlink()
    assert latest_checkpoint(run).name == "checkpoint-1" and "latest is gone" in caplog.text
    shutil.rmtree(run / "checkpoint-1")
    assert latest_checkpoint(run) is None  # no pointer, no checkpoint: a run that saved none yet
    (run / "latest").write_text("checkpoint-1")
    with pytest.raises(FileNotFoundError, match="has no complete checkpoint to resume from instead"):
        latest_checkpoint(run)


def test_a_new_run_is_not_written_over_another_runs_checkpoints(tmp_path):
    """A run folder whose metrics.jsonl is gone still holds checkpoints: a new run there replaced some of them and
    left the rest, two runs mixed in one folder."""
    run = tmp_path / "run"
    _fake_checkpoint(run / "checkpoint-2")
    (run / "latest").write_text("checkpoint-2")
    with pytest.raises(FileExistsError, match=r"run holds another run's checkpoint-2, latest \(but no metrics.jsonl\)"):
        train(_cfg(tmp_path, "run", max_steps=1), reward_fn=even_share)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-2", "latest"]  # nothing written, nothing removed


def test_a_metrics_row_edited_by_hand_is_named_before_a_resume_rewrites_anything(tmp_path):
    """A resume read the rows with no check: a step written as "2" or a time as "abc" was a TypeError traceback."""
    from searchr1_lite.checkpoint import drop_rows_after

    run = tmp_path / "run"
    run.mkdir()
    good = {"step": 1, "reward_mean": 0.5, "rollout_seconds": 1.0, "update_seconds": 1.0}
    for row, says in [({**good, "step": "2"}, r"line 2: a row needs its step number, not '2'"),
                      ({**good, "step": 2, "rollout_seconds": "x"}, r"row 2: rollout_seconds is 'x', not a number")]:
        text = json.dumps(good) + "\n" + json.dumps(row) + "\n"
        (run / "metrics.jsonl").write_text(text)
        with pytest.raises(ValueError, match=rf"^{re.escape(str(run / 'metrics.jsonl'))}, {says}; repair or delete"):
            drop_rows_after(run, 1)
        assert (run / "metrics.jsonl").read_text() == text  # nothing rewritten


@pytest.mark.slow
def test_a_resume_says_when_the_checkpoints_own_row_was_cut_short(tmp_path, caplog):
    """A kill while the last row was written leaves its checkpoint: the resume goes on from there, and says that the
    step has no row, where it said that the step would be written again."""
    run = train(_cfg(tmp_path, "run", max_steps=2), reward_fn=even_share)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text(lines[0] + "\n" + lines[1][:20])
    train(_cfg(tmp_path, "run", max_steps=3), reward_fn=even_share, resume=True)
    assert [r["step"] for r in _rows(run)] == [1, 3]
    assert "the rows of the last 1 step(s) before checkpoint-2 are missing" in caplog.text


def test_world_questions_over_another_worlds_corpus_are_refused():
    """questions=world:seed=1 over corpus=world (seed 0) trained to the end with no answer findable."""
    from searchr1_lite.config import DataConfig
    from searchr1_lite.train import split_questions

    with pytest.raises(ValueError, match=r"'world:seed=1' and data.corpus 'world' are different worlds \(seed 1 vs 0"):
        split_questions(DataConfig(questions="world:seed=1", corpus="world"), None)
    same = split_questions(DataConfig(questions="world:seed=0,two_hop_share=0", corpus="world"), None)  # the mix may
    assert same[0] and all(q.meta["hops"] == 1 for q in same[0])  # differ, the people and places may not


@pytest.mark.slow
def test_a_damaged_python_rng_json_is_named_with_what_to_do(tmp_path):
    run = train(_cfg(tmp_path, "run", max_steps=1), reward_fn=even_share)
    (run / "checkpoint-1" / "python_rng.json").write_text("[3, [1, 2")  # cut short
    with pytest.raises(ValueError, match=r"checkpoint-1/python_rng.json: damaged \(.*\)\. Delete .*checkpoint-1 to "):
        train(_cfg(tmp_path, "run", max_steps=2), reward_fn=even_share, resume=True)
    # the failed resume leaves the run's config.json as it was, not with the resume's max_steps
    assert json.loads((run / "config.json").read_text())["optim"]["max_steps"] == 1


def test_a_checkpoint_without_its_adapter_weights_is_passed_over(tmp_path, caplog):
    """peft saves adapter_config.json first: a checkpoint with the config and not the weights is incomplete, and a
    resume from it failed in peft, which read the folder as a hub id."""
    run = tmp_path / "run"
    for step in (1, 2):
        _fake_checkpoint(run / f"checkpoint-{step}")
    (run / "latest").write_text("checkpoint-2")
    (run / "checkpoint-2" / "adapter" / "adapter_model.safetensors").unlink()
    assert latest_checkpoint(run).name == "checkpoint-1"
    assert "lacks adapter/adapter_model.safetensors" in caplog.text


@pytest.mark.slow
def test_damaged_adapter_weights_are_named_with_what_to_do(tmp_path):
    run = train(_cfg(tmp_path, "run", max_steps=2), reward_fn=even_share)
    weights = run / "checkpoint-2" / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a copy or a disk cut short
    with pytest.raises(ValueError, match=rf"^{re.escape(str(weights))}: not a readable adapter .*delete that "
                                         "checkpoint to resume from the one before"):
        train(_cfg(tmp_path, "run", max_steps=3), reward_fn=even_share, resume=True)


@pytest.mark.slow
def test_a_run_resumed_after_its_last_checkpoint_was_deleted_ends_as_a_straight_run(tmp_path):
    straight = train(_cfg(tmp_path, "straight", max_steps=3), reward_fn=even_share)
    run = train(_cfg(tmp_path, "run", max_steps=3), reward_fn=even_share)
    shutil.rmtree(run / "checkpoint-3")
    shutil.rmtree(run / "checkpoint-2")  # `latest` names checkpoint-3: the resume takes checkpoint-1
    train(_cfg(tmp_path, "run", max_steps=3), reward_fn=even_share, resume=True, stop_after=1)
    assert [r["step"] for r in _rows(run)] == [1, 2]  # went on from step 1, not from 0
    train(_cfg(tmp_path, "run", max_steps=3), reward_fn=even_share, resume=True)
    assert _rows(run) == _rows(straight)


def _fake_checkpoint(folder):
    """The files a resume reads, empty: enough for the functions that only choose a checkpoint."""
    from searchr1_lite.checkpoint import CHECKPOINT_FILES

    for name in CHECKPOINT_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).touch()


def test_the_fork_point_is_a_checkpoint_with_a_step_after_it(tmp_path):
    """Lesson 04 forks at its tier's step; a student's shorter run, or one that saves less often, forks at the
    nearest checkpoint that has a step after it to replay."""
    from searchr1_lite.checkpoint import fork_point

    def run_with(rows, saved):
        shutil.rmtree(tmp_path / "run", ignore_errors=True)
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "metrics.jsonl").write_text("".join(json.dumps({"step": s}) + "\n" for s in rows))
        for s in saved:
            _fake_checkpoint(tmp_path / "run" / f"checkpoint-{s}")
        return tmp_path / "run"

    assert fork_point(run_with(range(1, 7), range(1, 7)), 4) == 4  # the tier's own
    assert fork_point(run_with(range(1, 4), range(1, 4)), 4) == 2  # max_steps=3: the last step has nothing after it
    assert fork_point(run_with(range(1, 37), [10, 20, 30, 36]), 10) == 10
    assert fork_point(run_with(range(1, 21), [10, 20]), 25) == 10
    assert fork_point(run_with(range(1, 21), [5, 10, 20]), 3) == 5  # none at or below: the first one above
    _fake_checkpoint(tmp_path / "run" / "checkpoint-15")
    (tmp_path / "run" / "checkpoint-15" / "python_rng.json").unlink()  # damaged: not a checkpoint
    assert fork_point(tmp_path / "run", 17) == 10
    with pytest.raises(ValueError, match=r"no checkpoint before its last step \(8; checkpoints at: 8\).*save_every"):
        fork_point(run_with(range(1, 9), [8]), 10)  # save_every 10, max_steps 8: only the final save


def test_step_metrics_per_hop_count_and_per_question_type():
    from types import SimpleNamespace

    from searchr1_lite.data import QAExample
    from searchr1_lite.train import _by_question

    kinds = [(1, "birthplace"), (1, "birthplace"), (1, "author"), (2, "birth_country")]
    examples = [QAExample("", "q", ["a"], {"hops": h, "kind": k}) for h, k in kinds]
    trajectories = [SimpleNamespace(searches=s) for s in (1, 2, 1, 2)]
    got = _by_question(trajectories, examples, [1.0, 0.0, 1.0, 0.0])
    assert got == pytest.approx({"em_1hop": 2 / 3, "searches_1hop": 4 / 3, "em_2hop": 0.0, "searches_2hop": 2.0,
                                 "em_birthplace": 0.5, "searches_birthplace": 1.5, "em_author": 1.0,
                                 "searches_author": 1.0, "em_birth_country": 0.0, "searches_birth_country": 2.0})


def test_the_best_evaluation_is_the_best_held_out_em_and_the_earliest_of_equals():
    from searchr1_lite.train import best_evaluation

    rows = [{"step": 1}, {"step": 2, "eval_em": 0.25}, {"step": 3}, {"step": 4, "eval_em": 0.5},
            {"step": 5, "eval_em": 0.5}, {"step": 6, "eval_em": 0.125}]
    assert best_evaluation(rows)["step"] == 4
    assert best_evaluation(rows[:3])["step"] == 2 and best_evaluation(rows[:1]) is None
    assert best_evaluation(rows, by="worst_hop")["step"] == 4  # no hop counts: the same as EM


def test_worst_hop_keeps_the_checkpoint_that_does_not_trade_one_hop_count_for_the_other():
    """docs/multi-hop: a policy that answers every single-hop question and no two-hop one has the higher EM over
    all questions (0.5) than one at 0.45 on both; `worst_hop` keeps the second."""
    from searchr1_lite.train import best_evaluation, evaluation_score

    rows = [{"step": 5, "eval_em": 0.5, "eval_em_1hop": 1.0, "eval_em_2hop": 0.0},
            {"step": 10, "eval_em": 0.45, "eval_em_1hop": 0.45, "eval_em_2hop": 0.45, "eval_em_birthplace": 0.1},
            {"step": 15, "eval_em": 0.45, "eval_em_1hop": 0.9, "eval_em_2hop": 0.0}]
    assert best_evaluation(rows)["step"] == 5
    assert best_evaluation(rows, by="worst_hop")["step"] == 10  # a question type's EM (0.1) is not a hop count's
    assert [evaluation_score(r, "worst_hop") for r in rows] == [0.0, 0.45, 0.0]


def test_keep_best_makes_the_final_adapter_that_of_the_best_evaluation(tmp_path):
    """A random-weight model's held-out EM is 0 at every evaluation, so the best is the first, step 1 (the earliest
    of equals), while the reward moved the weights after it: the final adapter is checkpoint-1's, not step 3's."""
    run = train(_cfg(tmp_path, "best", max_steps=3, eval_every=1, keep_best=True, save_every=10),
                reward_fn=even_share)
    assert [r["eval_em"] for r in _rows(run)] == [0.0, 0.0, 0.0]
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    final = load_file(run / "adapter" / "adapter_model.safetensors")
    first = load_file(run / "checkpoint-1" / "adapter" / "adapter_model.safetensors")
    last = load_file(run / "checkpoint-3" / "adapter" / "adapter_model.safetensors")
    assert all(torch.equal(first[k], v) for k, v in final.items())
    assert not all(torch.equal(last[k], v) for k, v in final.items())
    assert json.loads((run / "best.json").read_text()) == {"step": 1, "by": "eval_em", "score": 0.0, "last_step": 3,
                                                           "last_score": 0.0}
    with pytest.raises(ValueError, match="keep_best: true needs eval_every > 0"):
        train(_cfg(tmp_path, "no-evals", keep_best=True))
    assert not (tmp_path / "no-evals").exists()  # refused before the run's folder is made


def test_the_final_adapter_appears_whole_or_not_at_all(tmp_path):
    """`adapter` marks a finished run (the demo skips its training, `eval --run` loads it): a save cut short, here
    after the config and before the weights, must leave no `adapter` folder behind, and the next save succeeds."""
    from searchr1_lite.models import is_saved_adapter
    from searchr1_lite.train import _save_final_adapter

    class CutShort:
        def __init__(self, cut: bool):
            self.cut = cut

        def save_pretrained(self, folder):
            os.makedirs(folder)
            with open(os.path.join(folder, "adapter_config.json"), "w") as f:
                f.write("{}")
            if self.cut:
                raise KeyboardInterrupt  # a Ctrl-C or a kill between the two files
            with open(os.path.join(folder, "adapter_model.safetensors"), "wb") as f:
                f.write(b"weights")

    with pytest.raises(KeyboardInterrupt):
        _save_final_adapter(tmp_path, CutShort(True), [{"step": 1}], TrainConfig())
    assert not (tmp_path / "adapter").exists()
    _save_final_adapter(tmp_path, CutShort(False), [{"step": 1}], TrainConfig())  # the leftover is no obstacle
    assert is_saved_adapter(tmp_path / "adapter") and not (tmp_path / "adapter.tmp").exists()


def test_a_run_whose_set_up_fails_leaves_no_half_made_run(tmp_path):
    """A model or data mistake found after the run's folder is made (its config.json written) takes the folder back
    out, or only the config.json where the folder was there before: `eval --run` and `--resume` took such a folder
    for a run, and their advice went in a circle."""
    from searchr1_lite.offline import HubUnavailable

    with pytest.raises(HubUnavailable, match="no-such-model"):
        train(_cfg(tmp_path, "typo", model="no-such-model"))
    assert not (tmp_path / "typo").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(FileNotFoundError, match="nope.jsonl: no such question file"):
        train(_cfg(tmp_path, "mine", questions=str(tmp_path / "nope.jsonl")))
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep"
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(FileExistsError, match="output_dir .*a-file is a file: a run is a folder"):
        train(_cfg(tmp_path, "a-file"))
