"""How much does a (pretrained) model already know about the people? IML without a Stage 0 needs the model to know them: a
definition can only make an alias reachable to facts the model holds.

Per attribute: exact match of the model's answers to "Q: <question about the person by name>\\nA:", zero-shot and after a short
format-only warm-up on *other* people's facts (so the answer format is learned, not these people's facts), next to the majority
answer's share (what always giving the most common answer would score)."""

from __future__ import annotations

from collections import Counter

import pandas as pd

from iml_nb.core.config import TrainConfig
from iml_nb.lm.encode import encode
from iml_nb.lm.evaluate import EvalSuite
from iml_nb.lm.train import train_stage
from iml_nb.people_qa.define import Example, qa_example, stage0_examples
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
    for q, res in suite.run(model, tokenizer, mode, batch_size).items():
        rows[q]["zero_shot"] = res["em"]
    if warmup:
        train_stage(model, encode(stage0_examples(warmup), tokenizer, "answer"), TrainConfig(lr=lr, batch_size=16), warmup_epochs, seed)
        for q, res in suite.run(model, tokenizer, mode, batch_size).items():
            rows[q]["after_warmup"] = res["em"]
    return pd.DataFrame(list(rows.values()))


__all__ = ["by_attribute", "knowledge_check", "majority_share"]
