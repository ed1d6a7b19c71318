"""The lessons' exercises: each checker passes the reference and names the case a realistic mistake fails; the
student copies (`make student`) keep the stubs and lose the solutions; every lesson 01-03 has its exercises."""

import importlib.util
import json
import re
import string
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from searchr1_lite import exercises
from searchr1_lite.evaluate import paired_sign_flip_p
from searchr1_lite.grpo import GRPOConfig, group_advantages, grpo_loss, k3_kl
from searchr1_lite.plots import smooth
from searchr1_lite.ppo import gae, value_loss
from searchr1_lite.prompt import Action, parse_action
from searchr1_lite.retrieval import exact_topk, recall_at_k
from searchr1_lite.reward import normalize_answer
from searchr1_lite.tiers import lesson_id
from searchr1_lite.train import pick_questions

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("student_notebooks", ROOT / "tools" / "student_notebooks.py")
student_notebooks = importlib.util.module_from_spec(_spec)
sys.modules["student_notebooks"] = student_notebooks  # a dataclass looks its module up there
_spec.loader.exec_module(student_notebooks)
NOTEBOOKS = student_notebooks.NOTEBOOKS
_spec = importlib.util.spec_from_file_location("colab_cells", ROOT / "tools" / "colab_cells.py")
_colab_cells = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_colab_cells)


# ---------------------------------------------------------------- one realistic mistake per exercise


def top_k_ascending(vectors, queries, k):  # sorts the wrong way: the least similar passages first
    scores = queries @ vectors.T
    ids = np.argsort(scores, axis=1)[:, :k]
    return np.take_along_axis(scores, ids, axis=1), ids


def recall_case_sensitive(results, answers, k):  # a raw substring test: no normalisation
    hits = [any(g in p.contents for p in row[:k] for g in golds) for row, golds in zip(results, answers)]
    return sum(hits) / max(1, len(hits))


def parse_like_the_authors(text):  # their regex: the first <search>/<answer> pair anywhere, even inside <think>
    m = re.search(r"<(search|answer)>(.*?)</\1>", text, re.DOTALL)
    return Action(m.group(1), m.group(2).strip()) if m else Action("invalid", reason="no match")


def _parse_ignoring(rule):
    """The exercise's parser with one of its stated rules left out: "think" (a <think> inside an action is text),
    "information" (so is an <information>), "search after answer" (only an <answer> after a search is refused)."""
    tag = re.compile(r"<(/?)(search|answer|think|information)>")

    def parse(text):
        in_think, open_name, start = False, None, 0
        for m in tag.finditer(text):
            closing, name = m.group(1) == "/", m.group(2)
            if name in ("think", "information"):
                if open_name and name != rule:
                    return Action("invalid", reason=f"<{name}> inside <{open_name}>")
                in_think = (not closing) if name == "think" and not open_name else in_think
                continue
            if not closing:
                if open_name or in_think:
                    return Action("invalid", reason="nested")
                open_name, start = name, m.end()
                continue
            if name != open_name or not text[start : m.start()].strip():
                return Action("invalid", reason="closes nothing, or empty")
            other = "answer" if name == "search" else "search"
            if (name == "search" or rule != "search after answer") and f"<{other}>" in text[m.end() :]:
                return Action("invalid", reason="both")
            return Action(name, text[start : m.start()].strip())
        return Action("invalid", reason="unclosed or none")

    parse.__name__ = f"parse_ignoring_{rule.replace(' ', '_')}"
    return parse


def normalize_keeping_articles(text):
    return " ".join(text.lower().translate(str.maketrans("", "", string.punctuation)).split())


def advantages_without_std(rewards, group_size, eps=1e-6):  # Dr. GRPO's centring, but the exercise asks for GRPO's
    r = rewards.float().view(-1, group_size)
    return (r - r.mean(1, keepdim=True)).view(-1)


def kl_sign_flipped(logp, ref_logp):  # k3 with the log-ratio the wrong way round
    delta = logp - ref_logp
    return torch.exp(delta) - delta - 1


def kl_uncapped(logp, ref_logp):  # k3 without the authors' cap at 10
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


def loss_over_all_tokens(logp, old_logp, ref_logp, advantages, mask, clip_low=0.2, clip_high=0.2, beta=0.0):
    ratio = torch.exp(logp - old_logp)
    a = advantages[:, None]
    per_token = -torch.min(ratio * a, ratio.clamp(1 - clip_low, 1 + clip_high) * a) + beta * k3_kl(logp, ref_logp)
    return per_token.mean()  # the mask forgotten: retrieved and padding tokens count too


def loss_kl_over_all_tokens(logp, old_logp, ref_logp, advantages, mask, clip_low=0.2, clip_high=0.2, beta=0.0):
    m = mask.float()  # the clipped term masked right, the KL term averaged over every token, masked ones too
    ratio, a = torch.exp(logp - old_logp), advantages[:, None]
    pg = -torch.min(ratio * a, ratio.clamp(1 - clip_low, 1 + clip_high) * a)
    return ((pg * m).sum(1) / m.sum(1).clamp(min=1)).mean() + beta * k3_kl(logp, ref_logp).mean()


def reference_loss(logp, old_logp, ref_logp, advantages, mask, clip_low=0.2, clip_high=0.2, beta=0.0):
    return grpo_loss(logp, old_logp, ref_logp, advantages, mask, GRPOConfig(clip_low, clip_high, beta))[0]


def pick_wrapping_around(n, cursor, count, seed):  # the same order every epoch: no reshuffle
    return [c % n for c in range(cursor, cursor + count)]


def lr_without_warmup(step, base_lr, warmup_steps, max_steps, schedule):  # cosine from step 0, warm-up forgotten
    import math

    progress = step / max(1, max_steps) if schedule == "cosine" else 0.0
    return base_lr * 0.5 * (1 + math.cos(math.pi * progress))


def smooth_not_skipping_gaps(values, alpha):  # a missing value resets the average to NaN from there on
    out, avg = [], None
    for v in values:
        v = float("nan") if v is None else v
        avg = v if avg is None else alpha * v + (1 - alpha) * avg
        out.append(avg)
    return out


def one_sided_p(before, after):  # counts only flips at least as large in the observed direction
    import random
    from itertools import product

    d = [a - b for a, b in zip(after, before) if a != b]
    if not d:
        return 1.0
    rng = random.Random(0)  # beyond 20 differences, 100,000 random flips as the package (listing 2^25 took a minute)
    flips = (product([1, -1], repeat=len(d)) if len(d) <= 20
             else ([rng.choice((1, -1)) for _ in d] for _ in range(100_000)))
    hits = sum(sum(s * abs(x) for s, x in zip(signs, d)) >= sum(d) - 1e-9 for signs in flips)
    return hits / (2 ** len(d) if len(d) <= 20 else 100_000)


def gae_stepping_through_the_mask(rewards, values, mask, gamma, lam):  # every column a step: padding values read
    adv, running = torch.zeros_like(rewards), torch.zeros(rewards.shape[0])
    for t in reversed(range(rewards.shape[1])):
        nxt = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros(rewards.shape[0])
        running = rewards[:, t] + gamma * nxt - values[:, t] + gamma * lam * running
        adv[:, t] = running * mask[:, t]
    return adv, (adv + values) * mask


def value_loss_with_min(values, old_values, returns, mask, clip):  # min where PPO takes the max (pessimistic)
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    losses = torch.min((values - returns) ** 2, (clipped - returns) ** 2)
    return 0.5 * (losses * mask).sum() / mask.sum().clamp(min=1)


def value_loss_per_row(values, old_values, returns, mask, clip):  # a mean per row, then over rows
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    losses, m = torch.max((values - returns) ** 2, (clipped - returns) ** 2), mask.float()
    return 0.5 * ((losses * m).sum(1) / m.sum(1).clamp(min=1)).mean()


def reference_value_loss(values, old_values, returns, mask, clip):
    return value_loss(values, old_values, returns, mask, clip)[0]


# ---------------------------------------------------------------- more mistakes, each once accepted by its checker


def top_k_unsorted(vectors, queries, k):  # argpartition finds the top k but does not order them
    scores = queries @ vectors.T
    ids = np.argpartition(-scores, min(k, scores.shape[1]) - 1, axis=1)[:, :k]
    return np.take_along_axis(scores, ids, axis=1), ids


def top_k_cosine(vectors, queries, k):  # cosine, not the inner product: the same on unit vectors only
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    return exact_topk(unit(vectors), unit(queries), k)


def recall_one_too_many(results, answers, k):  # passages[:k + 1]
    return recall_at_k(results, answers, k + 1)


def parse_other_action_by_its_closing_tag(text):  # "<search> q </search> <answer> A" passes as a search
    m = re.search(r"<search>(.*?)</search>", text, re.DOTALL)
    if m and m.group(1).strip() and "</answer>" not in text[m.end() :] and "<think>" not in text:
        return Action("search", m.group(1).strip())
    return parse_action(text)


def parse_think_as_a_toggle(text):  # a stray </think> starts reasoning, so the search after it is "inside" one
    if "</think>" in text and "<think>" not in text:
        return Action("invalid", reason="inside <think>")
    return parse_action(text)


def normalize_casefolded(text):  # casefold is more than lowercase: "ß" -> "ss"
    return normalize_answer(text.casefold())


def advantages_eps_ignored(rewards, group_size, eps=1e-6):
    return group_advantages(rewards, group_size)


def advantages_in_place(rewards, group_size, eps=1e-6):
    r = rewards.float().view(-1, group_size)  # float rewards: a view of the caller's tensor
    std = r.std(1, keepdim=True) if group_size > 1 else torch.ones(1)
    r -= r.mean(1, keepdim=True)
    return (r / (std + eps) if group_size > 1 else r).view(-1)


def kl_capped_one_way(logp, ref_logp):  # capped only where the reference is likelier
    delta = ref_logp - logp
    kl = torch.exp(delta) - delta - 1
    return torch.where(delta > 0, kl.clamp(max=10.0), kl)


def gae_carrying_skipped_rewards(rewards, values, mask, gamma, lam):  # a skipped position's reward reaches a step
    kept = rewards.clone()
    for row in range(rewards.shape[0]):
        steps = mask[row].nonzero().flatten().tolist()
        for t in range(rewards.shape[1]):
            if not mask[row, t] and (before := [s for s in steps if s < t]):
                kept[row, before[-1]] += rewards[row, t]
    return gae(kept, values, mask, gamma, lam)


def gae_zeroing_values(rewards, values, mask, gamma, lam):  # "junk is never read": zeroed in the caller's tensor
    values *= mask
    return gae(rewards, values, mask, gamma, lam)


def pick_every_other_epoch(n, cursor, count, seed):  # a new order only every second epoch
    import random

    out = []
    for c in range(cursor, cursor + count):
        order = list(range(n))
        random.Random(seed + c // n // 2).shuffle(order)
        out.append(order[c % n])
    return out


def _sign_flips(before, after, exact, at_least):
    diff = np.asarray(after, float) - np.asarray(before, float)
    d = np.abs(diff[diff != 0])
    if not d.size:
        return 1.0
    signs = (1 - 2 * ((np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1) if exact(diff, d)
             else np.random.default_rng(0).choice([-1, 1], size=(100_000, d.size)))
    return float(at_least(np.abs(signs @ d), diff.sum()).mean())


def p_signed_observed(before, after):  # |flipped totals| against the signed observed total
    return _sign_flips(before, after, lambda diff, d: d.size <= 20, lambda t, obs: t >= obs - 1e-9)


def p_without_tolerance(before, after):  # floats equal on paper, unequal in the last bit
    return _sign_flips(before, after, lambda diff, d: d.size <= 20, lambda t, obs: t >= abs(obs))


def p_exact_by_questions(before, after):  # exact up to 20 questions, not 20 differences
    return _sign_flips(before, after, lambda diff, d: diff.size <= 20, lambda t, obs: t >= abs(obs) - 1e-9)


def p_sign_test(before, after):  # the binomial sign test: sizes ignored
    import math

    diff = np.asarray(after, float) - np.asarray(before, float)
    gains, losses = int((diff > 0).sum()), int((diff < 0).sum())
    m = gains + losses
    return 1.0 if not m else min(1.0, 2 * sum(math.comb(m, i) for i in range(max(gains, losses), m + 1)) / 2**m)


# (checker, the package's own function, a mistake, a case the mistake must be reported under)
EXERCISES = [
    (exercises.check_top_k, exact_topk, top_k_ascending, "one query, k=1"),
    (exercises.check_recall_at_k, recall_at_k, recall_case_sensitive, "case and punctuation differ"),
    (exercises.check_parse_action, parse_action, parse_like_the_authors, "a search written inside <think>"),
    (exercises.check_parse_action, parse_action, _parse_ignoring("information"), "<information> inside an action"),
    (exercises.check_parse_action, parse_action, _parse_ignoring("think"), "<think> inside an action"),
    (exercises.check_parse_action, parse_action, _parse_ignoring("search after answer"), "an answer, then a search"),
    (exercises.check_normalize_answer, normalize_answer, normalize_keeping_articles, "a leading article"),
    (exercises.check_group_advantages, group_advantages, advantages_without_std, "one right of four"),
    (exercises.check_k3_kl, k3_kl, kl_sign_flipped, "the reference likes the tokens more"),
    (exercises.check_k3_kl, k3_kl, kl_uncapped, "a large gap (ref - logp = 5): capped at 10"),
    (exercises.check_masked_grpo_loss, reference_loss, loss_over_all_tokens, "masked tokens hold junk"),
    (exercises.check_masked_grpo_loss, reference_loss, loss_kl_over_all_tokens, "beta = 0.1, masked tokens hold junk"),
    (exercises.check_gae, gae, gae_stepping_through_the_mask, "prompt and padding hold junk values"),
    (exercises.check_value_loss, reference_value_loss, value_loss_with_min, "V moved past the clip toward R"),
    (exercises.check_value_loss, reference_value_loss, value_loss_per_row, "two rows of 3 and 1 tokens"),
    (exercises.check_pick_questions, pick_questions, pick_wrapping_around, "a new order each epoch"),
    (exercises.check_lr_schedule, exercises.reference_lr, lr_without_warmup, "step 0"),
    (exercises.check_smooth, smooth, smooth_not_skipping_gaps, "a missing value in the middle"),
    (exercises.check_paired_p, paired_sign_flip_p, one_sided_p, "5 gains of 16"),
    (exercises.check_top_k, exact_topk, top_k_unsorted, "all 200 in order, best first"),
    (exercises.check_top_k, exact_topk, top_k_cosine, "not the cosine"),
    (exercises.check_recall_at_k, recall_at_k, recall_one_too_many, "the answer only in passage k + 1"),
    (exercises.check_parse_action, parse_action, parse_other_action_by_its_closing_tag, "an answer left open"),
    (exercises.check_parse_action, parse_action, parse_think_as_a_toggle, "a stray </think> before the action"),
    (exercises.check_normalize_answer, normalize_answer, normalize_casefolded, "not casefolded"),
    (exercises.check_group_advantages, group_advantages, advantages_eps_ignored, "eps = 0.5, as passed"),
    (exercises.check_group_advantages, group_advantages, advantages_in_place, "expected rewards left as passed"),
    (exercises.check_k3_kl, k3_kl, kl_capped_one_way, "a large gap the other way"),
    (exercises.check_gae, gae, gae_carrying_skipped_rewards, "skipped positions hold rewards"),
    (exercises.check_gae, gae, gae_zeroing_values, "expected values left as passed"),
    (exercises.check_pick_questions, pick_questions, pick_every_other_epoch, "two epochs in a row in the same order"),
    (exercises.check_paired_p, paired_sign_flip_p, p_signed_observed, "5 losses of 16"),
    (exercises.check_paired_p, paired_sign_flip_p, p_without_tolerance, "equal up to rounding"),
    (exercises.check_paired_p, paired_sign_flip_p, p_exact_by_questions, "30 questions, 5 differ"),
    (exercises.check_paired_p, paired_sign_flip_p, p_sign_test, "sizes count, not only signs"),
]


@pytest.mark.parametrize("check, reference, mistake, case", EXERCISES, ids=lambda x: getattr(x, "__name__", ""))
def test_each_checker_passes_the_reference_and_names_the_case_a_mistake_fails(check, reference, mistake, case,
                                                                               capsys):
    check(reference)
    out = capsys.readouterr().out
    assert out.startswith("✓ ") and "cases agree with searchr1_lite" in out and "stand-in" not in out
    with pytest.raises(exercises.ExerciseError) as err:
        check(mistake)
    message = str(err.value)
    assert case in message and "expected" in message, message


def test_an_unwritten_exercise_says_so_and_names_its_stand_in():
    def k3_kl(*args):
        raise NotImplementedError()

    with pytest.raises(exercises.ExerciseError, match="not written yet.*k3_kl = stand_in\\('k3_kl'\\)"):
        exercises.check_k3_kl(k3_kl)


def test_a_crash_is_named_by_case_and_a_missing_name_points_to_the_cells_above():
    """After a kernel restart, a solution that uses torch failed its first case with a NameError, which read as a bug
    in the student's function; other crashes are the case's failure, with no such hint."""
    def k3_kl(logp, ref_logp):
        return torch_not_imported.exp(ref_logp - logp)  # noqa: F821 - the missing setup cell

    with pytest.raises(exercises.ExerciseError, match=r"^k3_kl, case '.*': raised NameError: .*torch_not_imported.*; "
                                                      r"if it is a name from an earlier cell, run the lesson's cells"):
        exercises.check_k3_kl(k3_kl)
    with pytest.raises(exercises.ExerciseError, match=r"raised ZeroDivisionError: division by zero$"):
        exercises.check_k3_kl(lambda logp, ref_logp: 1 / 0)


def test_an_unwritten_function_called_by_a_written_one_is_the_one_named():
    """Lesson 03's masked_grpo_loss calls the student's k3_kl: while k3_kl is a stub, the message names k3_kl."""
    def k3_kl(logp, ref_logp):
        raise NotImplementedError()

    def masked_grpo_loss(logp, old_logp, ref_logp, advantages, mask, clip_low=0.2, clip_high=0.2, beta=0.0):
        return exercises.stand_in("masked_grpo_loss")(logp, old_logp, ref_logp, advantages, mask, clip_low,
                                                       clip_high, beta) + beta * k3_kl(logp, ref_logp).mean()

    with pytest.raises(exercises.ExerciseError, match=r"^k3_kl, which masked_grpo_loss calls, is not written yet.*"
                                                      r"k3_kl = stand_in\('k3_kl'\)"):
        exercises.check_masked_grpo_loss(masked_grpo_loss)


@pytest.mark.parametrize("check", [exercises.check_group_advantages, exercises.check_k3_kl,
                                   exercises.check_masked_grpo_loss, exercises.check_value_loss])
def test_a_function_that_returns_nothing_is_told_so(check):
    """A forgotten `return` is a student's commonest slip: the checker says so for every case, not a TypeError from
    inside the checker."""
    def forgot_return(*args, **kwargs):
        pass

    with pytest.raises(exercises.ExerciseError, match="expected a tensor, got None") as err:
        check(forgot_return)
    assert "cases differ from the reference" in str(err.value)


def _lesson_exercises():
    """(lesson, function name, checker name) for every exercise cell and the checker call after it, from the lessons."""
    found = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        for cell, after in zip(cells, cells[1:]):
            if "### BEGIN SOLUTION" in cell:
                name = re.search(r"^def (\w+)\(", cell, re.M).group(1)
                found.append((path.stem, name, re.search(rf"(check_\w+)\({name}\)", after).group(1)))
    return found


@pytest.mark.parametrize("lesson, name, checker", _lesson_exercises(), ids=lambda x: x)
def test_every_exercise_has_a_stand_in_its_checker_passes(lesson, name, checker, capsys):
    """A student stuck on an exercise can go on with the lesson: the package's own function, in the exercise's shape,
    passes the exercise's own checker."""
    getattr(exercises, checker)(exercises.stand_in(name))
    out = capsys.readouterr().out  # passing, and saying that it is the stand-in, not the student's work
    assert out.startswith(f"✓ {name}: ") and f"the stand-in (the package's own function) passes; write `{name}`" in out


def test_a_crash_on_one_case_names_that_case():
    def crashes_on_empty(results, answers, k):
        return sum(any(a in p.contents for p in r[:k] for a in g) for r, g in zip(results, answers)) / len(results)

    with pytest.raises(exercises.ExerciseError, match="no questions at all.*ZeroDivisionError"):
        exercises.check_recall_at_k(crashes_on_empty)


def test_paired_p_has_a_case_too_big_to_list_every_flip_and_accepts_any_seed_there():
    def listing_every_flip(before, after):  # list(itertools.product([1, -1], repeat=m)): ~9 GB and minutes at m = 25
        m = sum(a != b for a, b in zip(before, after))
        if m > 20:
            raise MemoryError(f"2^{m} sign vectors listed")  # where the real one runs out of memory or time
        return paired_sign_flip_p(before, after)

    with pytest.raises(exercises.ExerciseError, match=r"25 differences.*MemoryError"):
        exercises.check_paired_p(listing_every_flip)
    exercises.check_paired_p(lambda before, after: paired_sign_flip_p(before, after, seed=1))  # sampled: a tolerance


@pytest.mark.filterwarnings(r"ignore:std\(\)")
def test_group_advantages_must_not_give_nan_for_a_group_of_one():
    def naive(rewards, group_size):
        r = rewards.float().view(-1, group_size)
        return ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)).view(-1)

    with pytest.raises(exercises.ExerciseError, match=r"groups of one.*not finite"):
        exercises.check_group_advantages(naive)


# ---------------------------------------------------------------- the student copies


def _solution_lines(path):
    """{cell id: the non-blank lines between the markers} of an instructor notebook."""
    found = {}
    for c in json.loads(path.read_text())["cells"]:
        src = "".join(c["source"])
        if student_notebooks.BEGIN in src:
            inside = src.split(student_notebooks.BEGIN, 1)[1].split(student_notebooks.END, 1)[0]
            found[c["id"]] = [line.strip() for line in inside.splitlines()[1:] if line.strip()]
    return found


@pytest.fixture(scope="module")
def student_copies(tmp_path_factory):
    """The notebooks as `make student` writes them (its command, into a temporary folder)."""
    out = tmp_path_factory.mktemp("student")
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "student_notebooks.py"), str(out)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    return out, run.stdout


def test_make_student_runs_the_student_tool():
    assert re.search(r"^student:.*\n\t.*tools/student_notebooks\.py", (ROOT / "Makefile").read_text(), re.M)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: lesson_id(p.name))
def test_the_student_copy_keeps_the_stubs_and_drops_the_solutions(path, student_copies):
    out, _ = student_copies
    student = {c["id"]: "".join(c["source"]) for c in json.loads((out / path.name).read_text())["cells"]}
    instructor = {c["id"]: "".join(c["source"]) for c in json.loads(path.read_text())["cells"]}
    assert student.keys() == instructor.keys(), "the same cells, in the same ids"
    for cid, lines in _solution_lines(path).items():
        src = student[cid]
        assert "BEGIN SOLUTION" not in src and "END SOLUTION" not in src
        stubs = re.findall(r'raise NotImplementedError\("(\w+) is not written yet', src)
        assert stubs, f"{path.name} cell {cid}: no stub naming its function"
        assert set(stubs) <= set(re.findall(r"^\s*def (\w+)\(", src, re.M)), f"{path.name} cell {cid}: {stubs}"
        assert re.search(r"^\s*def \w+\(", src, re.M), f"{path.name} cell {cid}: the signature must stay"
        left = [line for line in lines if line in {s.strip() for s in src.splitlines()}]
        assert not left, f"{path.name} cell {cid}: solution lines left in the student copy: {left}"
    link = _colab_cells.LINK_TAG  # the repository's Colab link opens the instructor's copy: not in a student's
    assert student[link] == student_notebooks.STUDENT_LINK and "colab.research.google.com/github" not in student[link]
    for cid, src in instructor.items():
        if cid not in _solution_lines(path) and cid != link:
            assert student[cid] == src, f"{path.name} cell {cid}: a cell without a solution must not change"


# ---------------------------------------------------------------- counting


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: lesson_id(p.name))
def test_every_lesson_has_two_exercises_and_a_prediction(path):
    found = student_notebooks.exercises(path)
    assert len(found) >= 2, f"{path.name}: {len(found)} exercises"
    assert len(student_notebooks.predict_questions(path)) >= 1, f"{path.name}: no predict-then-run question"
    for e in found:
        assert callable(getattr(exercises, e.checker, None)), f"{path.name}: {e.checker} is not in exercises.py"
        assert callable(exercises.stand_in(e.function)), f"{path.name}: no stand-in for {e.function}"


def test_the_counter_covers_every_lesson(student_copies):
    _, printed = student_copies
    for path in NOTEBOOKS:  # lessons without exercises yet are counted, as 0
        found = student_notebooks.exercises(path)  # named as the student writes them, as stand_in takes them
        assert f"{path.name}: {len(found)} exercises ({', '.join(e.function for e in found)})" in printed
    assert sum(len(student_notebooks.exercises(p)) for p in NOTEBOOKS) >= 10


def test_notebooks_import_only_public_names():
    for path in NOTEBOOKS:
        for c in json.loads(path.read_text())["cells"]:
            src = "".join(c["source"])
            private = re.findall(r"from searchr1_lite[\w.]* import [^\n]*\b_\w+", src)
            assert not private, f"{path.name} cell {c['id']}: {private}"


def test_correct_answers_in_other_shapes_pass(capsys):
    """What the exercise texts allow passes: scores as a reversed numpy view (torch cannot read one as it is), and
    question indices as numpy integers ("any seeded shuffle will do")."""

    def top_k_reversed(vectors, queries, k):
        scores = queries @ vectors.T
        return np.sort(scores, axis=1)[:, ::-1][:, :k], np.argsort(-scores, axis=1, kind="stable")[:, :k]

    def pick_with_numpy(n, cursor, count, seed):
        return [np.random.default_rng(seed + c // n).permutation(n)[c % n] for c in range(cursor, cursor + count)]

    def pick_as_array(n, cursor, count, seed):  # a numpy array, not a list: `==` on it gives an array
        return np.array(pick_with_numpy(n, cursor, count, seed))

    exercises.check_top_k(top_k_reversed)
    exercises.check_pick_questions(pick_with_numpy)
    exercises.check_pick_questions(pick_as_array)
    assert capsys.readouterr().out.count("✓ ") == 3
    with pytest.raises(exercises.ExerciseError, match=r"case 'n=7, 3 a step': expected a list of 3 indices, got 5"):
        exercises.check_pick_questions(lambda n, cursor, count, seed: 5)
