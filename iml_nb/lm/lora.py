"""LoRA fine-tuning (peft) for the define stages of a pretrained model: a fresh adapter per stage, merged into the weights when
the stage ends, so between stages the model is a plain network again (the Stage-1 cache, the evaluation and the next stage see
ordinary weights). Full fine-tuning is rank 0."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def adapters(model: torch.nn.Module, rank: int) -> Iterator[torch.nn.Module]:
    """Inside the block, `model` (changed in place) trains only rank-`rank` adapters on its linear layers (not the embeddings
    nor the output head, as peft's "all-linear"); on leaving, they are merged into the weights and every weight trains again."""
    if rank == 0:
        yield model
        return
    from peft import LoraConfig, get_peft_model

    # alpha = rank: the adapter's update is scaled by 1, so `lr` means the same step size at every rank
    with warnings.catch_warnings():  # peft asks transformers a deprecated question (is_gradient_checkpointing)
        warnings.simplefilter("ignore", FutureWarning)
        wrapped = get_peft_model(model, LoraConfig(r=rank, lora_alpha=rank, target_modules="all-linear", lora_dropout=0.0))
    try:
        yield model
    finally:
        wrapped.merge_and_unload()
        for p in model.parameters():
            p.requires_grad_(True)


def trainable_share(model: torch.nn.Module) -> float:
    """Fraction of the parameters the optimiser updates."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad) / total


__all__ = ["adapters", "trainable_share"]
