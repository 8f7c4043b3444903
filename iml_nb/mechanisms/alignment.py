"""Where does an alias point? Cosines between an alias's input-embedding row and the rows of the person its definition names,
recorded at the end of every stage of a from-scratch run (metric `cos`, subsets `align_<subset>`; no extra training).

The hypothesis this measures (docs/background.md, tied embeddings): a definition `tag alias Name` trains the alias position to
predict the Name token. With tied input/output embeddings that pulls the alias's input row toward the Name's row, so what Stage 0
stored for the Name becomes reachable through the alias; untied, nothing pulls the alias's input row toward the Name's input row."""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from iml_nb.people_qa.define import DefineData

N_OTHERS = 20  # people per alias whose rows give the chance level


def alignment(model: torch.nn.Module, tokenizer, data: DefineData, subsets: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """{`align_<subset>`: {"cos": mean cosine of alias row and named person's row, "cos_other": the same with N_OTHERS other people}}.

    Rows are centred on the mean input row first (every row shares a large common direction). The named person is the one the
    alias's definition names (the wrong one for inconsistent definitions); without a definition, the person its questions are about.
    Only for one-token aliases in a word-level vocabulary; {} otherwise."""
    rows = model.get_input_embeddings().weight.detach()
    rows = rows - rows.mean(0)

    def ids(tokens: list[str]) -> list[int] | None:
        out = tokenizer.convert_tokens_to_ids(tokens)
        return None if tokenizer.unk_token_id in out else out

    named = {ex.alias: ex.entity for stage in data.train.values() for ex in stage if ex.kind == "definition"}
    people = sorted({e for group in data.subsets.values() for e in group})
    rng = random.Random(data.seed)
    out = {}
    for subset in subsets:
        pairs = [(data.alias_of[e], named.get(data.alias_of[e], e)) for e in data.subsets.get(subset, ())]
        alias_ids, person_ids = ids([a for a, _ in pairs]), ids([p for _, p in pairs])
        if not pairs or alias_ids is None or person_ids is None:
            continue
        others = ids([n for _, p in pairs for n in rng.sample(people, N_OTHERS)])
        if others is None:
            continue
        a = rows[alias_ids]
        other = rows[others].view(len(pairs), N_OTHERS, -1)
        out[f"align_{subset}"] = {
            "cos": float(F.cosine_similarity(a, rows[person_ids], dim=-1).mean()),
            "cos_other": float(F.cosine_similarity(a.unsqueeze(1), other, dim=-1).mean()),
        }
    return out


__all__ = ["N_OTHERS", "alignment"]
