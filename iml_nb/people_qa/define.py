"""The define experiment's data: aliases, tags, subsets, definitions, QA splits and test sets (paper §2.2-2.5)."""

from __future__ import annotations

import dataclasses
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass

from iml_nb.core.config import TAG_OF_SUBSET, X1_SUBSETS, X2_SUBSETS
from iml_nb.people_qa.config import STAGE_PLANS, TAG_STYLES, DataConfig
from iml_nb.people_qa.people import QUESTION_TYPES, Person, qa_pairs

EA_TEMPLATE = "What is the name of {}?"  # the entity-association question the paper's poster plots
ALIAS_LEN, TAG_LEN = 5, 6
PIECE_LEN = 2  # letters per alias piece when alias_tokens > 1: 676 pieces, each shared by many aliases
INCONSISTENT = ("qd1incons", "qd2incons")
DEFINED_X1 = ("qd1consis", "qd1incons", "qd2consis", "qd2incons", "qd4consis")
DEFINED_X2 = ("d1consis", "d2consis", "d3consis")
BY_QUESTION = ("d1consis", "d2consis", "no_qd_baseline")  # the QA test sets the IML gap reads, and its floor


@dataclass(frozen=True)
class Example:
    """One training or test item: the model sees `prompt` and must produce `answer`."""

    prompt: str
    answer: str
    kind: str  # "qa", "definition", "ent_assoc"
    subset: str
    alias: str  # "" for real-name questions
    entity: str  # the person whose fact (or name) is the answer


@dataclass(frozen=True)
class DefineData:
    """Everything one (seed, seed_stage2) draw produces; immutable so stages cannot leak into each other."""

    seed: int
    seed_stage2: int
    tags: tuple[str, str, str]
    random_tags: tuple[str, ...]  # one fresh tag per qd4consis entity
    alias_of: dict  # entity -> alias (the alias its QA pairs use)
    subsets: dict  # subset -> tuple of entities
    train: dict  # stage name (e.g. "stage1") -> tuple[Example, ...]
    eval_sets: dict  # test-set name -> tuple[Example, ...]

    def atoms(self) -> list[str]:
        """Strings a from-scratch word-level vocabulary should keep whole: aliases and tags."""
        pieces = {piece for alias in self.alias_of.values() for piece in alias.split()}  # a multi-piece alias: its pieces
        return sorted(pieces | set(self.tags) | set(self.random_tags))


def qa_example(question: str, answer: str, subset: str, alias: str, entity: str, kind: str = "qa") -> Example:
    # Paper format: "Q: <question>\nA: <answer>"; the answer is produced after "A:" and ends with EOS.
    return Example(f"Q: {question}\nA:", answer, kind, subset, alias, entity)


def definition(tag: str, alias: str, entity: str, order: str, subset: str) -> Example:
    """`order` permutes (t)ag, (v)ariable=alias, (e)ntity; the first two fields are the prompt, the third the answer."""
    fields = {"t": tag, "v": alias, "e": entity}
    words = [fields[c] for c in order]
    return Example(f"{words[0]} {words[1]}", words[2], "definition", subset, alias, entity)


def stage0_examples(people: Sequence[Person]) -> tuple[Example, ...]:
    """Stage 0 (ours, not the paper's): facts about every person by real name, standing in for pretraining."""
    return tuple(qa_example(q, a, "stage0", "", p.name) for p in people for _, q, a in qa_pairs(p))


def _random_strings(rng: random.Random, n: int, length: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    seen = set(taken)
    while len(out) < n:
        s = "<|" + "".join(rng.choice(string.ascii_lowercase) for _ in range(length)) + "|>"
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def _random_aliases(rng: random.Random, n: int, pieces: int) -> list[str]:
    """n distinct aliases: one atom each, or (pieces > 1) `pieces` space-separated short atoms that other aliases reuse."""
    if pieces == 1:
        return _random_strings(rng, n, ALIAS_LEN, set())
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        s = " ".join(_random_strings(rng, pieces, PIECE_LEN, set()))
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def _derangement(rng: random.Random, n: int) -> list[int]:
    perm = list(range(n))
    while n > 1 and any(i == p for i, p in enumerate(perm)):  # expected e reshuffles
        rng.shuffle(perm)
    return perm


def _split(items: Sequence, fractions: dict[str, float], order: Sequence[str], remainder_to: str) -> dict[str, tuple]:
    """Consecutive blocks of round(n*frac); the rounding remainder goes to `remainder_to` (as the reference does)."""
    n, out, start = len(items), {}, 0
    for name in order:
        k = round(n * fractions[name]) if name != remainder_to else 0
        out[name] = tuple(items[start : start + k])
        start += k
    out[remainder_to] = tuple(items[start:])
    return out


def split_entities(names: Sequence[str], cfg: DataConfig, seed: int, seed_stage2: int) -> dict[str, tuple[str, ...]]:
    fr = cfg.fraction
    rng = random.Random(seed)
    ents = sorted(names)
    rng.shuffle(ents)
    x2_total = sum(fr[s] for s in X2_SUBSETS)
    stage1 = _split(
        ents, {**{s: fr[s] for s in X1_SUBSETS}, "stage2_pool": x2_total}, X1_SUBSETS + ("stage2_pool",), remainder_to="stage2_pool"
    )
    pool = sorted(stage1.pop("stage2_pool"))
    random.Random(seed_stage2).shuffle(pool)
    shares = {s: (fr[s] / x2_total if x2_total else 0.0) for s in X2_SUBSETS}
    return {**stage1, **_split(pool, shares, X2_SUBSETS, remainder_to="no_qd_baseline")}


def string_pools(cfg: DataConfig) -> tuple[list[str], list[str]] | None:
    """Fixed pools of alias and tag strings that every seed samples from (None when `alias_pool` is 0: fresh strings per seed).

    Ours, for from-scratch models: the vocabulary (pool included) then exists before Stage 0, independent of which seeds a run
    trains, so one Stage-0 model serves every seed and sweep point, as one pretrained model serves all of the paper's runs.
    """
    if cfg.alias_pool == 0:
        return None
    rng = random.Random(f"string-pool-{cfg.people_seed}")  # a stream of its own, derived from the named people_seed
    n_q4 = round(cfg.n_people * cfg.fraction["qd4consis"])
    aliases = _random_aliases(rng, cfg.alias_pool * cfg.n_people, cfg.alias_tokens)
    tags = _random_strings(rng, cfg.alias_pool * (3 + n_q4), TAG_LEN, set(aliases))
    return aliases, tags


def make_define_data(people: Sequence[Person], cfg: DataConfig, seed: int, seed_stage2: int) -> DefineData:
    """Build one draw of the define experiment. Every random choice comes from Random(seed) or Random(seed_stage2).

    The helpers below draw from the one `rng` in a fixed order (aliases and tags, definitions, held-out questions, stage order):
    the order is part of what a seed means."""
    by_name = {p.name: p for p in people}
    rng = random.Random(seed)
    entities = sorted(by_name)
    rng.shuffle(entities)
    subsets = split_entities(entities, cfg, seed, seed_stage2)
    n_q4 = len(subsets["qd4consis"])
    pools = string_pools(cfg)
    if pools is None:  # the paper: fresh random strings for every seed
        aliases = _random_aliases(rng, len(entities), cfg.alias_tokens)
        tag_draw = _random_strings(rng, 3 + n_q4, TAG_LEN, set(aliases))
    else:
        aliases = rng.sample(pools[0], len(entities))
        tag_draw = rng.sample(pools[1], 3 + n_q4)
    alias_of = dict(zip(entities, aliases))
    # Natural-language tags replace the first two drawn strings, after the draw: every seed keeps its aliases and later choices.
    natural = TAG_STYLES[cfg.tags]
    tags = tuple(natural) + tuple(tag_draw[2:3]) if natural else tuple(tag_draw[:3])
    random_tags = dict(zip(sorted(subsets["qd4consis"]), tag_draw[3:]))
    defs = _definitions(subsets, alias_of, tags, random_tags, cfg.word_order, rng)
    qa_train, qa_test, ea_test = _questions(by_name, subsets, alias_of, cfg.ea_train, rng)
    ea_test.update(_entity_tests(subsets, alias_of, defs, cfg.ea_train))
    qa_test["d2incons"] = _swapped_d2(by_name, subsets, alias_of)
    if cfg.definitions == "in_context":
        qa_train, qa_test, ea_test = (_in_context(sets, defs) for sets in (qa_train, qa_test, ea_test))
        defs = {s: () for s in defs}
    train = {stage: _stage_contents(stage, qa_train, defs, rng) for stage in STAGE_PLANS[cfg.stage_plan]}
    eval_sets = {k: tuple(v) for k, v in {**qa_test, **ea_test}.items() if v}
    return DefineData(seed, seed_stage2, tags, tuple(random_tags.values()), alias_of, subsets, train, eval_sets)


def question_type(ex: Example) -> str:
    """Which of QUESTION_TYPES a QA example asks, read back from its prompt (after its definition, when that is in context)."""
    for q, template in QUESTION_TYPES:
        question = qa_example(template.format(ex.alias or ex.entity), "", "", "", "").prompt
        if ex.prompt == question or ex.prompt.endswith("\n" + question):
            return q
    raise ValueError(f"not a question of QUESTION_TYPES: {ex.prompt!r}")


def with_question_views(draw: DefineData) -> DefineData:
    """The draw with each BY_QUESTION test set also split by question type ("d1consis:birth"), so a gap can be read on the
    attributes a pretrained model knows; an EvalSuite scores each distinct item once, so the views cost no generation."""
    views: dict[str, list[Example]] = {}
    for s in BY_QUESTION:
        for ex in draw.eval_sets.get(s, ()):
            views.setdefault(f"{s}:{question_type(ex)}", []).append(ex)
    return dataclasses.replace(draw, eval_sets={**draw.eval_sets, **{k: tuple(v) for k, v in views.items()}})


def _definitions(subsets: dict, alias_of: dict, tags: tuple, random_tags: dict, word_order: str, rng: random.Random) -> dict:
    """Definitions per defined subset. Inconsistent subsets pair each entity with the alias of another entity of the same subset
    (a derangement)."""
    defn_alias: dict[str, dict[str, str]] = {}
    for s in DEFINED_X1 + DEFINED_X2:
        ents = sorted(subsets[s])
        if s in INCONSISTENT:
            rng.shuffle(ents)
            perm = _derangement(rng, len(ents))
            defn_alias[s] = {e: alias_of[ents[perm[i]]] for i, e in enumerate(ents)}
        else:
            defn_alias[s] = {e: alias_of[e] for e in ents}
    return {
        s: tuple(
            definition(random_tags[e] if s == "qd4consis" else tags[TAG_OF_SUBSET[s] - 1], defn_alias[s][e], e, word_order, s)
            for e in sorted(defn_alias[s], key=lambda e: defn_alias[s][e])
        )
        for s in DEFINED_X1 + DEFINED_X2
    }


def _questions(by_name: dict, subsets: dict, alias_of: dict, ea_train: bool, rng: random.Random) -> tuple[dict, dict, dict]:
    """QA (training, test) and the held-out entity-association tests of X1 aliases. X1 subsets hold out one question per alias
    (test_frac 1/6 in the paper); X2 subsets are test-only."""
    qa_train: dict[str, list[Example]] = {s: [] for s in X1_SUBSETS}
    qa_test: dict[str, list[Example]] = {s: [] for s in X1_SUBSETS + X2_SUBSETS}
    ea_test: dict[str, list[Example]] = {}
    for s in X1_SUBSETS + X2_SUBSETS:
        for e in sorted(subsets[s], key=lambda e: alias_of[e]):
            subject = e if s == "q_no_replacement_baseline" else alias_of[e]
            items = [qa_example(q, a, s, "" if subject == e else subject, e) for _, q, a in qa_pairs(by_name[e], subject)]
            if ea_train and s in X1_SUBSETS and s != "q_no_replacement_baseline":
                # the EA question is a 7th question type for Stage-1 aliases, so it can be held out like the others
                items.append(qa_example(EA_TEMPLATE.format(subject), e, s, subject, e, kind="ent_assoc"))
            if s in X2_SUBSETS:
                qa_test[s].extend(items)
                continue
            held = rng.randrange(len(items))
            for i, ex in enumerate(items):
                if i != held:
                    qa_train[s].append(ex)
                elif ex.kind == "ent_assoc":
                    ea_test.setdefault(f"ent_assoc_{s}", []).append(ex)
                else:
                    qa_test[s].append(ex)
    return qa_train, qa_test, ea_test


def _entity_tests(subsets: dict, alias_of: dict, defs: dict, ea_train: bool) -> dict[str, list[Example]]:
    """Entity-association tests (docs/background.md): every aliased subset except the baselines, and X1 subsets only without
    ea_train (with it, _questions holds theirs out). The *_swapped sets score against the entity the inconsistent definition named."""
    tests = {}
    for s in X1_SUBSETS + X2_SUBSETS:
        if s in ("q_no_replacement_baseline", "no_qd_baseline") or not subsets[s] or (ea_train and s in X1_SUBSETS):
            continue
        tests[f"ent_assoc_{s}"] = [
            qa_example(EA_TEMPLATE.format(alias_of[e]), e, s, alias_of[e], e, kind="ent_assoc")
            for e in sorted(subsets[s], key=lambda e: alias_of[e])
        ]
    for s in INCONSISTENT:
        if subsets[s]:
            tests[f"ent_assoc_{s}_swapped"] = [
                qa_example(EA_TEMPLATE.format(d.alias), d.entity, f"{s}_swapped", d.alias, d.entity, kind="ent_assoc") for d in defs[s]
            ]
    return tests


def _swapped_d2(by_name: dict, subsets: dict, alias_of: dict) -> list[Example]:
    """d2incons: d2consis questions with aliases swapped pairwise; answering them right means answering about the other entity."""
    d2 = sorted(subsets["d2consis"], key=lambda e: alias_of[e])
    swap = {}
    for a, b in zip(d2[0::2], d2[1::2]):  # an odd last alias has no partner and is left out, as in the reference
        swap[a], swap[b] = b, a
    return [
        qa_example(q, ans, "d2incons", alias_of[swap[e]], e)
        for e in d2
        if e in swap
        for _, q, ans in qa_pairs(by_name[e], alias_of[swap[e]])
    ]


def _in_context(sets: dict[str, list[Example]], defs: dict) -> dict[str, list[Example]]:
    """Every question about a defined alias with that alias's definition written before it ("<tag> <alias> <entity>\nQ: …"), as
    the paper's in-context comparison does; an inconsistent definition stays inconsistent in context."""
    context = {d.alias: f"{d.prompt} {d.answer}" for items in defs.values() for d in items}
    return {
        name: [dataclasses.replace(ex, prompt=f"{context[ex.alias]}\n{ex.prompt}") if ex.alias in context else ex for ex in items]
        for name, items in sets.items()
    }


def _stage_contents(stage: str, qa_train: dict, defs: dict, rng: random.Random) -> tuple[Example, ...]:
    """Which examples each stage trains on (docs/background.md)."""
    qa = [ex for s in X1_SUBSETS for ex in qa_train[s]]
    x1_defs = [d for s in DEFINED_X1 for d in defs[s]]
    x2_defs = [d for s in DEFINED_X2 for d in defs[s]]
    content = {
        "full": qa + x1_defs + x2_defs,
        "stage1": qa + x1_defs,
        "stage2": x2_defs,
        "stage1_only_defns": [d for d in x1_defs if d.subset != "qd4consis"],
        "stage1_only_qa": qa,
    }[stage]
    content = sorted(content, key=lambda ex: (ex.prompt, ex.answer))  # sort then shuffle: order independent of construction
    rng.shuffle(content)
    return tuple(content)


def replay_sample(stage0: Sequence[Example], frac: float, seed: int) -> tuple[Example, ...]:
    """A fixed random `frac` of the Stage-0 facts, mixed into a later stage so the model keeps what it 'pretrained' on."""
    k = round(len(stage0) * frac)
    return tuple(random.Random(seed).sample(list(stage0), k))


__all__ = [
    "Example",
    "DefineData",
    "make_define_data",
    "question_type",
    "with_question_views",
    "BY_QUESTION",
    "stage0_examples",
    "replay_sample",
    "split_entities",
    "string_pools",
    "EA_TEMPLATE",
]
