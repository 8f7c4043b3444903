"""Gradient alignment (paper §9.3): during single-stage training, how well does the gradient of a new definition align
with the gradients of the questions about the same alias, for the reliable tag (d1consis) vs the unreliable one (d2consis)?

The model is trained exactly as the main experiment's one-stage runs (same data, replay, seeds, loop), at one batch size per
config; at chosen epochs, in evaluation mode, every d1consis/d2consis definition's full-parameter gradient is compared (cosine) with
the gradient of each QA pair about its alias, paired through an explicit alias -> questions map. Optionally the gradients are first
sketched to `project_dim` dimensions (a CountSketch: a random bucket and sign per parameter, which preserves inner products in
expectation) so large models need not keep full gradients.
"""

from __future__ import annotations

import functools
from collections import defaultdict

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from iml_nb.analysis.stats import mean_ci
from iml_nb.core.parallel import Stream, derived_seed, run_seeds
from iml_nb.core.parameters import require, require_int
from iml_nb.core.results import metric_rows, metrics_frame, train_rows
from iml_nb.lm import model as models
from iml_nb.lm.encode import encode, target_logits
from iml_nb.lm.evaluate import EvalSuite
from iml_nb.lm.train import train_stage
from iml_nb.people_qa.config import ExperimentConfig, grid
from iml_nb.people_qa.define import DefineData, Example, make_define_data, replay_sample, stage0_examples
from iml_nb.people_qa.experiment import last_stage_seed, replay_seed
from iml_nb.people_qa.people import load_people
from iml_nb.people_qa.stage0 import run_stage0

SUBSETS = ("d1consis", "d2consis")


def pairs_by_alias(data: DefineData, stage: str, subsets=SUBSETS) -> dict[str, dict[str, tuple[Example, list[Example]]]]:
    """subset -> alias -> (its definition in `stage`, its QA pairs). Matched by alias, never by position or sort order; an alias
    with no definition or no question is left out."""
    definitions = {ex.alias: ex for ex in data.train[stage] if ex.kind == "definition" and ex.subset in subsets}
    questions: dict[str, list[Example]] = defaultdict(list)
    for s in subsets:
        for ex in data.eval_sets.get(s, ()):
            questions[ex.alias].append(ex)
    out: dict[str, dict] = {s: {} for s in subsets}
    for alias, d in definitions.items():
        if questions.get(alias):
            out[d.subset][alias] = (d, questions[alias])
    return out


class Sketch:
    """CountSketch of a flattened gradient: parameter i goes to bucket h(i) with sign s(i); dim 0 keeps the full gradient."""

    def __init__(self, model: torch.nn.Module, dim: int, seed: int = 0):
        self.dim = dim
        if dim:
            g = torch.Generator().manual_seed(seed)
            n = sum(p.numel() for p in model.parameters() if p.requires_grad)
            self.bucket = torch.randint(0, dim, (n,), generator=g)
            self.sign = torch.randint(0, 2, (n,), generator=g, dtype=torch.int8).float() * 2 - 1

    def __call__(self, flat: torch.Tensor) -> torch.Tensor:
        if not self.dim:
            return flat
        return torch.zeros(self.dim, dtype=flat.dtype).index_add_(0, self.bucket, flat * self.sign)


def example_gradient(model: torch.nn.Module, tokenizer, example: Example, loss_on: str, sketch: Sketch) -> torch.Tensor:
    """The (sketched) gradient of one example's training loss, all trainable parameters flattened, on the CPU."""
    data = encode([example], tokenizer, loss_on)
    device = next(model.parameters()).device
    input_ids, targets = (t.to(device) for t in data.batch(torch.tensor([0])))
    model.zero_grad(set_to_none=True)
    logits, sel = target_logits(model, input_ids, targets)
    F.cross_entropy(logits, targets[sel]).backward()
    flat = (
        torch.cat(
            [
                p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), device=p.device)
                for p in model.parameters()
                if p.requires_grad
            ]
        )
        .float()
        .cpu()
    )
    model.zero_grad(set_to_none=True)
    return sketch(flat)


def alignment(model: torch.nn.Module, tokenizer, pairs: dict, loss_on: str, sketch: Sketch) -> dict[str, float]:
    """subset -> mean over aliases of the mean cosine between the definition's gradient and each of its questions' gradients."""
    model.eval()
    out = {}
    for subset, by_alias in pairs.items():
        per_alias = []
        for definition, questions in by_alias.values():
            g_def = example_gradient(model, tokenizer, definition, loss_on, sketch)
            per_alias.append(
                np.mean(
                    [float(F.cosine_similarity(g_def, example_gradient(model, tokenizer, q, loss_on, sketch), dim=0)) for q in questions]
                )
            )
        out[subset] = float(np.mean(per_alias)) if per_alias else float("nan")
    return out


def run_seed(
    cfg: ExperimentConfig, measure_epochs: tuple[int, ...], project_dim: int, stage0_dir: str, seed: int, report=lambda msg: None
) -> list[dict]:
    """One-stage training of one seed (the main experiment's data, replay and seeds), measuring alignment and EM at `measure_epochs`."""
    people = load_people(cfg)
    model, tokenizer = models.load_saved(stage0_dir)
    model.to(models.resolve_device(cfg.run.device))
    data = make_define_data(people, cfg.data, seed, 0)
    stage = cfg.stages[-1]
    pairs = pairs_by_alias(data, stage)
    replay = replay_sample(stage0_examples(people), cfg.data.replay_frac, replay_seed(seed, 1, 0))  # as experiment.run_seed
    sketch = Sketch(model, project_dim, derived_seed(seed, Stream.SKETCH))
    suite = EvalSuite({s: data.eval_sets[s] for s in SUBSETS})
    rows: list[dict] = []

    def on_epoch_end(epoch: int, loss: float, steps: int) -> None:
        if epoch in measure_epochs:
            cos = alignment(model, tokenizer, pairs, cfg.train.loss_on, sketch)
            em = suite.run(model, tokenizer, "fast", cfg.run.eval_batch_size)
            for s in SUBSETS:
                rows.extend(metric_rows({s: {"grad_cos": cos[s], "em": em[s]["em"]}}, seed, pd.NA, 1, epoch))
            rows.extend(train_rows(loss, steps, seed, pd.NA, 1, epoch))
        report(f"batch {cfg.train.batch_size} seed {seed} epoch {epoch}")

    train_stage(
        model,
        encode(data.train[stage] + replay, tokenizer, cfg.train.loss_on),
        cfg.train,
        cfg.train.epochs(1),
        last_stage_seed(seed, 0, 1),
        on_epoch_end,
    )
    return rows


def gradalign_configs(params: dict, batch_sizes, measure_every: int, project_dim: int) -> list[ExperimentConfig]:
    """One one-stage config per batch size, every setting checked (and named) before any compute."""
    require(
        isinstance(batch_sizes, (list, tuple)) and len(batch_sizes) > 0, "batch_sizes", f"must be a non-empty list, got {batch_sizes!r}"
    )
    for b in batch_sizes:
        require_int(b, "batch_sizes")
    require_int(measure_every, "measure_every")
    require_int(project_dim, "project_dim", minimum=0)
    require(params.get("stage_plan", "one_stage") == "one_stage", "stage_plan", "gradient alignment is measured in one-stage training")
    return grid({**params, "stage_plan": "one_stage"}, "batch_size", batch_sizes, name="batch_sizes")


def measure_epochs_of(cfg: ExperimentConfig, every: int) -> tuple[int, ...]:
    epochs = cfg.train.epochs(1)
    return tuple(sorted({*range(every, epochs + 1, every), epochs}))


def run_gradalign(configs: list[ExperimentConfig], measure_every: int = 5, project_dim: int = 0, progress: bool = True) -> pd.DataFrame:
    """Every batch size (config) × seed; tidy metrics with a batch_size column (metrics grad_cos, em, loss)."""
    frames = []
    for cfg in configs:
        stage0_dir, _ = run_stage0(cfg, load_people(cfg), progress)
        fn = functools.partial(run_seed, cfg, measure_epochs_of(cfg, measure_every), project_dim, str(stage0_dir))
        per_seed = run_seeds(fn, cfg.run, cfg.train.epochs(1), f"One stage, batch {cfg.train.batch_size}", progress)
        frames += [metrics_frame(rows).assign(batch_size=cfg.train.batch_size) for rows in per_seed]
    return pd.concat(frames, ignore_index=True)


def alignment_table(metrics: pd.DataFrame, epoch: int | None = None) -> pd.DataFrame:
    """Per batch size at `epoch` (default: the last measured): mean cosine of d1consis and d2consis and their per-seed difference,
    with 95% t-CIs across seeds; the EM gap at the same point beside it."""
    rows = []
    for b, g in metrics.groupby("batch_size"):
        e = int(g["epoch"].max()) if epoch is None else epoch
        at = g[(g["epoch"] == e)].pivot_table(index="seed", columns=["metric", "subset"], values="value")
        cos_gap = mean_ci(at[("grad_cos", "d1consis")] - at[("grad_cos", "d2consis")])
        em_gap = mean_ci(at[("em", "d1consis")] - at[("em", "d2consis")])
        rows.append(
            {
                "batch_size": b,
                "epoch": e,
                "cos_d1consis": at[("grad_cos", "d1consis")].mean(),
                "cos_d2consis": at[("grad_cos", "d2consis")].mean(),
                "cos_gap": cos_gap["mean"],
                "cos_gap_ci_low": cos_gap["ci_low"],
                "cos_gap_ci_high": cos_gap["ci_high"],
                "em_gap": em_gap["mean"],
                "em_gap_ci_low": em_gap["ci_low"],
                "em_gap_ci_high": em_gap["ci_high"],
                "n_seeds": cos_gap["n_seeds"],
            }
        )
    return pd.DataFrame(rows)


__all__ = [
    "SUBSETS",
    "Sketch",
    "alignment",
    "alignment_table",
    "example_gradient",
    "gradalign_configs",
    "measure_epochs_of",
    "pairs_by_alias",
    "run_gradalign",
    "run_seed",
]
