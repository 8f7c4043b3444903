"""The one training loop, used by every stage of every experiment (paper §2.6)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from iml_nb.core.config import TrainConfig
from iml_nb.core.results import atomic_write_bytes
from iml_nb.lm.encode import Encoded, target_logits


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        # beta2 0.98: faster-adapting second moments suit the few thousand steps of a CPU run
        return torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adafactor":  # the paper's optimiser, without relative steps or parameter scaling
        return torch.optim.Adafactor(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "linear":  # the HF Trainer default the paper's runs used: decay to 0 over each stage
            return max(0.0, (total_steps - step) / max(1, total_steps - cfg.warmup_steps))
        return 1.0

    return factor


def batch_loss(model: torch.nn.Module, data: Encoded, idx: torch.Tensor) -> torch.Tensor:
    device = next(model.parameters()).device
    input_ids, targets = (t.to(device, non_blocking=True) for t in data.batch(idx))
    logits, sel = target_logits(model, input_ids, targets)
    return F.cross_entropy(logits, targets[sel])


def train_stage(
    model: torch.nn.Module,
    data: Encoded | Callable[[int], Encoded],
    cfg: TrainConfig,
    epochs: int,
    seed: int,
    on_epoch_end: Callable[[int, float, int], bool | None] = lambda epoch, loss, steps: None,
    on_step: Callable[[], None] = lambda: None,
    loss_fn: Callable[[torch.nn.Module, object, torch.Tensor], torch.Tensor] | None = None,
    checkpoint: Path | None = None,
    extra: dict[str, list] | None = None,
) -> list[float]:
    """Train for `epochs` passes over `data` in batches reshuffled each epoch by a generator seeded with `seed`.

    `data` may be a function epoch -> Encoded (examples redrawn every epoch, e.g. set-inclusion questions); every epoch must
    then have the same number of examples.

    A fresh optimiser and schedule per stage, as in the reference (each stage is a new HF Trainer).
    Returns the mean training loss of each epoch; `on_epoch_end(epoch, loss, steps)` runs evaluation (steps: optimizer steps
    of this stage so far), and ends the stage early by returning True (`epochs` is then the most it trains).
    `loss_fn(model, data, idx)` replaces the language-model loss for other data (the MNIST variant's images).

    `checkpoint`: a file the stage's whole state (weights, optimiser, schedule, shuffling generator, epoch, losses and the lists in
    `extra`, e.g. the caller's metric rows) is written to after every epoch, and resumed from when it exists, so a stage longer
    than the time a process has continues where it stopped, on the same batches. The caller removes it once the result is saved.
    """
    loss_fn = loss_fn or batch_loss
    first = data(1) if callable(data) else data
    n = len(first)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    optimizer = make_optimizer(model, cfg)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, steps_per_epoch * epochs))
    generator = torch.Generator().manual_seed(seed)
    losses = []
    start = 1
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location=next(model.parameters()).device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        losses, start = state["losses"], state["epoch"] + 1
        for name, values in (extra or {}).items():
            values[:] = state["extra"][name]  # in place: the caller holds these lists
    for epoch in range(start, epochs + 1):
        model.train()
        batch_data = data(epoch) if callable(data) and epoch > 1 else first
        if len(batch_data) != n:
            raise ValueError(f"epoch {epoch} has {len(batch_data)} examples, epoch 1 had {n}")
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for step in range(steps_per_epoch):
            loss = loss_fn(model, batch_data, order[step * cfg.batch_size : (step + 1) * cfg.batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            schedule.step()
            total += loss.item()
            on_step()
        losses.append(total / steps_per_epoch)
        if on_epoch_end(epoch, losses[-1], epoch * steps_per_epoch):
            break
        if checkpoint is not None:
            state = io.BytesIO()
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "generator": generator.get_state(),
                    "epoch": epoch,
                    "losses": losses,
                    "extra": {name: list(values) for name, values in (extra or {}).items()},
                },
                state,
            )
            atomic_write_bytes(checkpoint, state.getvalue())  # a kill while writing keeps the previous epoch's state
    return losses
