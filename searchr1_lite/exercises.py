"""The lessons' exercises, checked: each `check_*` runs your function and this package's own on the same cases.

A lesson's exercise cell holds a function to write (the instructor's copy holds the solution between
`### BEGIN SOLUTION` and `### END SOLUTION`; `make student` replaces it with `raise NotImplementedError()`). The cell
after it calls the checker here, which runs the function on a list of named cases, edge cases among them, against
the reference the package itself uses, and either prints one "✓" line or raises `ExerciseError` listing every
case that disagreed: its name, what was expected and what came back.

    01  check_top_k, check_recall_at_k
    02  check_parse_action, check_normalize_answer
    03  check_group_advantages, check_k3_kl, check_masked_grpo_loss
    03b check_gae, check_value_loss
    04  check_pick_questions, check_lr_schedule
    05  check_smooth, check_paired_p

Stuck on one? `stand_in(name)` is the package's own function in the exercise's shape, so a student can go on with
the rest of the lesson (which calls the exercise's function) and come back: `k3_kl = stand_in("k3_kl")`.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Iterable

import numpy as np
import torch

from .corpus import Passage
from .grpo import GRPOConfig, group_advantages, grpo_loss, k3_kl
from .ppo import gae, value_loss
from .prompt import parse_action
from .retrieval import exact_topk, recall_at_k
from .reward import normalize_answer


class ExerciseError(AssertionError):
    """Your function disagrees with the reference: the message names each case, what was expected and what came."""


def stand_in(name: str) -> Callable:
    """The package's own function for the exercise whose function is called `name` in its lesson, with the
    exercise's arguments: what the lesson's later cells can call until the student's own passes its checker."""
    if name not in _STAND_INS:
        raise KeyError(f"no exercise function named {name!r}: one of {', '.join(_STAND_INS)}")
    fn = _STAND_INS[name]()

    @functools.wraps(fn)
    def marked(*args, **kwargs):  # a wrapper: marking the package's function itself would mark every use of it
        return fn(*args, **kwargs)

    marked.stand_in_for = name
    return marked


def _masked_grpo_loss(logp, old_logp, ref_logp, advantages, mask, clip_low=0.2, clip_high=0.2, beta=0.0):
    cfg = GRPOConfig(clip_low=clip_low, clip_high=clip_high, beta=beta, loss_agg="seq-mean-token-mean")
    return grpo_loss(logp, old_logp, ref_logp, advantages, mask, cfg)[0]


def _lazy(module: str, attr: str) -> Callable[[], Callable]:
    def load() -> Callable:
        import importlib

        return getattr(importlib.import_module(f"searchr1_lite.{module}"), attr)

    return load


# exercise function (as each lesson names it) -> its stand-in, built when asked (train, plots, evaluate load slowly)
_STAND_INS: dict[str, Callable[[], Callable]] = {
    "top_k": lambda: exact_topk,
    "recall_at_k": lambda: recall_at_k,
    "parse_turn": lambda: parse_action,
    "normalize": lambda: normalize_answer,
    "group_advantages": lambda: lambda rewards, group_size, eps=1e-6: group_advantages(rewards, group_size, eps=eps),
    "k3_kl": lambda: k3_kl,
    "masked_grpo_loss": lambda: _masked_grpo_loss,
    "gae": lambda: gae,
    "value_loss": lambda: lambda values, old_values, returns, mask, clip=0.5: value_loss(values, old_values, returns,
                                                                                         mask, clip)[0],
    "pick_questions": _lazy("train", "pick_questions"),
    "lr_at": lambda: reference_lr,
    "smooth": _lazy("plots", "smooth"),
    "paired_p": _lazy("evaluate", "paired_sign_flip_p"),
}


def _run(fn: Callable, case: str, *args):
    try:
        return fn(*args)
    except NotImplementedError as e:
        # the function whose stub raised: masked_grpo_loss calls k3_kl, and an unwritten k3_kl is not its fault
        tb = e.__traceback__
        while tb.tb_next:
            tb = tb.tb_next
        stub = tb.tb_frame.f_code.co_name
        name = stub if stub in _STAND_INS else fn.__name__
        hint = (f" (stuck? `{name} = stand_in({name!r})`, after `from searchr1_lite.exercises import "
                "stand_in`, goes on with the package's own)") if name in _STAND_INS else ""
        called = f", which {fn.__name__} calls," if name != fn.__name__ else ""
        raise ExerciseError(f"{name}{called} is not written yet: replace the `raise NotImplementedError(...)` in its "
                            f"cell, run that cell, then this one{hint}") from None
    except Exception as e:  # a crash on one case is that case's failure, named as such
        # a name the lesson's earlier cells define (torch, a helper) is missing after a kernel restart, most often
        hint = "; if it is a name from an earlier cell, run the lesson's cells above first" if isinstance(
            e, NameError) else ""
        raise ExerciseError(f"{fn.__name__}, case {case!r}: raised {type(e).__name__}: {e}{hint}") from e


def _verdict(fn: Callable, name: str, failures: list[str], n_cases: int, what: str) -> None:
    if failures:
        raise ExerciseError(f"{name}: {len(failures)} of {n_cases} cases differ from the reference\n  - "
                            + "\n  - ".join(failures))
    if hasattr(fn, "stand_in_for"):  # passing, but not the student's work: say so, so that nobody mistakes it
        print(f"✓ {name}: the stand-in (the package's own function) passes; write `{fn.stand_in_for}` yourself and "
              "check it again to do this exercise")
        return
    print(f"✓ {name}: all {n_cases} cases agree with searchr1_lite ({what})")


def _tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().float()
    # a copy: torch cannot read a reversed numpy view (np.sort(s)[:, ::-1]), a correct answer all the same
    return torch.from_numpy(np.array(x, dtype=np.float32))


def _fmt(x: torch.Tensor) -> str:
    return np.array2string(x.detach().numpy(), precision=4, suppress_small=True, separator=", ", max_line_width=10**6)


def _close(expected: torch.Tensor, got: Any, atol: float) -> str | None:
    """None if `got` matches `expected` (shape and values), else what differs."""
    if got is None:
        return "expected a tensor, got None (does the function `return` its result?)"
    try:
        got = _tensor(got)
    except (TypeError, ValueError, RuntimeError):
        return f"expected a tensor, got {type(got).__name__}: {got!r:.80}"
    if got.shape != expected.shape:
        return f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
    if not torch.isfinite(got).all():
        return f"expected {_fmt(expected)}, got {_fmt(got)} (not finite)"
    if not torch.allclose(got, expected, atol=atol, rtol=1e-4):
        return f"expected {_fmt(expected)}, got {_fmt(got)}"
    return None


# ------------------------------------------------------------------------------------------------ lesson 01


def check_top_k(fn: Callable) -> None:
    """`fn(vectors [n, d], queries [q, d], k) -> (scores [q, k], ids [q, k])`, best first, as `exact_topk`."""
    rng = np.random.default_rng(0)
    unit = lambda a: (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    vectors, queries = unit(rng.normal(size=(8, 5))), unit(rng.normal(size=(3, 5)))
    positive, negative = unit(np.abs(rng.normal(size=(6, 5)))), -unit(np.abs(rng.normal(size=(2, 5))))
    many = unit(rng.normal(size=(2000, 5)))
    cases = [
        ("one query, k=1", vectors, queries[:1], 1),
        ("three queries, k=3", vectors, queries, 3),
        ("k = every passage", vectors, queries, 8),
        ("k above the number of passages: every passage, no more", vectors[:4], queries, 6),
        ("every score negative", positive, negative, 2),
        ("2,000 passages, k=200: all 200 in order, best first", many, queries, 200),
        ("vectors of other lengths: the largest inner product, not the cosine",
         np.array([[1.0, 0.0], [3.0, 3.0]], np.float32), np.array([[1.0, 0.0]], np.float32), 1),
    ]
    failures = []
    for name, v, q, k in cases:
        want_s, want_i = exact_topk(v, q, k)
        got = _run(fn, name, v, q, k)
        if not (isinstance(got, tuple) and len(got) == 2):
            failures.append(f"{name}: expected a tuple (scores, ids), got {type(got).__name__}")
            continue
        got_i = np.asarray(got[1].cpu() if isinstance(got[1], torch.Tensor) else got[1])
        if got_i.shape != want_i.shape or not (got_i == want_i).all():
            failures.append(f"{name} (k={k}): {_ids_differ(want_i, got_i)}")
        elif problem := _close(torch.from_numpy(want_s), got[0], 1e-5):
            failures.append(f"{name} (k={k}): scores: {problem}")
    _verdict(fn, "top_k", failures, len(cases), "exact_topk")


def _ids_differ(want: np.ndarray, got: np.ndarray) -> str:
    if got.shape != want.shape:
        return f"expected ids of shape {want.shape}, got {got.shape}" + (
            f": expected {want.tolist()}, got {got.tolist()}" if got.size <= 12 and want.size <= 12 else "")
    if want.size <= 12:
        return f"expected ids {want.tolist()}, got {got.tolist()}"
    q, rank = np.argwhere(got != want)[0]
    return f"query {q}, rank {rank} (0 = best): expected id {want[q, rank]}, got {got[q, rank]}"


def check_recall_at_k(fn: Callable) -> None:
    """`fn(results, answers, k) -> float`: the share of questions with a gold answer in their first k passages."""
    p = lambda title, text: Passage(title, f'"{title}"\n{text}')  # noqa: E731
    mona = p("Mona Lisa", "The Mona Lisa is a portrait by Leonardo da Vinci, in the Louvre.")
    louvre = p("Louvre", "The Louvre is the world's most-visited museum, in Paris.")
    msft = p("Microsoft", "Microsoft is headquartered in Redmond, Washington.")
    cases = [
        ("the answer in the first passage", [[mona, louvre]], [["Leonardo da Vinci"]], 1),
        ("the answer only in the third passage, k=1", [[louvre, msft, mona]], [["Leonardo da Vinci"]], 1),
        ("the answer only in the third passage, k=3", [[louvre, msft, mona]], [["Leonardo da Vinci"]], 3),
        ("the answer only in passage k + 1: a miss", [[louvre, mona]], [["Leonardo da Vinci"]], 1),
        ("case and punctuation differ (answers are normalised)", [[mona]], [["leonardo da vinci!"]], 1),
        ("several gold answers, the second one found", [[louvre]], [["Lyon", "Paris"]], 1),
        ("a question whose search found nothing", [[], [msft]], [["Paris"], ["Redmond"]], 3),
        ("two of three questions found", [[mona], [louvre], [msft]], [["Leonardo"], ["Rome"], ["Redmond"]], 1),
        ("no questions at all: 0.0", [], [], 3),
    ]
    failures = []
    for name, results, answers, k in cases:
        want, got = recall_at_k(results, answers, k), _run(fn, name, results, answers, k)
        try:
            ok = abs(float(got) - want) < 1e-9
        except (TypeError, ValueError):
            ok = False
        if not ok:
            failures.append(f"{name} (k={k}): expected {want:.3f}, got {got!r}")
    _verdict(fn, "recall_at_k", failures, len(cases), "retrieval.recall_at_k")


# ------------------------------------------------------------------------------------------------ lesson 02


def _action(a: Any) -> str:
    kind = getattr(a, "kind", None)
    if kind == "invalid":
        return "invalid" + (f" ({a.reason})" if getattr(a, "reason", "") else "")
    return f"{kind} {getattr(a, 'content', None)!r}" if kind else f"{a!r} (not an Action)"


PARSE_CASES = [
    ("a search after thinking", "<think>I need the painter.</think>\n<search> Mona Lisa painter </search>"),
    ("an answer", "<think>It is Leonardo.</think><answer> Leonardo da Vinci </answer>"),
    ("plain text, no tags", "The Mona Lisa was painted by Leonardo."),
    ("a missing closing tag", "<search> Mona Lisa painter"),
    ("an empty query", "<search>   </search>"),
    ("a search written inside <think>", "<think> I could <search> Mona Lisa </search> </think>"),
    ("a <think> never closed", "<think> hmm <search> Mona Lisa </search>"),
    ("nested tags", "<search> a <answer> b </answer> </search>"),
    ("a closing tag without its opening", "Mona Lisa painter </search>"),
    ("a search and an answer in one turn", "<search> Mona Lisa </search> <answer> Leonardo </answer>"),
    ("two searches: the first one counts", "<search> Mona Lisa </search> <search> Louvre </search>"),
    ("imitated <information> before the answer", "<information>Doc 1 Paris</information><answer>Paris</answer>"),
    ("unicode and newlines inside the query", "<search>\n Zürich  Hauptbahnhof\n</search>"),
    ("<information> inside an action", "<search> a <information> b </search>"),
    ("<think> inside an action", "<search> q <think> x </think> </search>"),
    ("an answer, then a search", "<answer> A </answer> <search> q </search>"),
    ("a search, then an answer left open", "<search> q </search> <answer> A"),
    ("the word answer after a search is text", "<search> capital of France </search> then answer"),
    ("a second <search> inside a search", "<search> a <search> b </search>"),
    ("a closing action tag inside <think> closes nothing", "<think> not </answer> yet </think><answer> A </answer>"),
    ("a stray </think> before the action ends no reasoning", "so I search.</think><search> q </search>"),
    ("a stray closing tag before the action", "x </search> <search> q </search>"),
    ("</think> inside an action", "<search> q </think> </search>"),
    ("</information> inside an action", "<search> q </information> </search>"),
]


def check_parse_action(fn: Callable) -> None:
    """`fn(turn) -> Action`: kind and content as `prompt.parse_action` (an invalid action's reason may differ)."""
    failures = []
    for name, text in PARSE_CASES:
        want, got = parse_action(text), _run(fn, name, text)
        same = getattr(got, "kind", None) == want.kind and (
            want.kind == "invalid" or getattr(got, "content", None) == want.content)
        if not same:
            failures.append(f"{name} — {text!r}: expected {_action(want)}, got {_action(got)}")
    _verdict(fn, "parse_turn", failures, len(PARSE_CASES), "prompt.parse_action, kind and content")


NORMALIZE_CASES = [
    ("capitals", "Leonardo da Vinci"),
    ("a leading article", "The Louvre"),
    ("articles mid-sentence", "an apple a day"),
    ("articles only as whole words", "Theatre and anthem"),
    ("nothing but an article", "The"),
    ("punctuation", "Redmond, Washington."),
    ("punctuation inside words", "U.S.A. don't"),
    ("an article joined by a hyphen (punctuation goes first)", "The-End"),
    ("extra whitespace", "  New \t York \n"),
    ("unicode letters are kept, lowercased", "Zürich and ÉCOLE"),
    ("lowercased, not casefolded (ß stays)", "Straße"),
    ("an article only before a word boundary, unicode letters count", "Aéroport à Théâtre"),
    ("non-ASCII punctuation is kept (SQuAD strips string.punctuation only)", "1939–1945"),
    ("empty", ""),
]


def check_normalize_answer(fn: Callable) -> None:
    """`fn(text) -> str` as `reward.normalize_answer` (SQuAD's: lowercase, drop punctuation, then a/an/the)."""
    failures = []
    for name, text in NORMALIZE_CASES:
        want, got = normalize_answer(text), _run(fn, name, text)
        if got != want:
            failures.append(f"{name} — {text!r}: expected {want!r}, got {got!r}")
    _verdict(fn, "normalize", failures, len(NORMALIZE_CASES), "reward.normalize_answer")


# ------------------------------------------------------------------------------------------------ lesson 03


def check_group_advantages(fn: Callable) -> None:
    """`fn(rewards [n], group_size, eps=1e-6) -> [n]` as `grpo.group_advantages` (group mean and std), leaving
    `rewards` as it was."""
    cases = [
        ("one right of four", torch.tensor([1.0, 0.0, 0.0, 0.0]), 4, 1e-6),
        ("two groups of four", torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]), 4, 1e-6),
        ("equal rewards in a group: zeros, not NaN", torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 0.0]), 2, 1e-6),
        ("fractional rewards (a format bonus of 0.1)", torch.tensor([0.1, 1.0, 0.0, 0.1]), 4, 1e-6),
        ("integer rewards", torch.tensor([1, 0, 0, 1]), 2, 1e-6),
        ("groups of one: no baseline but itself, zeros", torch.tensor([1.0, 0.0, 1.0]), 1, 1e-6),
        ("eps = 0.5, as passed (std + eps)", torch.tensor([1.0, 0.0, 1.0, 1.0]), 2, 0.5),
    ]
    failures = []
    for name, rewards, g, eps in cases:
        if eps != 1e-6 and not _takes(fn, "eps"):
            failures.append(f"{name}: expected an `eps` argument (the stub's `eps: float = 1e-6`), got a function "
                            "without one")
            continue
        yours = rewards.clone()
        with_eps = functools.wraps(fn)(lambda r, n, eps=eps: fn(r, n, eps=eps)) if eps != 1e-6 else fn
        want, got = group_advantages(rewards, g, eps=eps), _run(with_eps, name, yours, g)
        if problem := _close(want, got, 1e-4):
            failures.append(f"{name} (rewards {_fmt(rewards.float())}, group_size {g}): {problem}")
        elif problem := _changed("rewards", rewards, yours):
            failures.append(f"{name}: {problem}")
    _verdict(fn, "group_advantages", failures, len(cases), "grpo.group_advantages")


def _takes(fn: Callable, argument: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature: let the call decide
        return True
    return argument in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _changed(what: str, given: torch.Tensor, after: torch.Tensor) -> str | None:
    """What a function did to an input it was handed (None: nothing): the caller still reads it."""
    if torch.equal(given, after):
        return None
    return (f"expected {what} left as passed, {_fmt(given.float())}; your function changed them to "
            f"{_fmt(after.float())} (an in-place `-=`, `/=` or `*=` on the caller's tensor, or on a view of it)")


def _grad_of(fn: Callable, logp: torch.Tensor, *rest) -> tuple[Any, torch.Tensor | None]:
    """fn(logp, *rest) and d sum(fn) / d logp (None when the result has no gradient to logp)."""
    lp = logp.clone().requires_grad_()
    out = fn(lp, *rest)
    if not (isinstance(out, torch.Tensor) and out.requires_grad):
        return out, None
    (grad,) = torch.autograd.grad(out.sum(), lp, allow_unused=True)
    return out, grad


def check_k3_kl(fn: Callable) -> None:
    """`fn(logp, ref_logp) -> per-token KL [same shape]` as `grpo.k3_kl` (capped at 10), values and gradient."""
    logp = torch.log(torch.tensor([[0.5, 0.2, 0.9], [0.1, 0.7, 0.3]]))  # [2, 3]
    cases = [
        ("the same policy: 0", logp, logp.clone()),
        ("the reference likes the tokens more", logp, logp + 0.5),
        ("the reference likes the tokens less", logp, logp - 0.5),
        ("a large gap (ref - logp = 5): capped at 10", logp[:1], logp[:1] + 5.0),
        ("a large gap the other way (ref - logp = -12): capped at 10 too", logp[:1], logp[:1] - 12.0),
        ("a [2, 3] batch of mixed gaps", logp, logp + torch.tensor([[0.3, -1.0, 0.0], [2.0, -0.2, 0.7]])),
    ]
    failures = []
    for name, lp, ref in cases:
        want, want_grad = _grad_of(k3_kl, lp, ref)
        got, got_grad = _grad_of(lambda a, b: _run(fn, name, a, b), lp, ref)
        if problem := _close(want.detach(), got, 1e-4):
            failures.append(f"{name}: {problem}")
        elif got_grad is None:
            failures.append(f"{name}: no gradient reaches logp (was it detached?)")
        elif problem := _close(want_grad, got_grad, 1e-4):
            failures.append(f"{name}: gradient w.r.t. logp: {problem}")
    _verdict(fn, "k3_kl", failures, len(cases), "grpo.k3_kl, values and gradients")


def _loss_cases() -> Iterable[tuple[str, dict]]:
    base = torch.log(torch.tensor([[0.5, 0.4, 0.6, 0.3], [0.2, 0.8, 0.5, 0.5]]))  # [2, 4]
    full = torch.ones(2, 4)
    a = torch.tensor([1.0, -1.0])

    def case(name, shift=0.0, adv=a, mask=full, ref_shift=0.3, clip=(0.2, 0.2), beta=0.0, logp=base):
        old = logp - torch.as_tensor(shift)  # ratio = e^shift
        return name, dict(logp=logp, old_logp=old, ref_logp=logp + ref_shift, advantages=adv, mask=mask,
                          clip_low=clip[0], clip_high=clip[1], beta=beta)

    yield case("on-policy (ratio 1): loss 0")
    yield case("ratio 1.5 > 1 + eps, A > 0: clipped at 1.2", shift=torch.log(torch.tensor(1.5)), adv=a.abs())
    yield case("ratio 0.5 < 1 - eps, A < 0: clipped at 0.8", shift=torch.log(torch.tensor(0.5)), adv=-a.abs())
    yield case("ratio 1.5, A < 0: not clipped (min keeps the worse)", shift=torch.log(torch.tensor(1.5)), adv=-a.abs())
    yield case("clip higher: ratio 1.25 within (0.8, 1.28)", shift=torch.log(torch.tensor(1.25)), adv=a.abs(),
               clip=(0.2, 0.28))
    yield case("rows of different lengths (mean per row, then over rows)", shift=0.1,
               mask=torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]]))
    junk = torch.tensor([[0.0, 0.0, 3.0, 3.0], [0.0, 0.0, 0.0, 3.0]])  # ratio e^3 where mask = 0
    yield case("masked tokens hold junk (ratio e^3): no effect", shift=0.1 + junk,
               mask=torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]]))
    yield case("an all-masked row: adds 0 and still counts as a sequence", shift=0.1,
               mask=torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]))
    yield case("an empty mask: loss 0", shift=0.1, mask=torch.zeros(2, 4))
    yield case("beta = 0.1: the KL term counts", shift=0.1, beta=0.1)
    yield case("beta = 0.1 on-policy: only the KL term moves the loss", beta=0.1, ref_shift=-0.7)
    yield case("beta = 0.1, masked tokens hold junk (ratio and KL): no effect", shift=0.1 + junk, beta=0.1,
               ref_shift=0.3 + junk, mask=torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]]))


def _loss_differs(want, want_grad, got, got_grad, wrt: str) -> str | None:
    """What differs between the reference loss (and its gradient w.r.t. `wrt`) and yours; None if nothing."""
    if problem := _close(want.detach(), got, 1e-5):
        return f"loss {problem}"
    if got_grad is None:
        missing = want_grad is not None and want_grad.abs().sum() > 0
        return f"no gradient reaches {wrt} (was it detached?)" if missing else None
    if problem := _close(want_grad, got_grad, 1e-5):
        return f"gradient w.r.t. {wrt}: {problem}"
    return None


def check_masked_grpo_loss(fn: Callable) -> None:
    """`fn(logp, old_logp, ref_logp, advantages, mask, clip_low, clip_high, beta) -> scalar` as `grpo.grpo_loss`
    with `loss_agg="seq-mean-token-mean"`: the loss value and its gradient w.r.t. logp."""
    failures = []
    cases = list(_loss_cases())
    for name, kw in cases:
        cfg = GRPOConfig(clip_low=kw["clip_low"], clip_high=kw["clip_high"], beta=kw["beta"],
                         loss_agg="seq-mean-token-mean")
        rest = (kw["old_logp"], kw["ref_logp"], kw["advantages"], kw["mask"])
        want, want_grad = _grad_of(lambda lp, *r: grpo_loss(lp, *r, cfg)[0], kw["logp"], *rest)
        got, got_grad = _grad_of(lambda lp, *r: _run(fn, name, lp, *r, kw["clip_low"], kw["clip_high"], kw["beta"]),
                                 kw["logp"], *rest)
        if problem := _loss_differs(want, want_grad, got, got_grad, "logp"):
            failures.append(f"{name}: {problem}")
    _verdict(fn, "masked_grpo_loss", failures, len(cases), "grpo.grpo_loss, seq-mean-token-mean, values and gradients")


# ------------------------------------------------------------------------------------------------ lesson 03b


def _gae_cases() -> Iterable[tuple[str, tuple]]:
    # one row: position 0 prompt, 1 generated, 2-3 a retrieved block, 4 generated (the answer), 5 padding
    r = torch.tensor([[0.0, -0.1, 0.0, 0.0, 1.0, 0.0]])
    v = torch.tensor([[0.0, 0.5, 0.2, 0.3, 0.6, 0.0]])
    resp, gen = torch.tensor([[0, 1, 1, 1, 1, 0]]), torch.tensor([[0, 1, 0, 0, 1, 0]])
    junk = v + torch.tensor([[99.0, 0.0, 0.0, 0.0, 0.0, 99.0]])
    yield "one step: A = r - V", (torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 0.3]]), torch.tensor([[0, 1]]),
                                  1.0, 1.0)
    yield "a retrieved block in the response, gamma = lam = 1", (r, v, resp, 1.0, 1.0)
    yield "the same, gamma = lam = 0.5", (r, v, resp, 0.5, 0.5)
    yield "the block skipped (mask = gen_mask), gamma = lam = 0.5", (r, v, gen, 0.5, 0.5)
    yield "prompt and padding hold junk values (99): never read", (r, junk, resp, 0.9, 0.8)
    two = torch.tensor([[0, 1, 1, 1, 1, 0], [0, 0, 1, 1, 0, 0]])
    yield "two rows of different lengths", (torch.cat([r, torch.tensor([[0.0, 0.0, 0.2, 0.5, 0.0, 0.0]])]),
                                            torch.cat([v, v.flip(1)]), two, 1.0, 0.95)
    yield "a row with no step at all: zeros", (r, v, torch.zeros_like(resp), 1.0, 1.0)
    yield "skipped positions hold rewards (5, 2): never read", (r + torch.tensor([[0.0, 0.0, 5.0, 2.0, 0.0, 0.0]]),
                                                                 v, gen, 1.0, 1.0)


def check_gae(fn: Callable) -> None:
    """`fn(rewards, values, mask, gamma, lam) -> (advantages, returns)`, all `[batch, seq]`, as `ppo.gae`:
    positions with mask 0 are skipped (advantage and return 0 there), the value after a row's last step is 0."""
    failures = []
    cases = list(_gae_cases())
    for name, (r, v, m, gamma, lam) in cases:
        want, yours = gae(r, v, m, gamma, lam), (r.clone(), v.clone(), m.clone())
        got = _run(fn, name, *yours, gamma, lam)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            failures.append(f"{name}: expected a pair (advantages, returns), got {type(got).__name__}")
            continue
        pairs = (("advantages", want[0], got[0]), ("returns", want[1], got[1]))
        problems = [f"{what} {problem}" for what, w, g in pairs if (problem := _close(w, g, 1e-5))]
        problems += [problem for what, given, after in zip(("rewards", "values", "mask"), (r, v, m), yours)
                     if (problem := _changed(what, given, after))]
        if problems:
            failures.append(f"{name}: {problems[0]}")
    _verdict(fn, "gae", failures, len(cases), "ppo.gae")


def check_value_loss(fn: Callable) -> None:
    """`fn(values, old_values, returns, mask, clip) -> scalar` as `ppo.value_loss` (its first value): the loss and
    its gradient w.r.t. `values`."""
    old = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.5]])
    ret = torch.tensor([[0.0, 2.0, 0.0, 5.0, 0.4]])
    m = torch.tensor([[0, 1, 1, 0, 1]])
    cases = [(name, v, old, ret, mask, clip) for name, v, mask, clip in [
        ("V within clip of V_old: plain squared error", torch.tensor([[0.0, 0.3, 0.8, 0.0, 0.6]]), m, 0.5),
        ("V moved past the clip toward R: the clipped error is larger, it counts",
         torch.tensor([[0.0, 1.0, 0.8, 0.0, 0.6]]), m, 0.5),
        ("V moved past the clip away from R: the unclipped error is larger, it counts",
         torch.tensor([[0.0, -1.0, 0.8, 0.0, 0.6]]), m, 0.5),
        ("masked positions hold junk: no effect", torch.tensor([[7.0, 0.3, 0.8, -9.0, 0.6]]), m, 0.5),
        ("an empty mask: loss 0", torch.tensor([[0.0, 1.0, 0.8, 0.0, 0.6]]), torch.zeros_like(m), 0.5),
        ("a tighter clip (0.2)", torch.tensor([[0.0, 1.0, 0.4, 0.0, 0.9]]), m, 0.2),
    ]]
    cases.append(("two rows of 3 and 1 tokens: one mean over all 4 tokens, not a mean per row",
                  torch.tensor([[0.0, 0.3, 0.8, 0.0, 0.6], [1.5, 0.0, 0.0, 0.0, 0.0]]),
                  torch.cat([old, torch.tensor([[1.2, 0.0, 0.0, 0.0, 0.0]])]),
                  torch.cat([ret, torch.tensor([[-1.0, 0.0, 0.0, 0.0, 0.0]])]),
                  torch.tensor([[0, 1, 1, 0, 1], [1, 0, 0, 0, 0]]), 0.5))
    failures = []
    for name, v, old, ret, mask, clip in cases:
        want, want_grad = _grad_of(lambda x, *r: value_loss(x, *r)[0], v, old, ret, mask, clip)
        got, got_grad = _grad_of(lambda x, *r: _run(fn, name, x, *r), v, old, ret, mask, clip)
        if problem := _loss_differs(want, want_grad, got, got_grad, "values"):
            failures.append(f"{name}: {problem}")
    _verdict(fn, "value_loss", failures, len(cases), "ppo.value_loss, values and gradients")


# ------------------------------------------------------------------------------------------------ lesson 04


def check_pick_questions(fn: Callable) -> None:
    """`fn(n, cursor, count, seed) -> [count indices]`: the questions of a step, served as `train.pick_questions`
    serves them. Any seeded order passes: the checks are the properties, not one shuffle."""
    def picks(case, *args) -> list:  # a list, a tuple or a numpy array of indices: compared as a list
        got = _run(fn, case, *args)
        if not isinstance(got, (list, tuple, np.ndarray, torch.Tensor)):
            raise ExerciseError(f"pick_questions, case {case!r}: expected a list of {args[2]} indices, got {got!r}")
        return [int(i) if isinstance(i, np.integer) else i for i in got]

    failures = []
    for n, count in [(7, 3), (5, 5), (4, 6), (1, 2)]:
        name = f"n={n}, {count} a step"
        served = [i for step in range(3 * n) for i in picks(name, n, step * count, count, 0)]
        epochs = [served[e * n:(e + 1) * n] for e in range(3)]
        if any(not isinstance(i, (int, np.integer)) or not 0 <= i < n for i in served):
            failures.append(f"{name}: expected ints in 0..{n - 1}, got {sorted(set(map(repr, served)))[:5]}")
        elif any(sorted(e) != list(range(n)) for e in epochs):
            failures.append(f"{name}: expected each epoch (n picks in a row) to serve each question once, got {epochs}")
        elif [i for c in range(2 * n) for i in picks(name, n, c, 1, 0)] != served[: 2 * n]:
            failures.append(f"{name}: expected a pick to depend on its place in the order only, not on how steps cut "
                            "it; one question a step gives another order")
        elif n >= 4 and len({tuple(e) for e in epochs}) == 1:
            failures.append(f"{name}: expected a new order each epoch, got the same order every epoch ({epochs[0]})")
        # two epochs in a row alike: by chance 1 in 2,520 for a shuffle of 7 (1 in 12 for 4: not judged there)
        elif n >= 7 and any(a == b for a, b in zip(epochs, epochs[1:])):
            failures.append(f"{name}: expected a new order each epoch, got two epochs in a row in the same order "
                            f"({epochs})")
        elif picks(name, n, 0, n, 0) != picks(name, n, 0, n, 0):
            failures.append(f"{name}: expected the same order from the same seed, got another on a second call")
    if not failures and picks("seeds", 10, 0, 10, 0) == picks("seeds", 10, 0, 10, 1):
        failures.append("seeds 0 and 1: expected different orders (the order comes from the seed), got the same")
    _verdict(fn, "pick_questions", failures, 5, "the properties train.pick_questions has")


def reference_lr(step: int, base: float, warmup: int, max_steps: int, schedule: str) -> float:
    """The learning rate at `step` (after `step` scheduler steps) of the schedule train.make_optimizer builds."""
    from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    sched = (get_cosine_schedule_with_warmup(opt, warmup, max_steps) if schedule == "cosine"
             else get_constant_schedule_with_warmup(opt, warmup))
    for _ in range(step):
        opt.step()
        sched.step()
    return sched.get_last_lr()[0]


def check_lr_schedule(fn: Callable) -> None:
    """`fn(step, base_lr, warmup_steps, max_steps, schedule) -> lr` as the schedules `train.make_optimizer` uses
    (transformers' constant and cosine schedules with linear warm-up)."""
    cases = [("cosine", 10, 2, 1e-4, s) for s in (0, 1, 2, 5, 9, 10)] + [
        ("constant", 10, 3, 3e-4, s) for s in (0, 2, 3, 9)] + [("cosine, no warm-up", 4, 0, 1e-3, s) for s in (0, 2)]
    failures = []
    for name, max_steps, warmup, base, step in cases:
        schedule = name.split(",")[0]
        want, got = reference_lr(step, base, warmup, max_steps, schedule), _run(
            fn, name, step, base, warmup, max_steps, schedule)
        try:
            ok = abs(float(got) - want) <= 1e-9 + 1e-6 * base
        except (TypeError, ValueError):
            ok = False
        if not ok:
            failures.append(f"{name} (warm-up {warmup}, {max_steps} steps), step {step}: expected {want:.6g}, "
                            f"got {got!r}")
    _verdict(fn, "lr_at", failures, len(cases), "transformers' schedules, as train.make_optimizer builds them")


# ------------------------------------------------------------------------------------------------ lesson 05


def check_smooth(fn: Callable) -> None:
    """`fn(values, alpha) -> list` as `plots.smooth`: an exponential moving average that skips missing values."""
    from .plots import smooth

    nan = float("nan")
    cases = [("constant", [2.0, 2.0, 2.0], 0.3), ("a step up", [0.0, 0.0, 1.0, 1.0, 1.0], 0.3),
             ("alpha 1: no smoothing", [0.0, 1.0, 0.5], 1.0), ("a missing value in the middle", [1.0, nan, 3.0], 0.5),
             ("None for a missing value", [1.0, None, 3.0], 0.5), ("a missing first value", [nan, 1.0, 3.0], 0.5),
             ("empty", [], 0.3)]
    failures = []
    for name, values, alpha in cases:
        want = smooth(values, alpha)
        got = _run(fn, name, list(values), alpha)
        try:
            ok = len(got) == len(want) and all(
                (np.isnan(w) and np.isnan(float(g))) or abs(float(g) - w) < 1e-9 for w, g in zip(want, got))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            failures.append(f"{name} {values} (alpha {alpha}): expected {[round(w, 4) for w in want]}, got {got!r}")
    _verdict(fn, "smooth", failures, len(cases), "plots.smooth")


PAIRED_P_SAMPLED_TOL = 0.01  # 100,000 random flips: a p-value's standard error is at most 0.0016


def check_paired_p(fn: Callable) -> None:
    """`fn(before, after) -> p` as `evaluate.paired_sign_flip_p`: exact up to 20 differences (to within 1e-9), else
    from 100,000 random sign flips, whose p only has to agree to within `PAIRED_P_SAMPLED_TOL` (any seed will do)."""
    from .evaluate import paired_sign_flip_p

    gains_25 = [1] * 16 + [0] * 9 + [1] * 15  # 40 questions, 25 differ: 16 gains and 9 losses
    cases = [("nothing differs", [1, 0, 1], [1, 0, 1]), ("one gain, one loss", [0, 1], [1, 0]),
             ("5 gains of 16, no loss", [0] * 16, [1] * 5 + [0] * 11),
             ("3 gains, 1 loss", [0, 0, 0, 1, 1], [1, 1, 1, 0, 1]),
             ("every question gained (12)", [0] * 12, [1] * 12), ("a loss only", [1, 1, 0], [0, 1, 0]),
             ("fractional scores (F1)", [0.2, 0.5, 0.9], [0.4, 0.5, 0.6]), ("no questions", [], []),
             ("25 differences of 40 (2^25 flips: too many to list, sample them)",
              [0] * 16 + [1] * 9 + [1] * 15, gains_25),
             ("5 losses of 16, no gain (as far from 0 as 5 gains)", [1] * 5 + [0] * 11, [0] * 16),
             ("sizes count, not only signs: 3 small gains, 1 large loss", [0, 0, 0, 0.9], [0.1, 0.1, 0.1, 0]),
             ("F1 totals equal up to rounding (compare with a tolerance, 1e-9)",
              [0.5, 0.9, 0.2, 0.3, 0.9, 0.2], [0.6, 0.2, 1.0, 0.8, 0.4, 0.1]),
             ("30 questions, 5 differ: exact (it is the differences that count to 20)", [0] * 30, [1] * 5 + [0] * 25)]
    failures = []
    for name, before, after in cases:
        want, got = paired_sign_flip_p(before, after), _run(fn, name, list(before), list(after))
        sampled = sum(a != b for a, b in zip(before, after)) > 20
        tol = PAIRED_P_SAMPLED_TOL if sampled else 1e-9
        try:
            ok = abs(float(got) - want) < tol
        except (TypeError, ValueError):
            ok = False
        if not ok:
            shown = f"{len(before)} questions" if len(before) > 16 else f"before {before}, after {after}"
            failures.append(f"{name} ({shown}): expected p = {want:.6g}{f' +- {tol}' if sampled else ''}, "
                            f"got {got!r}")
    _verdict(fn, "paired_p", failures, len(cases), "evaluate.paired_sign_flip_p")
