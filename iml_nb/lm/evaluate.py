"""Exact match and F1: a fast teacher-forced path and greedy generation, which give the same EM up to near-ties (paper §2.5)."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from iml_nb.lm.encode import Encoded, encode, prefix_ids, target_logits
from iml_nb.people_qa.define import Example


def normalize(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(max(normalize(prediction) == normalize(g) for g in gold.split(";")))


def f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 over normalised words, max over ';'-separated gold answers."""

    def one(pred: str, g: str) -> float:
        p, t = normalize(pred).split(), normalize(g).split()
        if not p or not t:
            return float(p == t)
        common = sum((Counter(p) & Counter(t)).values())
        if common == 0:
            return 0.0
        precision, recall = common / len(p), common / len(t)
        return 2 * precision * recall / (precision + recall)

    return max(one(prediction, g) for g in gold.split(";"))


# Logits. The teacher-forced pass (right padding, whole answer at once) and greedy generation (left padding, KV cache) compute the
# same logits up to float rounding: at most ~1e-5 apart (measured on a trained untied model, 3498 items). Where an answer
# position's top two logits are closer than that, the two argmaxes can differ; NEAR_TIE is ten times the measured difference.
NEAR_TIE = 1e-4


@torch.no_grad()
def teacher_forced(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    batch_size: int = 512,
    encoded: Encoded | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass per batch: (correct, margin) per item. An item is correct iff the argmax at every answer position and at the
    stop position is the target; margin is the smallest gap between the top two logits over those positions.

    Correct is exactly the condition under which greedy decoding emits the answer tokens and then EOS, so the EM equals the
    generation EM on every item whose margin exceeds the float noise between the two computations (NEAR_TIE), as long as the
    answer's tokenisation is the only one that normalises to it.
    `encoded`: `encode(examples, tokenizer, "answer")` done before (EvalSuite keeps it: it was a sixth of every evaluation).
    """
    model.eval()
    device = next(model.parameters()).device
    data = encoded if encoded is not None else encode(examples, tokenizer, loss_on="answer")
    correct = torch.empty(len(data), dtype=torch.bool)
    margin = torch.empty(len(data))
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)))
        input_ids, targets = (t.to(device) for t in data.batch(idx))
        logits, sel = target_logits(model, input_ids, targets)
        top2 = logits.topk(2, dim=-1).values.float().cpu()
        wrong = (logits.argmax(-1) != targets[sel]).float().cpu()
        rows = sel.nonzero()[:, 0].cpu()
        correct[idx] = torch.zeros(len(idx)).index_add_(0, rows, wrong) == 0
        margin[idx] = torch.full((len(idx),), float("inf")).scatter_reduce(0, rows, top2[:, 0] - top2[:, 1], "amin")
    return correct, margin


def teacher_forced_correct(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    batch_size: int = 512,
    encoded: Encoded | None = None,
) -> torch.Tensor:
    """The `correct` half of teacher_forced: fast exact match per item."""
    return teacher_forced(model, tokenizer, examples, batch_size, encoded)[0]


@torch.no_grad()
def generate(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], batch_size: int = 256, max_new_tokens: int = 8
) -> list[str]:
    """Greedy decoding of left-padded prompts, cut at EOS or the first newline (the reference relied on EOS alone)."""
    model.eval()
    prefix = prefix_ids(tokenizer)
    encoded = [prefix + ids for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
    outputs: list[str] = []
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        width = max(len(x) for x in chunk)
        input_ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, ids in enumerate(chunk):
            input_ids[i, width - len(ids) :] = torch.tensor(ids)
            mask[i, width - len(ids) :] = 1
        device = next(model.parameters()).device
        generated = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        for row in generated[:, width:].cpu():
            text = tokenizer.decode(row, skip_special_tokens=True)
            outputs.append(text.split("\n")[0].strip())
    return outputs


class EvalSuite:
    """All test sets of one phase, de-duplicated so every distinct item is scored once per evaluation."""

    def __init__(self, sets: Mapping[str, Sequence[Example]]):
        self.sets = {name: tuple(items) for name, items in sets.items() if items}
        keys: dict[tuple[str, str], int] = {}
        for items in self.sets.values():
            for ex in items:
                keys.setdefault((ex.prompt, ex.answer), len(keys))
        self.items = [Example(p, a, "", "", "", "") for (p, a) in keys]
        self.index = {name: torch.tensor([keys[(ex.prompt, ex.answer)] for ex in items]) for name, items in self.sets.items()}
        self._encoded: tuple[PreTrainedTokenizerBase, Encoded] | None = None  # the items encoded, for the tokenizer it was done with

    def encoded(self, tokenizer: PreTrainedTokenizerBase) -> Encoded:
        if self._encoded is None or self._encoded[0] is not tokenizer:
            self._encoded = (tokenizer, encode(self.items, tokenizer, loss_on="answer"))
        return self._encoded[1]

    def run(
        self, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, mode: str = "fast", batch_size: int = 512, max_new_tokens: int = 8
    ) -> dict[str, dict[str, float]]:
        """{set name: {metric: value}}. "fast": em (teacher-forced); "generate": em and f1 of greedy generation (F1 needs the
        decoded text); "both": fast em, em_generate and f1, and the share of items on which the two disagree (em_disagree), on which
        they disagree at a near-tie of the top two logits (em_disagree_tie), and on which only generation is right away from a
        near-tie (em_disagree_lenient): the SQuAD normalisation forgives tokens around the answer that teacher forcing counts as
        wrong (seen: ": 1990s" for "1990s"). checks.fast_matches_generation reads them."""
        if mode == "fast":
            correct = teacher_forced_correct(model, tokenizer, self.items, batch_size, self.encoded(tokenizer)).float()
            return {name: {"em": float(correct[idx].mean())} for name, idx in self.index.items()}
        preds = generate(model, tokenizer, [ex.prompt for ex in self.items], batch_size, max_new_tokens)
        em = torch.tensor([exact_match(p, ex.answer) for p, ex in zip(preds, self.items)])
        f = torch.tensor([f1(p, ex.answer) for p, ex in zip(preds, self.items)])
        if mode == "generate":
            return {name: {"em": float(em[idx].mean()), "f1": float(f[idx].mean())} for name, idx in self.index.items()}
        correct, margin = teacher_forced(model, tokenizer, self.items, batch_size, self.encoded(tokenizer))
        disagree = correct.float() != em
        at_tie = disagree & (margin < NEAR_TIE)
        lenient = disagree & em.bool() & ~at_tie
        return {
            name: {
                "em": float(correct[idx].float().mean()),
                "em_generate": float(em[idx].mean()),
                "f1": float(f[idx].mean()),
                "em_disagree": float(disagree[idx].float().mean()),
                "em_disagree_tie": float(at_tie[idx].float().mean()),
                "em_disagree_lenient": float(lenient[idx].float().mean()),
            }
            for name, idx in self.index.items()
        }

    def predictions(
        self, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, name: str, limit: int = 10, max_new_tokens: int = 8
    ) -> list[dict]:
        """Model answers for a few items of one set, for display."""
        items = self.sets[name][:limit]
        preds = generate(model, tokenizer, [ex.prompt for ex in items], max_new_tokens=max_new_tokens)
        return [{"prompt": ex.prompt, "gold": ex.answer, "prediction": p, "em": exact_match(p, ex.answer)} for ex, p in zip(items, preds)]


__all__ = ["NEAR_TIE", "normalize", "exact_match", "f1", "teacher_forced", "teacher_forced_correct", "generate", "EvalSuite"]
