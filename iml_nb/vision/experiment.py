"""Runs the MNIST variant (paper §8) with the package's seeds, training loop, metrics frame, statistics and plots.

Per Stage-1 seed: optional digit pretraining of the cell trunk (the vision stand-in for a pretrained model, stage 0), Stage 1
(X1 definitions + QA on the cells not held out, fresh handwriting every epoch), Stage 2 (X2 definitions only). After every epoch,
accuracy (metric "acc") on items drawn once with test-split handwriting: the test QA cells of every subset, the trained QA cells
(`trained_qa_*`) and the definitions (`train_defs_*`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from iml_nb.analysis import stats
from iml_nb.core.config import OPTIMISER_NAMES, RunConfig, TrainConfig
from iml_nb.core.parallel import Stream, derived_seed, run_seeds
from iml_nb.core.parameters import Flat, require, require_int
from iml_nb.core.results import metric_rows, metrics_frame, train_rows
from iml_nb.lm.model import resolve_device
from iml_nb.lm.train import train_stage
from iml_nb.vision.data import SUBSETS, VisionConfig, VisionData, eval_specs, make_vision_data, render, stage_specs
from iml_nb.vision.digits import load_mnist
from iml_nb.vision.model import ARCHS, ImageSet, accuracy, build_net, digit_accuracy, digit_loss, image_loss

METRIC = "acc"


@dataclass(frozen=True)
class NetConfig:
    arch: str = "cells"  # "cells": a conv trunk shared by the 9 cells + MLP (pretrainable on digits); "plain": one convnet on the image
    width: int = 16
    hidden: int = 512

    def __post_init__(self) -> None:
        require(self.arch in ARCHS, "arch", f"must be one of {list(ARCHS)}, got {self.arch!r}")
        require_int(self.width, "width", minimum=2)
        require(self.width % 2 == 0, "width", f"must be even, got {self.width}")
        require_int(self.hidden, "hidden")


@dataclass(frozen=True)
class VisionExperimentConfig:
    data: VisionConfig = field(default_factory=VisionConfig)
    net: NetConfig = field(default_factory=NetConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(stage0_epochs=1, stage0_batch_size=128, stage_epochs=(30, 30), lr=1e-3))
    run: RunConfig = field(default_factory=lambda: RunConfig(n_seeds=4, eval_batch_size=1024))

    def __post_init__(self) -> None:
        require(len(self.train.stage_epochs) == 2, "stage_epochs", "the MNIST experiment has two stages")
        require(
            self.train.stage0_epochs == 0 or self.net.arch == "cells",
            "pretrain_epochs",
            f"digit pretraining needs arch 'cells' (a trunk that reads one digit), got arch {self.net.arch!r}; set pretrain_epochs 0",
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The notebook's flat parameter names, per config section; pretrain_epochs is TrainConfig.stage0_epochs, pretrain_batch_size its
# batch size.
PARAMETERS = Flat(
    VisionExperimentConfig,
    sections={
        "data": ("n_vars", "tag_bits", "holdout_cells"),
        "net": ("arch", "width", "hidden"),
        "train": ("pretrain_epochs", "pretrain_batch_size", "stage1_epochs", "stage2_epochs", *OPTIMISER_NAMES),
        "run": ("seed", "n_seeds", "n_jobs", "eval_batch_size", "output_dir", "device"),
    },
    rename={"pretrain_epochs": "stage0_epochs", "pretrain_batch_size": "stage0_batch_size"},
    subsets=SUBSETS,
)


def preview(data: VisionData) -> pd.DataFrame:
    """Items per stage, subset and kind (training: per epoch, redrawn in fresh handwriting), and the evaluation sets of one seed."""
    rows = []
    for stage in ("stage1", "stage2"):
        ids, kinds, _ = stage_specs(data, stage)
        frame = pd.DataFrame({"subset": [data.variables[i].subset for i in ids], "kind": kinds, "variable": ids})
        for (subset, kind), g in frame.groupby(["subset", "kind"], sort=False):
            rows.append(
                {
                    "data": f"{stage} training, per epoch",
                    "subset": subset,
                    "kind": kind,
                    "items": len(g),
                    "variables": g["variable"].nunique(),
                }
            )
    for subset in SUBSETS:
        for which, what in (("test", "QA, test cells"), ("trained", "QA, trained cells"), ("definitions", "definitions")):
            ids, _, _ = eval_specs(data, subset, which)
            if ids:
                rows.append(
                    {
                        "data": "evaluation (test-split handwriting)",
                        "subset": subset,
                        "kind": what,
                        "items": len(ids),
                        "variables": len(set(ids)),
                    }
                )
    return pd.DataFrame(rows)


def eval_sets(data: VisionData, pool, seed: int) -> dict[str, ImageSet]:
    """Items drawn once per seed with test-split handwriting, so every epoch is scored on the same images."""
    rng = np.random.default_rng(derived_seed(seed, Stream.TEST_IMAGES))
    sets = {}
    for subset in SUBSETS:
        for name, which in ((subset, "test"), (f"trained_qa_{subset}", "trained"), (f"train_defs_{subset}", "definitions")):
            ids, kinds, cells = eval_specs(data, subset, which)
            if ids:
                sets[name] = ImageSet.of(render(data, ids, kinds, cells, pool, rng))
    return sets


def stage_data(data: VisionData, stage: str, pool, seed: int):
    """Epoch -> ImageSet of that stage, redrawn with fresh training handwriting every epoch."""
    ids, kinds, cells = stage_specs(data, stage)
    return lambda epoch: ImageSet.of(render(data, ids, kinds, cells, pool, np.random.default_rng(derived_seed(seed, 1, epoch))))


def run_seed(cfg: VisionExperimentConfig, seed: int, report=lambda msg: None) -> list[dict]:
    torch.manual_seed(derived_seed(seed, Stream.INIT))
    data = make_vision_data(cfg.data, seed)
    train_pool, test_pool = load_mnist("train"), load_mnist("test")
    net = build_net(cfg.net.arch, cfg.net.width, cfg.net.hidden).to(resolve_device(cfg.run.device))
    rows: list[dict] = []
    if cfg.train.stage0_epochs:
        digits = ImageSet(torch.from_numpy(train_pool[0]), torch.from_numpy(train_pool[1]))
        test_digits = ImageSet(torch.from_numpy(test_pool[0]), torch.from_numpy(test_pool[1]))

        def after_pretrain_epoch(epoch: int, loss: float, steps: int) -> None:
            rows.extend(
                metric_rows({"digits": {METRIC: digit_accuracy(net, test_digits)}}, seed, pd.NA, 0, epoch)
                + train_rows(loss, steps, seed, pd.NA, 0, epoch)
            )
            report(f"seed {seed} digits epoch {epoch}")

        pretrain = dataclasses.replace(cfg.train, batch_size=cfg.train.stage0_batch_size)
        train_stage(
            net, digits, pretrain, cfg.train.stage0_epochs, derived_seed(seed, Stream.INIT, 1), after_pretrain_epoch, loss_fn=digit_loss
        )

    sets = eval_sets(data, test_pool, seed)
    for stage, name in ((1, "stage1"), (2, "stage2")):

        def after_epoch(epoch: int, loss: float, steps: int, stage=stage) -> None:
            results = {n: {METRIC: accuracy(net, s, cfg.run.eval_batch_size)} for n, s in sets.items()}
            rows.extend(metric_rows(results, seed, pd.NA, stage, epoch) + train_rows(loss, steps, seed, pd.NA, stage, epoch))
            report(f"seed {seed} stage {stage} epoch {epoch}")

        train_stage(
            net,
            stage_data(data, name, train_pool, derived_seed(seed, stage)),
            cfg.train,
            cfg.train.stage_epochs[stage - 1],
            derived_seed(seed, stage),
            after_epoch,
            loss_fn=image_loss,
        )
    return rows


def run_experiment(cfg: VisionExperimentConfig, progress: bool = True) -> pd.DataFrame:
    """Every seed (in `n_jobs` processes); the tidy metrics frame (metric "acc": fraction of supervised cells right)."""
    results = run_seeds(
        functools.partial(run_seed, cfg), cfg.run, cfg.train.stage0_epochs + sum(cfg.train.stage_epochs), "MNIST IML", progress
    )
    return metrics_frame([r for rows in results for r in rows])


def summary(metrics: pd.DataFrame) -> dict:
    """stats.summary on accuracy, plus the gap before Stage 2 (noise only) and the Stage-2 gain gap."""
    return stats.summary_with_stage2_checks(metrics, METRIC)


__all__ = [
    "METRIC",
    "NetConfig",
    "VisionExperimentConfig",
    "PARAMETERS",
    "eval_sets",
    "preview",
    "run_experiment",
    "run_seed",
    "stage_data",
    "summary",
]
