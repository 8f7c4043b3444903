"""Examples -> padded token tensors with per-position targets, and the answer-only forward pass shared by training and evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from iml_nb.people_qa.define import Example

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    """Right-padded inputs; targets[i, t] is the token position t must predict, or IGNORE."""

    input_ids: torch.Tensor  # (n, max_len) long
    targets: torch.Tensor  # (n, max_len) long
    lengths: torch.Tensor  # (n,) real tokens per row
    prompt_lengths: torch.Tensor  # (n,) tokens before the answer, BOS included

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        width = int(self.lengths[idx].max())  # trim to the longest row of this batch
        return self.input_ids[idx, :width], self.targets[idx, :width]


def prefix_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """What the tokenizer puts before any text (BOS for Llama-style models, nothing for GPT-NeoX)."""
    return tokenizer("", add_special_tokens=True)["input_ids"]


def encode(examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, loss_on: str = "answer") -> Encoded:
    """Tokenise prompt and " answer" separately so the answer boundary is exact; the answer is followed by EOS.

    The input omits the final EOS: it is only ever a target (the model must stop after the answer).
    `loss_on="answer"` targets the answer tokens + EOS; `"all"` every next token (the reference trains on all text).
    """
    prefix = prefix_ids(tokenizer)
    prompts = tokenizer([ex.prompt for ex in examples], add_special_tokens=False)["input_ids"]
    answers = tokenizer([" " + ex.answer for ex in examples], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    n = len(examples)
    width = max((len(prefix) + len(p) + len(a) for p, a in zip(prompts, answers)), default=1)
    input_ids = torch.full((n, width), tokenizer.pad_token_id, dtype=torch.long)
    targets = torch.full((n, width), IGNORE, dtype=torch.long)
    lengths = torch.empty(n, dtype=torch.long)
    prompt_lengths = torch.empty(n, dtype=torch.long)
    for i, (p, a) in enumerate(zip(prompts, answers)):
        seq = prefix + p + a
        k = len(prefix) + len(p)
        input_ids[i, : len(seq)] = torch.tensor(seq)
        nxt = torch.tensor(seq[1:] + [eos])
        start = 0 if loss_on == "all" else k - 1
        targets[i, start : len(seq)] = nxt[start:]
        lengths[i], prompt_lengths[i] = len(seq), k
    return Encoded(input_ids, targets, lengths, prompt_lengths)


def target_logits(model: torch.nn.Module, input_ids: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits only where a target exists: the LM head and softmax over the vocabulary run on ~1/4 of the positions.

    No attention mask is needed: padding is on the right, so causal attention never lets a real position see a pad.
    """
    hidden = model.base_model(input_ids=input_ids, use_cache=False).last_hidden_state  # (batch, seq, d_model)
    sel = targets != IGNORE
    return model.get_output_embeddings()(hidden[sel]), sel
