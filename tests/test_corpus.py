import gzip
import json

import pytest

from searchr1_lite.corpus import Corpus, CorpusError, Passage, format_docs, load_corpus, read_jsonl, write_jsonl


def test_round_trip_keeps_rows_and_checksum(tmp_path):
    rows = [Passage("a", '"Alpha"\nFirst letter.'),
            Passage("b", '"Beta"\nSecond, with "quotes" and ünïcode\nand a line.')]
    path = write_jsonl(rows, tmp_path / "c.jsonl")
    corpus = read_jsonl(path)
    assert list(corpus) == rows
    assert corpus.checksum == Corpus.from_passages(rows).checksum
    assert corpus.checksum != Corpus.from_passages(rows[:1]).checksum
    assert corpus[1].title == "Beta" and corpus[1].text == 'Second, with "quotes" and ünïcode\nand a line.'


def test_gzip_and_blank_lines(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"id": 7, "contents": '"T"\nx'}) + "\n\n")
    corpus = load_corpus(path)
    assert len(corpus) == 1 and corpus[0].id == "7"  # integer ids (some dumps) become strings


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not valid JSON"),
        ('["a", "b"]', "expected an object"),
        ('{"contents": "x"}', "missing field 'id'"),
        ('{"id": "2"}', "missing field 'contents'"),
        ('{"id": "2", "contents": 5}', "'contents' must be a non-empty string"),
        ('{"id": "2", "contents": "  "}', "'contents' must be a non-empty string"),
        ('{"id": "", "contents": "x"}', "'id' must be a non-empty string"),
        ('{"id": "1", "contents": "dup"}', "duplicate id '1'"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "1", "contents": "\\"A\\"\\nok"}\n' + line + "\n")
    with pytest.raises(CorpusError) as err:
        read_jsonl(path)
    assert f"{path}:2:" in str(err.value) and message in str(err.value)


def test_missing_file_and_unknown_name():
    with pytest.raises(CorpusError, match="not a bundled corpus"):
        load_corpus("no-such-corpus")


def test_wiki_vital_is_the_real_summaries(wiki_vital):
    assert len(wiki_vital) == 10033
    titles = wiki_vital.titles()
    mona = wiki_vital[titles.index("Mona Lisa")]
    assert mona.contents.startswith('"Mona Lisa"\n') and "Leonardo da Vinci" in mona.text
    assert len(set(wiki_vital.ids)) == len(wiki_vital)


def test_format_docs_matches_the_papers_layout():
    docs = [Passage("1", '"Mona Lisa"\nA portrait.'), Passage("2", '"Louvre"\nA museum.')]
    assert format_docs(docs) == 'Doc 1(Title: "Mona Lisa") A portrait.\nDoc 2(Title: "Louvre") A museum.\n'
    assert format_docs([]) == ""


def test_wiki18_comes_from_the_authors_hub_files(tmp_path, monkeypatch):
    """The hub is outside this machine: serve a same-format wiki-18.jsonl.gz locally and check the real path."""
    import huggingface_hub

    from searchr1_lite import corpus as corpus_mod

    rows = [{"id": str(i), "contents": f'"Title {i}"\nText number {i}.'} for i in range(5)]
    gz = tmp_path / "wiki-18.jsonl.gz"
    with gzip.open(gz, "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    asked = []

    def fake_download(repo_id, filename, repo_type=None, **kw):
        asked.append((repo_id, filename, repo_type))
        return str(gz)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setenv("SEARCHR1_LITE_CACHE", str(tmp_path / "cache"))
    wiki18 = corpus_mod.load_corpus("wiki-18")
    assert asked == [("PeterJinGo/wiki-18-corpus", "wiki-18.jsonl.gz", "dataset")]
    assert len(wiki18) == 5 and wiki18[3] == Passage("3", '"Title 3"\nText number 3.') and wiki18.source == "wiki-18"
    assert wiki18.checksum == Corpus.from_passages(Passage(r["id"], r["contents"]) for r in rows).checksum


def test_wiki18_offline_says_what_it_is_and_what_to_use(tmp_path, monkeypatch):
    """Offline, huggingface_hub's own message named neither wiki-18 nor a corpus that works without the hub."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    from searchr1_lite import corpus as corpus_mod
    from searchr1_lite.offline import HubUnavailable

    def offline(*args, **kw):  # the hub is outside this machine: what huggingface_hub raises without it
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub ...")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    monkeypatch.setenv("SEARCHR1_LITE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(HubUnavailable, match=r"^wiki-18 comes from the hub \(PeterJinGo/wiki-18-corpus.*use the "
                                             "corpus wiki-vital"):
        corpus_mod.load_corpus("wiki-18")
