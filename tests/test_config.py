"""One source of settings: every choice checked, one name per key, configs that round-trip, the packaged configs."""

import dataclasses
import json
import re
import typing
from pathlib import Path

import pytest

from searchr1_lite.config import _SECTIONS, DERIVED, TrainConfig, config_path, packaged_configs


def _keys_with_choices() -> list[tuple[str, list]]:
    """(key, its choices) for every config key whose type is a Literal, found by reading the dataclasses."""
    out = []
    owners = {**{s: c for s, c in _SECTIONS.items()}, None: TrainConfig}
    for section, owner in owners.items():
        for name, hint in typing.get_type_hints(owner).items():
            if section is None and name in _SECTIONS:
                continue
            options = typing.get_args(hint) if typing.get_origin(hint) is typing.Union else (hint,)
            choices = [c for t in options if typing.get_origin(t) is typing.Literal for c in typing.get_args(t)]
            if choices:
                out.append((f"{section}.{name}" if section else name, choices))
    return out


def test_the_keys_with_choices_are_the_ones_expected():
    found = {k for k, _ in _keys_with_choices()}
    assert found == {"policy.quantization", "grpo.loss_agg", "grpo.adv_scale", "ppo.critic", "optim.schedule",
                     "report_to", "algorithm", "keep_best_by"}


@pytest.mark.parametrize("key, choices", _keys_with_choices())
def test_a_typo_in_any_key_with_choices_is_an_error_naming_key_and_choices(key, choices):
    section, _, name = key.rpartition(".")

    def value(cfg):
        return getattr(getattr(cfg, section) if section else cfg, name)

    for choice in choices:  # every valid choice loads and is the one set, as the full key and as the name alone
        assert value(TrainConfig.load(None, [f"{key}={choice}"])) == choice
        assert value(TrainConfig.load(None, [f"{name}={choice}"])) == choice
    with pytest.raises(ValueError) as e:
        TrainConfig.load(None, [f"{key}={choices[0]}x"])
    assert key in str(e.value) and all(str(c) in str(e.value) for c in choices)


def test_a_template_typo_names_the_templates(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rollout:\n  template: world-example\n")
    with pytest.raises(ValueError, match=r"bad.yaml: rollout.template must be one of paper, worked-example, "
                                         r"world-examples, world-two-hop-example, world-typed-examples, "
                                         r"world-same-searches, world-author-chain"):
        TrainConfig.load(bad)
    assert TrainConfig.load(None, ["template=world-examples"]).rollout.template == "world-examples"


def test_a_template_text_with_a_stray_brace_is_an_error_at_load():
    with pytest.raises(ValueError, match=r"rollout.template has a brace other than \{question\}"):
        TrainConfig.load(None, ["template='Context {docs}. Question: {question}'"])
    assert TrainConfig.load(None, ["template='Q: {question} A:'"]).rollout.template == "Q: {question} A:"


def test_no_name_is_in_two_sections():
    """A key may stand alone (`max_turns: 3`) only because each field name is used once across the sections."""
    names = [f.name for s, c in _SECTIONS.items() for f in dataclasses.fields(c) if f"{s}.{f.name}" not in DERIVED]
    names += [f.name for f in dataclasses.fields(TrainConfig) if f.name not in _SECTIONS]
    assert len(names) == len(set(names))


def test_a_section_with_every_line_commented_out_is_empty_not_unknown(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("rollout:\n  # temperature: 0.7\noptim:\n  max_steps: 2\n")
    cfg = TrainConfig.load(config)
    assert cfg.optim.max_steps == 2 and cfg.rollout.temperature == TrainConfig().rollout.temperature


def test_nested_and_flat_keys_mean_the_same(tmp_path):
    nested, flat = tmp_path / "nested.yaml", tmp_path / "flat.yaml"
    nested.write_text("rollout:\n  max_turns: 2\noptim:\n  schedule: cosine\nseed: 3\n")
    flat.write_text("max_turns: 2\nschedule: cosine\nseed: 3\n")
    assert TrainConfig.load(nested) == TrainConfig.load(flat)
    cfg = TrainConfig.load(nested)
    assert cfg.rollout.seed == 3 and cfg.grpo.max_response_tokens == 3 * cfg.rollout.max_new_tokens


def test_derived_values_are_refused_not_silently_replaced():
    for key, source in DERIVED.items():
        with pytest.raises(ValueError, match=f"{key} is set from"):
            TrainConfig.load(None, [f"{key}=1"])
    cfg = TrainConfig.load(None, ["temperature=0.7"])
    assert cfg.grpo.temperature == 0.7  # log-probs of the distribution sampled


@pytest.mark.parametrize("name", packaged_configs())
def test_every_packaged_config_loads_and_round_trips(name):
    cfg = TrainConfig.load(name)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert TrainConfig.load(f"configs/{name}.yaml") == cfg  # the repository's old paths still work


def test_a_run_config_from_before_the_sections_loads():
    """config.json of a run trained before the config was nested: flat keys, `chat_template` for rollout.chat."""
    old = {"model": "tiny-qwen2", "lora_r": 4, "template": "world-examples", "chat_template": False,
           "max_turns": 3, "beta": 0.0, "max_steps": 30, "output_dir": "runs/x", "report_to": "none"}
    cfg = TrainConfig.from_dict(old, "config.json")
    assert (cfg.policy.lora_r, cfg.rollout.chat, cfg.rollout.max_turns, cfg.grpo.beta) == (4, False, 3, 0.0)


def test_an_unknown_config_names_the_packaged_ones():
    with pytest.raises(FileNotFoundError, match="not one of the package's: .*tiny-cpu.*world-cpu"):
        config_path("world-gpu")
    with pytest.raises(ValueError, match=r"--set: unknown key 'max_step' \(did you mean 'max_steps'\?\)"):
        TrainConfig.load("tiny-cpu", ["max_step=3"])
    # the right name in the wrong section points to its section, not to a look-alike in the one given
    with pytest.raises(ValueError, match=r"unknown key 'rollout.max_steps' \(did you mean 'optim.max_steps'\?\)"):
        TrainConfig.load("tiny-cpu", ["rollout.max_steps=3"])
    # a key in its section is matched by its name (the section's prefix made 'optim.lr' look like 'optim.schedule'),
    # and the names other trainers use point to ours
    for given, hint in [("optim.max_stepz", "optim.max_steps"), ("optim.lr", "optim.learning_rate"),
                        ("lr", "learning_rate"), ("num_generations", "group_size"),
                        ("policy.lora_rank", "policy.lora_r")]:
        with pytest.raises(ValueError, match=rf"unknown key '{given}' \(did you mean '{hint}'\?\)"):
            TrainConfig.load("tiny-cpu", [f"{given}=1"])
    with pytest.raises(ValueError, match=r"unknown key 'optim.zzz'$"):  # nothing close: no hint
        TrainConfig.load("tiny-cpu", ["optim.zzz=1"])


def test_a_key_set_twice_in_a_config_file_is_refused_naming_both_lines(tmp_path):
    """YAML keeps the last of two equal keys silently: 3 steps above, 400 below, and 400 would train."""
    twice = tmp_path / "twice.yaml"
    twice.write_text("optim:\n  max_steps: 3\n  learning_rate: 1.0e-4\n  max_steps: 400\n")
    with pytest.raises(ValueError, match=rf"^{twice}, line 4: 'max_steps' is set twice \(first on line 2\); keep one"):
        TrainConfig.load(twice)
    twice.write_text("optim:\n  max_steps: 3\nseed: 1\noptim:\n  learning_rate: 1.0e-4\n")  # a section twice
    with pytest.raises(ValueError, match=r"line 4: 'optim' is set twice \(first on line 1\)"):
        TrainConfig.load(twice)
    twice.write_text("optim:\n  max_steps: 3\nrollout:\n  max_turns: 3\n")  # each mapping checked on its own
    assert TrainConfig.load(twice).optim.max_steps == 3


def test_a_count_below_its_least_is_refused_at_load_naming_the_file(tmp_path):
    """save_every 0 used to divide by zero after the first step's work; a group of 0 failed inside the update."""
    for key, value, says in [("save_every", 0, "save_every must be at least 1, not 0"),
                             ("group_size", 0, "optim.group_size must be at least 1"),
                             ("prompts_per_step", -1, "optim.prompts_per_step must be at least 1"),
                             ("two_hop_group_size", 0, "optim.two_hop_group_size must be at least 1"),
                             ("topk", 0, "rollout.topk must be at least 1")]:
        with pytest.raises(ValueError, match=f"^--set: {says}"):
            TrainConfig.load(None, [f"{key}={value}"])
    for key, value, says in [("top_p", 5, "rollout.top_p must be in (0, 1], not 5"),
                             ("top_p", 0, "rollout.top_p must be in (0, 1], not 0"),  # keeps no token at all
                             ("temperature", -1, "rollout.temperature must be 0 (greedy) or more"),
                             ("eval_fraction", -0.5, "data.eval_fraction must be in [0, 1)"),
                             ("learning_rate", ".nan", "optim.learning_rate must be 0 or more, and finite, not nan"),
                             ("time_budget_s", -5, "optim.time_budget_s must be 0 or more"),
                             ("micro_batch_size", 0, "grpo.micro_batch_size must be at least 1"),
                             ("lora_r", 0, "policy.lora_r must be at least 1"),
                             ("max_steps", 0, "optim.max_steps must be at least 1"),
                             # taken before, and then trained backwards (a negative norm flips the gradient), every
                             # update skipped (0/0 advantages), or silently unchunked (0 read as "no chunks")
                             ("max_grad_norm", -1, "grpo.max_grad_norm must be more than 0, and finite"),
                             ("adv_eps", 0, "grpo.adv_eps must be more than 0, and finite"),
                             ("logprob_chunk", 0, "grpo.logprob_chunk must be at least 1"),
                             ("clip_low", 1, "grpo.clip_low must be in [0, 1)"),
                             ("beta", -0.1, "grpo.beta must be 0 or more"),
                             ("kl_coef", -1, "ppo.kl_coef must be 0 or more"),
                             ("gamma", 2, "ppo.gamma must be in [0, 1]"),
                             ("lora_dropout", 2, "policy.lora_dropout must be in [0, 1)"),
                             ("lora_layers", 0, "policy.lora_layers must be at least 1"),
                             ("samples_per_eval", -1, "samples_per_eval must be at least 0"),
                             ("extra_search_cost", -1, "extra_search_cost must be 0 or more"),
                             # taken before, and then every trajectory cut at its first token, no passage inserted,
                             # a LoRA update reversed, or no module adapted, with nothing said
                             ("max_total_tokens", 0, "rollout.max_total_tokens must be at least 1, not 0"),
                             ("max_obs_tokens", -5, "rollout.max_obs_tokens must be at least 1, not -5"),
                             ("lora_alpha", -3, "policy.lora_alpha must be more than 0, and finite"),
                             ("weight_decay", -1, "optim.weight_decay must be 0 or more"),
                             ("lora_targets", "[]", "policy.lora_targets must be 'all-linear' or a non-empty list")]:
        with pytest.raises(ValueError, match=f"^--set: {re.escape(says)}"):
            TrainConfig.load(None, [f"{key}={value}"])
    edges = TrainConfig.load(None, ["time_budget_s=0", "learning_rate=0", "temperature=0", "top_p=1",  # all meant
                                    "logprob_chunk=null", "lora_layers=null", "beta=0", "clip_low=0", "lam=0"])
    assert (edges.optim.time_budget_s, edges.optim.learning_rate, edges.rollout.temperature) == (0, 0, 0)
    with pytest.raises(ValueError, match="^--set: optim.learning_rate must be float"):  # not "tiny-cpu: ..."
        TrainConfig.load("tiny-cpu", ["max_steps=2", "learning_rate=abc"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("save_every: 0\n")
    with pytest.raises(ValueError, match=f"^{bad}: save_every must be at least 1"):
        TrainConfig.load(bad)
    ok = TrainConfig.load(None, ["eval_every=0", "max_turns=0", "two_hop_group_size=null", "save_every=1"])
    assert (ok.eval_every, ok.rollout.max_turns, ok.optim.two_hop_group_size) == (0, 0, None)
    with pytest.raises(ValueError, match="save_every must be at least 1"):
        TrainConfig(save_every=0)  # built in code, as the lessons do
    section = tmp_path / "section.yaml"
    section.write_text("optim: 5\n")  # a section given one value: named as a section, not an unknown key
    for args in ((section,), (None, ["optim=5"])):
        with pytest.raises(ValueError, match=r"'optim' is a section: it takes keys .*--set optim\.max_steps="):
            TrainConfig.load(*args)


def test_a_home_folder_in_output_dir_or_index_is_the_home_folder():
    """Quoted, or in a YAML file, "~/runs/x" reached the code as it is, and a folder named "~" appeared here."""
    cfg = TrainConfig.load(None, ["output_dir=~/runs/x", "index=~/idx"])
    home = Path.home()
    assert (cfg.output_dir, cfg.data.index) == (str(home / "runs" / "x"), str(home / "idx"))
    assert TrainConfig.from_dict(cfg.to_dict()).output_dir == cfg.output_dir  # its config.json says the same


def test_a_set_value_that_is_not_yaml_says_to_quote_it():
    """The help writes lists as [q_proj, v_proj]; unquoted, the shell splits it; YAML's error was a traceback."""
    for item in ("lora_targets=[q_proj,", "seed=[1", "template={x"):
        with pytest.raises(ValueError, match=rf"^--set {re.escape(repr(item))}: not a YAML value \(.*\); .*quotes.*"
                                             rf"--set '{item.split('=')[0]}=\.\.\.'$"):
            TrainConfig.load(None, [item])


def test_values_written_as_python_or_as_a_comma_list_are_named_in_yaml_terms():
    """`train --help` shows defaults as YAML (null, true); a Python `None` is a string to YAML, and a comma list of
    module names is one pattern to peft, which matched nothing and failed only once the model had loaded."""
    from searchr1_lite.cli import _config_keys

    keys = _config_keys()
    assert "quantization=null" in keys and "gradient_checkpointing=false" in keys and 'response_prefix=""' in keys
    assert "None" not in keys and "True" not in keys
    with pytest.raises(ValueError, match=r"eval_every must be int, got 'None' \(YAML's none is null\)"):
        TrainConfig.load(None, ["eval_every=None"])
    with pytest.raises(ValueError, match=r"time_budget_s must be float or null, got 'abc'$"):
        TrainConfig.load(None, ["time_budget_s=abc"])
    with pytest.raises(ValueError, match=r"lora_targets must be .*e\.g\. \[q_proj, v_proj\], not 'q_proj,v_proj'"):
        TrainConfig.load(None, ["lora_targets=q_proj,v_proj"])
    assert TrainConfig.load(None, ["lora_targets=[q_proj, v_proj]"]).policy.lora_targets == ["q_proj", "v_proj"]
    assert TrainConfig.load(None, ["output_dir=2024"]).output_dir == "2024"  # YAML read a number
