"""One run's settings in one place. Each default is defined once, in the dataclass of the module that uses it, and
train, eval, the demo and the CLI all read it from there.

    TrainConfig
      policy:  PolicyConfig    model, 4-bit, LoRA, gradient checkpointing            (here)
      data:    DataConfig      questions; a corpus, an index folder or a service     (here)
      rollout: RolloutConfig   turns, tokens, sampling, the prompt template          (rollout.py: the paper's values)
      grpo:    GRPOConfig      clip, KL, aggregation, advantages, micro-batch        (grpo.py: the paper's values)
      ppo:     PPOConfig       GAE, KL in the reward, the critic (algorithm: ppo)   (ppo.py: the authors' values)
      optim:   OptimConfig     steps, questions x group, learning rate, schedule     (here)
      and for the run: output_dir, seed, the loss mask, the format bonus, checkpoints, evaluation, trackers

A YAML file (`searchr1_lite/configs/`, or any path) nests keys by section; a key may also stand alone
(`max_turns: 3`, `--set max_turns=3`), since no name is used in two sections (`temperature` and `seed` are copied into
`grpo` and `rollout` from one place, and cannot be set there). Every value is checked against its
type, and every key with choices against them: a typo is an error that names the key and the valid choices.
A run saves its config as `config.json`; `searchr1-lite eval --run` rebuilds the run's exact prompt from it.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .grpo import GRPOConfig
from .models import LORA_ALPHA, LORA_DROPOUT, LORA_R, LORA_TARGETS
from .ppo import PPOConfig
from .rollout import RolloutConfig
from .suggest import closest, meant


@dataclass
class PolicyConfig:
    model: str = "smollm2-135m-instruct"  # offline preset, local folder or hub id
    quantization: Literal["4bit"] | None = None  # bitsandbytes NF4
    lora_r: int = LORA_R
    lora_alpha: int = LORA_ALPHA
    lora_dropout: float = LORA_DROPOUT
    lora_targets: str | list[str] = LORA_TARGETS
    lora_layers: int | None = None  # LoRA on the top n layers only: the backward pass stops there (CPU speed)
    gradient_checkpointing: bool = False
    adapter: str | None = None  # start from this saved adapter (a finished run's `adapter` folder), not a fresh one:
    # a curriculum's next phase. Its LoRA shape is the saved one's; a resumed run starts from its checkpoint instead


@dataclass
class DataConfig:
    # hotpotqa-distractor as both: HotpotQA (hub) questions over a corpus of their own paragraphs
    questions: str = "fanoutqa"  # fanoutqa | nq_hotpotqa_train | hotpotqa-distractor | jsonl path | world[:seed=..]
    corpus: str = "wiki-vital"  # wiki-vital | hotpotqa-distractor | wiki-18 | path | world[:...] (its passages)
    index: str | None = None  # a saved index folder; None = build BM25 over `corpus` in memory
    retriever_url: str | None = None  # a running retrieval service instead
    eval_fraction: float = 0.2  # held-out share of the questions (a world has its own splits)


@dataclass
class OptimConfig:
    """Paper: lr 1e-6, full fine-tuning. LoRA wants ~1e-5 and up."""

    max_steps: int = 3
    prompts_per_step: int = 2  # questions a step, each sampled group_size times
    group_size: int = 5
    # world questions only (an issue-18 experiment): a step's questions come in pairs that differ only in whether
    # to search again, a two-hop question and its single-hop one about the same person (world.contrast_pairs)
    paired_questions: bool = False
    # world questions only (an issue-18 experiment): a two-hop question is sampled this many times instead (None:
    # group_size), for more chances that one sample searches twice and is right
    two_hop_group_size: int | None = None
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "constant"
    time_budget_s: float | None = None  # stop early (adapter saved, evaluated) rather than end a step past this many
    # seconds of training, summed over resumes; None = run max_steps


# Values the loop sets from others: given in a config they would be silently replaced, so they are refused.
DERIVED = {"rollout.seed": "seed (each step samples with its own seed from it)",
           "grpo.temperature": "rollout.temperature (log-probs are of the distribution sampled)",
           "grpo.max_response_tokens": "rollout.max_turns and rollout.max_new_tokens"}

# Counts a run divides by or samples that many of: below these it would fail later, after a step's work is done.
AT_LEAST = {"optim.prompts_per_step": 1, "optim.group_size": 1, "optim.two_hop_group_size": 1, "save_every": 1,
            "eval_every": 0, "eval_size": 1, "rollout.max_new_tokens": 1, "rollout.topk": 1, "rollout.max_turns": 0,
            "optim.max_steps": 1, "optim.warmup_steps": 0, "grpo.micro_batch_size": 1, "policy.lora_r": 1,
            "grpo.logprob_chunk": 1, "policy.lora_layers": 1, "samples_per_eval": 0,  # (null: no chunks, all layers)
            # below these every trajectory is cut at its first token, or no passage is inserted, and nothing says so
            "rollout.max_total_tokens": 1, "rollout.max_obs_tokens": 1}
_INF = float("inf")
_NON_NEGATIVE = (lambda v: 0 <= v < _INF, "0 or more, and finite")
# Values outside these ranges were taken and then sampled, split or stepped nonsense (NaN fails every comparison).
WITHIN = {"rollout.top_p": (lambda v: 0 < v <= 1, "in (0, 1]"),
          "rollout.temperature": (lambda v: v >= 0, "0 (greedy) or more"),
          "data.eval_fraction": (lambda v: 0 <= v < 1, "in [0, 1)"),
          "optim.learning_rate": _NON_NEGATIVE,  # 0: replay a step
          "optim.time_budget_s": (lambda v: v >= 0, "0 or more (or null: no budget)"),  # 0: the demo's, spent
          # a negative norm flips the gradient; an eps of 0 makes a group of equal rewards 0/0
          "grpo.max_grad_norm": (lambda v: 0 < v < _INF, "more than 0, and finite"),
          "grpo.adv_eps": (lambda v: 0 < v < _INF, "more than 0, and finite"),
          "grpo.clip_low": (lambda v: 0 <= v < 1, "in [0, 1)"), "grpo.clip_high": (lambda v: v >= 0, "0 or more"),
          "grpo.beta": _NON_NEGATIVE,
          "ppo.kl_coef": _NON_NEGATIVE,
          "ppo.gamma": (lambda v: 0 <= v <= 1, "in [0, 1]"), "ppo.lam": (lambda v: 0 <= v <= 1, "in [0, 1]"),
          "ppo.value_clip": (lambda v: v > 0, "more than 0"),
          "ppo.critic_lr": _NON_NEGATIVE,
          "policy.lora_dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
          "policy.lora_alpha": (lambda v: 0 < v < _INF, "more than 0, and finite"),  # LoRA's scale, alpha / r
          # peft reads a text as one pattern: "q_proj,v_proj" would match no module, and fail only at the model
          "policy.lora_targets": (lambda v: len(v) > 0 and not (isinstance(v, str) and "," in v),
                                  "'all-linear' or a non-empty list of module names, e.g. [q_proj, v_proj]"),
          "optim.weight_decay": _NON_NEGATIVE,
          "extra_search_cost": _NON_NEGATIVE}


@dataclass
class TrainConfig:
    """One run. Loadable from YAML, overridable with `--set key=value`, saved beside the run as config.json."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    algorithm: Literal["grpo", "ppo"] = "grpo"  # ppo: a critic and GAE instead of group baselines (uses `ppo`)
    output_dir: str = "runs/default"
    seed: int = 0
    mask_inserted: bool = True  # False = the paper's ablation: inserted passages are trained on too
    format_bonus: float = 0.0  # reward.py: a wrong answer in a well-formed trajectory earns this
    extra_search_cost: float = 0.0  # reward.py: a right answer loses this for each search after the first
    save_every: int = 1
    eval_every: int = 0  # 0 = only at the end
    # the final `adapter` is that of the evaluation (eval_every) with the best held-out EM, the earliest of equal ones,
    # not the last step's: early stopping, for runs that learn and then unlearn (docs/multi-hop/); best.json names it
    keep_best: bool = False
    # what "best" means: `eval_em`, over all held-out questions, or `worst_hop`, the lowest EM of any hop count
    # (eval_em_1hop, eval_em_2hop), so that a checkpoint that trades one kind of question for the other does not win
    keep_best_by: Literal["eval_em", "worst_hop"] = "eval_em"
    eval_size: int = 8  # held-out questions evaluated (greedy)
    samples_per_eval: int = 2  # trajectories kept in samples.jsonl per evaluation
    progress: bool = True
    report_to: Literal["none", "tensorboard", "wandb"] = "none"  # their packages are not dependencies

    def __post_init__(self) -> None:
        for path, least in AT_LEAST.items():
            value = self._value(path)
            if value is not None and value < least:
                raise ValueError(f"{path} must be at least {least}, not {value!r}")
        for path, (ok, says) in WITHIN.items():
            value = self._value(path)
            if value is not None and not ok(value):
                raise ValueError(f"{path} must be {says}, not {value!r}")
        self.grpo = self.grpo_config()
        self.rollout = dataclasses.replace(self.rollout, seed=self.seed)
        # "~/runs/x" means the home folder, as the shell would have it, also quoted or in a YAML file (else a folder
        # named "~" appears here); the questions and corpus paths are expanded where they are read
        self.output_dir = str(Path(self.output_dir).expanduser())
        if self.data.index:
            self.data = dataclasses.replace(self.data, index=str(Path(self.data.index).expanduser()))

    def _value(self, path: str) -> Any:
        section, _, name = path.rpartition(".")
        return getattr(getattr(self, section) if section else self, name)

    def grpo_config(self) -> GRPOConfig:
        """The update's settings with the values derived from the rollout filled in. `train()` calls this when it
        starts, so a field changed after construction (`cfg.rollout.temperature = 0.7`) is never stale."""
        return dataclasses.replace(self.grpo, temperature=self.rollout.temperature,
                                   max_response_tokens=(self.rollout.max_turns + 1) * self.rollout.max_new_tokens)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain values, without the derived ones: what config.json holds and `from_dict` reads back."""
        values = dataclasses.asdict(self)
        for key in DERIVED:
            section, name = key.split(".")
            values[section].pop(name)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "config") -> TrainConfig:
        nested: dict[str, Any] = {}
        for key, value in _flatten(values):
            path = _resolve(key, where)
            if path in DERIVED:
                raise ValueError(f"{where}: {path} is set from {DERIVED[path]}; set that instead")
            section, name = path.split(".") if "." in path else (None, path)
            owner = _SECTIONS[section] if section else cls
            value = _coerce(value, typing.get_type_hints(owner)[name], f"{where}: {path}")
            if path == "rollout.template":
                _check_template(value, where)
            (nested.setdefault(section, {}) if section else nested)[name] = value
        sections = {s: _SECTIONS[s](**nested.pop(s, {})) for s in _SECTIONS}
        try:
            return cls(**sections, **nested)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    def updated(self, values: dict[str, Any], where: str = "config") -> TrainConfig:
        """A copy with `values` (keys as in a config file: `max_steps` or `optim.max_steps`) set, all checked."""
        current = dict(_flatten(self.to_dict()))
        return TrainConfig.from_dict({**current, **{_resolve(k, where): v for k, v in values.items()}}, where)

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
        """A YAML file (a path, or the name of one of the package's configs) with `key=value` overrides."""
        import yaml

        values: dict[str, Any] = {}
        where = "config"
        if path:
            file = config_path(path)
            where = str(path)
            try:
                values = _read_yaml(file.read_text(encoding="utf-8"), path) or {}
            except yaml.YAMLError as e:
                raise ValueError(f"{path}: not valid YAML ({e})") from None
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
            if not isinstance(values, dict):
                raise ValueError(f"{path}: expected a mapping of config keys")
        values = {_resolve(k, where): v for k, v in _flatten(values)}  # full paths: an override replaces its key
        overridden = {}
        for item in overrides or []:
            if "=" not in item:
                raise ValueError(f"--set {item!r}: expected key=value")
            key, raw = item.split("=", 1)
            key = _resolve(key.strip(), "--set")
            try:
                overridden[key] = yaml.safe_load(raw)
            except yaml.YAMLError as e:  # e.g. `--set lora_targets=[q_proj, v_proj]`, split in two by the shell
                problem = getattr(e, "problem", None) or str(e).splitlines()[0]
                raise ValueError(f"--set {item!r}: not a YAML value ({problem}); a value with spaces or brackets "
                                 f"needs quotes around the whole option: --set '{key.split('.')[-1]}=...'") from None
        if overridden:
            cls.from_dict(overridden, "--set")  # checked alone first: a wrong value is blamed on --set, not the file
        return cls.from_dict({**values, **overridden}, where)


_SECTIONS = {"policy": PolicyConfig, "data": DataConfig, "rollout": RolloutConfig, "grpo": GRPOConfig,
             "ppo": PPOConfig, "optim": OptimConfig}
_TOP = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in _SECTIONS]
# every key's full path, and each name alone (no settable name is in two sections: a test keeps it so)
_PATHS = {**{f"{s}.{f.name}": f"{s}.{f.name}" for s, c in _SECTIONS.items() for f in dataclasses.fields(c)},
          **{f.name: f"{s}.{f.name}" for s, c in _SECTIONS.items() for f in dataclasses.fields(c)
             if f"{s}.{f.name}" not in DERIVED},
          **{name: name for name in _TOP}}
_RENAMED = {"chat_template": "rollout.chat"}  # flat config.json files written before the sections existed
# names other trainers (TRL, veRL, the paper's scripts) use, for the hint of an unknown key
_OTHER_NAMES = {"lr": "learning_rate", "steps": "max_steps", "num_steps": "max_steps", "total_steps": "max_steps",
                "batch_size": "prompts_per_step", "num_generations": "group_size", "n_agent": "group_size",
                "top_k": "topk", "retriever_topk": "topk", "max_turn": "max_turns", "kl_loss_coef": "beta",
                "warmup": "warmup_steps", "lora_rank": "lora_r", "max_tokens": "max_new_tokens"}


def key_for(name: str) -> str | None:
    """The config key a name means: the name if it is one, ours for another trainer's (`lr`), else None."""
    name = _OTHER_NAMES.get(name, name)
    return name if name in _PATHS else None


def _read_yaml(text: str, path: str | Path) -> Any:
    """yaml.safe_load, except that a key given twice in one mapping is an error (YAML keeps the last silently, so
    `max_steps: 3` above `max_steps: 400` would train 400 steps)."""
    import yaml

    class Strict(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            key, line = loader.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            if key in first:
                raise ValueError(f"{path}, line {line}: {key!r} is set twice (first on line {first[key]}); keep one")
            first[key] = line
        return loader.construct_mapping(node, deep)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml.load(text, Loader=Strict)  # noqa: S506 (a SafeLoader)


def config_path(name: str | Path) -> Path:
    """A config file: a path that exists, else one of the package's configs by name (`world-cpu`, `tiny-cpu.yaml`,
    or `configs/tiny-cpu.yaml` as the repository had them)."""
    path = Path(name)
    if path.is_dir():
        inside = [f.name for f in (path / "config.json", path / "config.yaml") if f.is_file()]
        raise IsADirectoryError(f"config {str(name)!r} is a folder; give a YAML file"
                                + (f", e.g. {path / inside[0]} (a run's)" if inside else ""))
    if path.exists():
        return path
    packaged = resources.files("searchr1_lite") / "configs"
    candidate = packaged / (path.name if path.suffix == ".yaml" else path.name + ".yaml")
    if candidate.is_file():
        return Path(str(candidate))
    names = sorted(p.name.removesuffix(".yaml") for p in packaged.iterdir() if p.name.endswith(".yaml"))
    raise FileNotFoundError(f"config {str(name)!r}: no such file, and not one of the package's: {', '.join(names)}")


def packaged_configs() -> list[str]:
    folder = resources.files("searchr1_lite") / "configs"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def _flatten(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in values.items():
        if key in _SECTIONS and not prefix and value is None:  # a section whose lines are all commented out
            continue
        if key in _SECTIONS and not prefix and isinstance(value, dict):
            out += _flatten(value, key + ".")
        else:
            out.append((prefix + str(key), value))
    return out


def _resolve(key: str, where: str) -> str:
    if key in _RENAMED:
        return _RENAMED[key]
    if key in _PATHS:
        return _PATHS[key]
    if key in _SECTIONS:  # `optim: 5`, or `--set optim=5`
        example = next(f.name for f in dataclasses.fields(_SECTIONS[key]))
        raise ValueError(f"{where}: {key!r} is a section: it takes keys (`{key}:` then `  {example}: ...` on the "
                         f"next line, or --set {key}.{example}=...), not one value")
    section, _, name = key.rpartition(".")
    if section and name in _PATHS:  # the right name in the wrong section: `rollout.max_steps`
        raise ValueError(f"{where}: unknown key {key!r}{meant(_PATHS[name])}")
    # by the name alone (`optim.lr` would otherwise look most like `optim.schedule`), in the form given
    names = [k for k in _PATHS if "." not in k]
    close = _OTHER_NAMES.get(name) or closest(name, names)
    hint = meant(_PATHS[close] if section else close) if close else ""
    raise ValueError(f"{where}: unknown key {key!r}{hint}")


def _check_template(value: str, where: str) -> None:
    from .prompt import template_names

    if "{question}" not in value and value not in template_names():
        raise ValueError(f"{where}: rollout.template must be one of {', '.join(template_names())} "
                         f"(or a template text with {{question}}), not {value!r}")
    if "{question}" in value:
        try:
            value.format(question="x")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"{where}: rollout.template has a brace other than {{question}} ({e!r}); write a literal "
                             "brace as {{ or }}") from None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, _UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    choices = [c for t in options if typing.get_origin(t) is Literal for c in typing.get_args(t)]
    if choices:
        if value in choices:
            return value
        valid = ", ".join(map(str, choices)) + (" or null" if type(None) in options else "")
        raise ValueError(f"{where} must be one of {valid}, not {value!r}")
    for t in options:
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if t is float and isinstance(value, str):  # YAML 1.1 reads "2e-5" as a string
            try:
                return float(value)
            except ValueError:
                pass
        if t in (int, str, bool) and type(value) is t:
            return value
        if t is str and type(value) in (int, float):  # `output_dir: 2024`, which YAML reads as a number
            return str(value)
        if typing.get_origin(t) is list and isinstance(value, list):
            return value
    names = " or ".join("null" if t is type(None) else getattr(t, "__name__", str(t)) for t in options)
    hint = " (YAML's none is null)" if value == "None" else ""
    raise ValueError(f"{where} must be {names}, got {value!r}{hint}")


_UnionType = type(int | None)
