"""How much does a (pretrained) model already know about the people? IML without a Stage 0 needs the model to know them: a
definition can only make an alias reachable to facts the model holds.

Per attribute: exact match of the model's answers to "Q: <question about the person by name>\\nA:", zero-shot and after a short
format-only warm-up on *other* people's facts (so the answer format is learned, not these people's facts), next to the majority
answer's share (what always giving the most common answer would score)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pandas as pd

from iml_nb.core.config import TrainConfig
from iml_nb.core.env import log_progress
from iml_nb.core.results import atomic_write_folder
from iml_nb.lm.encode import encode
from iml_nb.lm.evaluate import EvalSuite
from iml_nb.lm.train import train_stage
from iml_nb.people_qa import stage0
from iml_nb.people_qa.config import ExperimentConfig
from iml_nb.people_qa.define import DefineData, Example, make_define_data, qa_example, question_type, stage0_examples
from iml_nb.people_qa.people import Person, qa_pairs


def by_attribute(people: tuple[Person, ...]) -> dict[str, tuple[Example, ...]]:
    """The people's facts by real name (as Stage 0 states them), grouped by attribute (question type)."""
    groups: dict[str, list[Example]] = {}
    for p in people:
        for qtype, question, answer in qa_pairs(p):
            groups.setdefault(qtype, []).append(qa_example(question, answer, "stage0", "", p.name))
    return {q: tuple(v) for q, v in groups.items()}


def majority_share(examples: tuple[Example, ...]) -> float:
    counts = Counter(ex.answer for ex in examples)
    return counts.most_common(1)[0][1] / len(examples) if examples else float("nan")


def knowledge_check(
    model,
    tokenizer,
    people: tuple[Person, ...],
    warmup: tuple[Person, ...] = (),
    warmup_epochs: int = 1,
    lr: float = 1e-5,
    seed: int = 0,
    batch_size: int = 64,
    mode: str = "generate",
) -> pd.DataFrame:
    """One row per attribute: zero-shot EM on `people`, the EM after a warm-up of `warmup_epochs` on the facts of the `warmup`
    people (other people: people.other_people), when there are any, and the majority answer's share.

    The model is changed in place by the warm-up; pass a copy to keep it. mode: "generate" (greedy decoding, the paper's) or
    "fast" (teacher-forced, equal for one-token answers)."""
    overlap = {p.name for p in warmup} & {p.name for p in people}
    if overlap:
        raise ValueError(f"the warm-up people must not be the checked people: {sorted(overlap)[:3]} are both")
    sets = by_attribute(people)
    suite = EvalSuite(sets)
    rows = {q: {"attribute": q, "people": len(v), "majority": majority_share(v)} for q, v in sets.items()}
    n_questions = sum(len(v) for v in sets.values())
    log_progress(f"knowledge check: {n_questions} questions zero-shot")  # minutes of generation with no seed bar to show them
    for q, res in suite.run(model, tokenizer, mode, batch_size).items():
        rows[q]["zero_shot"] = res["em"]
    if warmup:
        log_progress(f"knowledge check: format warm-up on {len(warmup)} other people, {warmup_epochs} epoch(s)")
        train_stage(model, encode(stage0_examples(warmup), tokenizer, "answer"), TrainConfig(lr=lr, batch_size=16), warmup_epochs, seed)
        log_progress(f"knowledge check: {n_questions} questions after the warm-up")
        for q, res in suite.run(model, tokenizer, mode, batch_size).items():
            rows[q]["after_warmup"] = res["em"]
    return pd.DataFrame(list(rows.values()))


TWO_HOP_WAYS = ("by_name", "alias_alone", "alias_in_context")


def two_hop_check(
    model, tokenizer, draw: DefineData, subsets=("d1consis", "d2consis"), batch_size: int = 64, mode: str = "generate"
) -> pd.DataFrame:
    """Can the model go from a definition to a fact at all? Each test question of `subsets` (the Stage-2 aliases of one draw)
    asked three ways, untrained on any of them: about the person by real name (what the model knows), about the alias alone
    (a guess), and about the alias with its definition written before the question (the hop done in context), which is about the
    most internalizing a *trained* definition could reach. One row per subset and attribute, EM per way.

    Run it after the format warm-up of knowledge_check, on the same (changed) model."""
    definitions = {d.alias: f"{d.prompt} {d.answer}" for d in draw.train[list(draw.train)[-1]] if d.kind == "definition"}
    sets: dict[str, tuple[Example, ...]] = {}
    for s in subsets:
        items = draw.eval_sets.get(s, ())
        missing = [ex.alias for ex in items if ex.alias not in definitions]
        if not items or missing:
            raise ValueError(f"`subsets`: {s!r} needs test questions about aliases defined in the last stage")
        sets[f"{s}|alias_alone"] = items
        sets[f"{s}|alias_in_context"] = tuple(replace(ex, prompt=f"{definitions[ex.alias]}\n{ex.prompt}") for ex in items)
        sets[f"{s}|by_name"] = tuple(replace(ex, prompt=ex.prompt.replace(ex.alias, ex.entity), alias="") for ex in items)
    views: dict[str, list[Example]] = {}
    for name, items in sets.items():
        for ex in items:
            views.setdefault(f"{name}|{question_type(ex)}", []).append(ex)
    log_progress(f"two-hop check: {sum(len(v) for v in sets.values())} questions (by name, alias alone, alias in context)")
    scores = EvalSuite({k: tuple(v) for k, v in views.items()}).run(model, tokenizer, mode, batch_size)
    rows = {}
    for key, res in scores.items():
        subset, way, attribute = key.split("|")
        row = rows.setdefault((subset, attribute), {"subset": subset, "attribute": attribute, "questions": len(views[key])})
        row[way] = res["em"]
    return pd.DataFrame(list(rows.values()))[["subset", "attribute", "questions", *TWO_HOP_WAYS]]


def checks(
    cfg: ExperimentConfig, people: tuple[Person, ...], warmup: tuple[Person, ...], warmup_epochs: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """knowledge_check on `people` after the format warm-up, then two_hop_check on the first seed's draw, on a model
    loaded for them alone (the warm-up changes it); or both frames from the cache (stage0.checks_dir) when the same code already
    ran them with the same settings, so a run resumed in a later sitting does not repeat ten minutes of generation."""
    cached = stage0.checks_dir(cfg, warmup, warmup_epochs)
    if (cached / "two_hop.csv").exists():
        log_progress("knowledge and two-hop checks: read from the cache")
        return pd.read_csv(cached / "knowledge.csv"), pd.read_csv(cached / "two_hop.csv")
    network, tokenizer = stage0.base_model(cfg, people)
    known = knowledge_check(network, tokenizer, people, warmup, warmup_epochs, lr=cfg.train.lr, batch_size=cfg.run.eval_batch_size)
    draw = make_define_data(people, cfg.data, cfg.run.seed, 0)
    two_hop = two_hop_check(network, tokenizer, draw, batch_size=cfg.run.eval_batch_size, mode=cfg.run.eval_mode)

    def write(tmp) -> None:
        known.to_csv(tmp / "knowledge.csv", index=False)
        two_hop.to_csv(tmp / "two_hop.csv", index=False)

    atomic_write_folder(cached, write)
    return known, two_hop


__all__ = ["TWO_HOP_WAYS", "by_attribute", "checks", "knowledge_check", "majority_share", "two_hop_check"]
