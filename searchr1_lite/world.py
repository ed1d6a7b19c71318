"""A synthetic world for learning you can watch on a CPU: fictional people, cities, countries and books, rendered as
short encyclopedia passages, with single-hop and two-hop questions whose answers exist only in this corpus.

    "Talven Orsik" -> Talven Orsik is a painter who was born in Quenmar.
    "Quenmar"      -> Quenmar is a city in Delvora.
    "The Silver Lantern" -> The Silver Lantern is a novel written by Talven Orsik.

    single-hop  Where was Talven Orsik born?                         Quenmar       (1 search)
    two-hop     In which country was Talven Orsik born?              Delvora       (Talven Orsik -> Quenmar -> Delvora)
    single-hop  Who wrote The Silver Lantern?                        Talven Orsik
    two-hop     Where was the author of The Silver Lantern born?     Quenmar       (book -> author -> birthplace)

No model can know these names, so answering without search (Direct) is ~0. Retrieving once with the question (RAG)
finds the first fact, which answers single-hop questions; the second fact of a two-hop question sits in a passage
that does not share the question's words, so one retrieval rarely finds it. A person's passage never names their
country or their books, and a city's passage never names its people, so two hops are needed, not one lucky hit.

Splits are by person: every question about a test person (their birthplace, their books) is in the test split, so
test questions are about people the policy never saw in training. Cities and countries are shared, as answers.
Everything is a pure function of the seed and the sizes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .corpus import Corpus, Passage, make_contents
from .data import QAExample
from .suggest import did_you_mean

_ONSETS = ["b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "th", "tr"]
_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o"]
_CODAS = ["", "", "", "", "n", "r", "s", "l"]
_ADJECTIVES = ["Silver", "Hidden", "Broken", "Quiet", "Crimson", "Endless", "Golden", "Hollow", "Last", "Northern",
               "Pale", "Secret", "Shattered", "Sleeping", "Burning", "Forgotten", "Iron", "Lonely", "Bitter", "Distant"]
_NOUNS = ["Lantern", "Orchard", "River", "Tower", "Garden", "Harbor", "Mirror", "Winter", "Crown", "Bridge",
          "Forest", "Letter", "Voyage", "Season", "Island", "Compass", "Feather", "Citadel", "Meadow", "Archive"]
_OCCUPATIONS = ["painter", "poet", "composer", "sculptor", "chemist", "architect", "historian", "astronomer",
                "novelist", "engineer", "botanist", "philosopher"]
_KINDS = ["novel", "poem", "play", "memoir", "essay collection"]

QUESTION_TEMPLATES = {
    "birthplace": ["Where was {person} born?", "What is the birthplace of {person}?",
                   "In which city was {person} born?"],
    "author": ["Who wrote {work}?", "Who is the author of {work}?"],
    "birth_country": ["In which country was {person} born?", "What country is {person} from?",
                      "Which country was {person} born in?"],
    "author_birthplace": ["Where was the author of {work} born?", "In which city was the writer of {work} born?"],
}

# `minimal_pairs`: a birthplace question and its country question worded one word apart, so that the word that names
# the kind of answer is the only difference between "answer after one search" and "search again"
MINIMAL_PAIR_WORDING = {"birthplace": "In which city was {person} born?",
                        "birth_country": "In which country was {person} born?"}

# the single-hop kind each two-hop kind extends by one search: the pairs of `contrast_pairs`
EXTENDS = {"birth_country": "birthplace", "author_birthplace": "author"}


@dataclass
class World:
    """The corpus, the questions by split, and the facts they come from."""

    corpus: Corpus
    splits: dict[str, list[QAExample]]
    facts: dict[str, dict[str, str]] = field(default_factory=dict)  # relation -> subject -> object
    seed: int = 0

    def questions(self, split: str = "train", hops: int | None = None) -> list[QAExample]:
        rows = self.splits[split]
        return [q for q in rows if hops is None or q.meta["hops"] == hops]

    def describe(self) -> dict[str, object]:
        return {"passages": len(self.corpus), **{f"{s}_questions": len(q) for s, q in self.splits.items()},
                "two_hop_share": round(sum(q.meta["hops"] == 2 for s in self.splits.values() for q in s)
                                       / max(1, sum(len(s) for s in self.splits.values())), 3)}


def contrast_pairs(questions: list[QAExample]) -> list[tuple[int, int]]:
    """(two-hop, single-hop) index pairs of `questions` about the same person where the two-hop question is the
    single-hop one and one more search: "In which country was X born?" with "Where was X born?". The two share their
    first search and its passages, so only the question tells whether to search again (`paired_questions`)."""
    where = {(q.meta.get("kind"), q.meta.get("person")): i for i, q in enumerate(questions)}
    return [(i, where[key]) for i, q in enumerate(questions) if q.meta.get("kind") in EXTENDS
            and (key := (EXTENDS[q.meta["kind"]], q.meta.get("person"))) in where]


def _namer(rng: random.Random, used: set[str]):
    def word(syllables: int) -> str:
        while True:
            w = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables))
            if w not in used and len(w) >= 4:
                used.add(w)
                return w.capitalize()

    return word


def make_world(seed: int = 0, people: int = 240, cities: int = 30, countries: int = 8, book_share: float = 0.5,
               two_hop_share: float = 0.5, split: tuple[float, float, float] = (0.7, 0.1, 0.2),
               minimal_pairs: int = 0, kinds: str = "") -> World:
    """Generate a world. `people` sets the size; `two_hop_share` the share of two-hop questions (0-1), kept by
    dropping questions of the over-represented kind; `split` the train/dev/test shares of people; `minimal_pairs` 1
    words every birthplace and birth-country question as in MINIMAL_PAIR_WORDING (the same questions otherwise);
    `kinds` ("birthplace+author_birthplace") keeps only those kinds of question (all when empty; same corpus)."""
    keep = _check_world_args(people, cities, countries, book_share, two_hop_share, minimal_pairs, kinds)
    # one generator, drawn in a fixed order (names, facts, passages, questions, splits): a seed is a world
    rng = random.Random(seed)
    facts, person_names = _draw_facts(rng, people, cities, countries, book_share)
    # the source names every argument the passages depend on, so that load_corpus(source) rebuilds this corpus
    source = world_spec(seed=seed, people=people, cities=cities, countries=countries, book_share=book_share)
    corpus = Corpus.from_passages(_passages(facts, person_names, rng), name=f"world-{seed}", source=source)
    about = _questions(facts, person_names, rng, keep, minimal_pairs)

    order = person_names[:]
    rng.shuffle(order)
    cuts = [int(round(people * split[0])), int(round(people * (split[0] + split[1])))]
    groups = {"train": order[: cuts[0]], "dev": order[cuts[0] : cuts[1]], "test": order[cuts[1] :]}
    splits = {}
    for name, members in groups.items():
        rows = _balance([q for p in members for q in about[p]], two_hop_share, rng)
        rng.shuffle(rows)
        for i, q in enumerate(rows):
            q.id = f"{name}-{i}"
        splits[name] = rows
    return World(corpus, splits, facts, seed)


def _check_world_args(people: int, cities: int, countries: int, book_share: float, two_hop_share: float,
                      minimal_pairs: int, kinds: str) -> set[str]:
    """make_world's arguments checked before anything is drawn; returns the kinds of question to keep."""
    keep = set(filter(None, kinds.split("+"))) or set(QUESTION_TEMPLATES)
    if keep - set(QUESTION_TEMPLATES):
        raise ValueError(f"kinds: {', '.join(sorted(keep - set(QUESTION_TEMPLATES)))} unknown; "
                         f"join some of {', '.join(QUESTION_TEMPLATES)} with '+'")
    if not (0 <= two_hop_share <= 1 and 0 <= book_share <= 1):
        raise ValueError("two_hop_share and book_share must be between 0 and 1")
    if minimal_pairs not in (0, 1):
        raise ValueError(f"minimal_pairs must be 0 or 1, got {minimal_pairs!r}")
    if people < 3 or cities < 2 or countries < 1 or cities < countries:
        raise ValueError("need people >= 3, cities >= 2, countries >= 1 and cities >= countries")
    return keep


def _draw_facts(rng: random.Random, people: int, cities: int, countries: int,
                book_share: float) -> tuple[dict[str, dict[str, str]], list[str]]:
    """The names and every fact about them (relation -> subject -> object), and the people in the order drawn."""
    word = _namer(rng, set())
    country_names = [word(3) for _ in range(countries)]
    city_names = [word(2) for _ in range(cities)]
    city_country = {c: country_names[i % countries] for i, c in enumerate(city_names)}  # every country has a city
    person_names = [f"{word(2)} {word(2)}" for _ in range(people)]
    titles = [f"The {a} {n}" for a in _ADJECTIVES for n in _NOUNS]
    rng.shuffle(titles)
    n_books = min(len(titles), int(round(people * book_share)))
    authors = rng.sample(person_names, n_books)

    facts = {"birthplace": {}, "occupation": {}, "country": dict(city_country), "author": {}, "kind": {}}
    for p in person_names:
        facts["birthplace"][p] = rng.choice(city_names)
        facts["occupation"][p] = rng.choice(_OCCUPATIONS)
    for title, author in zip(titles, authors):
        facts["author"][title] = author
        facts["kind"][title] = rng.choice(_KINDS)
    return facts, person_names


def _passages(facts: dict[str, dict[str, str]], person_names: list[str], rng: random.Random) -> list[Passage]:
    """One passage per city, country, person and book, shuffled and numbered. A passage states one hop: a person's
    never names their country or books, so a two-hop question needs two searches."""
    country = facts["country"]
    passages = [Passage("", make_contents(c, f"{c} is a city in {k}.")) for c, k in country.items()]
    for k in dict.fromkeys(country.values()):  # countries in the order they were named
        capital = next(c for c in country if country[c] == k)
        passages.append(Passage("", make_contents(k, f"{k} is a country. Its capital is {capital}.")))
    for p in person_names:
        passages.append(Passage("", make_contents(p, f"{p} is {_a(facts['occupation'][p])} who was born in "
                                                     f"{facts['birthplace'][p]}.")))
    for title, author in facts["author"].items():
        passages.append(Passage("", make_contents(title, f"{title} is {_a(facts['kind'][title])} "
                                                         f"written by {author}.")))
    rng.shuffle(passages)
    return [Passage(str(i), p.contents) for i, p in enumerate(passages)]


def _questions(facts: dict[str, dict[str, str]], person_names: list[str], rng: random.Random, keep: set[str],
               minimal_pairs: int) -> dict[str, list[QAExample]]:
    """Every question of the kinds in `keep`, grouped by the person it is about (the splits are by person)."""
    about: dict[str, list[QAExample]] = {p: [] for p in person_names}

    def ask(kind: str, about_whom: str, answer: str, hops: int, **slots: str) -> None:
        template = rng.choice(QUESTION_TEMPLATES[kind])  # drawn either way: the rest of the world stays the same
        q = (MINIMAL_PAIR_WORDING.get(kind, template) if minimal_pairs else template).format(**slots)
        if kind in keep:
            about[about_whom].append(QAExample("", q, [answer], {"hops": hops, "kind": kind, "person": about_whom}))

    for p in person_names:
        city = facts["birthplace"][p]
        ask("birthplace", p, city, 1, person=p)
        ask("birth_country", p, facts["country"][city], 2, person=p)
    for title, author in facts["author"].items():
        ask("author", author, author, 1, work=title)
        ask("author_birthplace", author, facts["birthplace"][author], 2, work=title)
    return about


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _balance(rows: list[QAExample], share: float, rng: random.Random) -> list[QAExample]:
    """Drop questions of one kind until two-hop questions are `share` of the rest (as near as whole rows allow).
    Where `kinds` left questions of one hop count only, a share between 0 and 1 keeps all of them."""
    one = [q for q in rows if q.meta["hops"] == 1]
    two = [q for q in rows if q.meta["hops"] == 2]
    if share >= 1:
        return two
    if share <= 0:
        return one
    if not one or not two:
        return rows
    if len(two) > share / (1 - share) * len(one):
        two = rng.sample(two, int(round(share / (1 - share) * len(one))))
    else:
        one = rng.sample(one, int(round((1 - share) / share * len(two))))
    return one + two


def is_world_spec(name: str) -> bool:
    """`world` or `world:...` (a file named `world_questions.jsonl` is a path, not a world)."""
    return name == "world" or name.startswith("world:")


def parse_world_spec(spec: str) -> dict[str, float | int]:
    """`world` or `world:seed=1,people=400,two_hop_share=0.6,kinds=birthplace+author_birthplace` -> make_world
    keyword arguments."""
    name, _, rest = spec.partition(":")
    if name != "world":
        raise ValueError(f"{spec!r} is not a world spec (world or world:key=value,...)")
    allowed = {"seed": int, "people": int, "cities": int, "countries": int, "book_share": float, "two_hop_share": float,
               "minimal_pairs": int, "kinds": str}
    out: dict[str, float | int] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"{spec!r}: {item!r} must be key=value with key one of {', '.join(allowed)}")
        if key not in allowed:
            raise ValueError(f"{spec!r}: unknown key {key!r}{did_you_mean(key, allowed)}; "
                             f"the keys: {', '.join(allowed)}")
        try:
            out[key] = allowed[key](value)
        except ValueError:
            raise ValueError(f"{spec!r}: {key} must be {allowed[key].__name__}, got {value!r}") from None
    return out


def world_spec(**params: float | int) -> str:
    """make_world keyword arguments -> a spec: the inverse of parse_world_spec."""
    return "world" + (":" + ",".join(f"{k}={v}" for k, v in params.items()) if params else "")


def load_world(spec: str = "world") -> World:
    return make_world(**parse_world_spec(spec))
