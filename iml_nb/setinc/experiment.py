"""Runs the set-inclusion experiment from scratch with the main experiment's model, loop, evaluation and seeds (paper §7)."""

from __future__ import annotations

import functools

import pandas as pd

from iml_nb.analysis import stats
from iml_nb.core.parallel import Stream, derived_seed, run_seeds
from iml_nb.core.results import metric_rows, metrics_frame, train_rows
from iml_nb.lm import model as models
from iml_nb.lm.encode import encode
from iml_nb.lm.evaluate import EvalSuite
from iml_nb.lm.train import train_stage
from iml_nb.lm.vocab import build_word_tokenizer
from iml_nb.setinc.data import X1, X2, SetIncData, SetIncExperimentConfig, make_setinc_data, stage_examples


def tokenizer_for(cfg: SetIncExperimentConfig, data: SetIncData):
    """Word-level: one token per variable, tag, number, `%`, `=`, `true` and `false` (the reference's vocabulary)."""
    words = ["% = true false " + " ".join(str(n) for n in range(cfg.data.max_x))]
    return build_word_tokenizer(words, data.atoms())


def run_seed(cfg: SetIncExperimentConfig, seed: int, report=lambda msg: None) -> list[dict]:
    """Stage 1 once (QA redrawn every epoch when `resample`), then Stage 2 from the same weights for every Stage-2 seed."""
    draws = {s2: make_setinc_data(cfg.data, seed, s2) for s2 in range(cfg.run.n_seeds_stage2)}
    first = draws[0]
    tokenizer = tokenizer_for(cfg, first)
    model = models.build_scratch_model(cfg.model.name, tokenizer, cfg.model.tie_embeddings, derived_seed(seed, Stream.INIT))
    model.to(models.resolve_device(cfg.run.device))
    rows: list[dict] = []

    def x1_sets(d: SetIncData) -> dict:
        sets = {n: d.eval_sets[n] for n in X1 if n in d.eval_sets}
        sets.update({f"train_defs_{n}": d.definitions[n] for n in ("qd1consis", "qd2incons") if d.definitions.get(n)})
        return sets

    def x2_sets(d: SetIncData) -> dict:
        sets = {n: d.eval_sets[n] for n in X2 if n in d.eval_sets}
        sets.update({f"train_defs_{n}": d.definitions[n] for n in X2 if d.definitions.get(n)})
        return sets

    def evaluate(suite: EvalSuite) -> dict:
        return suite.run(model, tokenizer, "fast", cfg.run.eval_batch_size)

    suite1 = EvalSuite(x1_sets(first))
    suites2 = {s2: EvalSuite(x2_sets(d)) for s2, d in draws.items()}

    # Stage 1: X1 sets once; X2 sets (still undefined aliases) under every Stage-2 draw.
    def stage1_data(epoch: int):
        return encode(stage_examples(first, cfg.data, "stage1", derived_seed(seed, 1, epoch)), tokenizer, cfg.train.loss_on)

    def after_stage1_epoch(epoch: int, loss: float, steps: int) -> None:
        rows.extend(metric_rows(evaluate(suite1), seed, pd.NA, 1, epoch) + train_rows(loss, steps, seed, pd.NA, 1, epoch))
        for s2, suite in suites2.items():
            rows.extend(metric_rows(evaluate(suite), seed, s2, 1, epoch))
        report(f"seed {seed} stage 1 epoch {epoch}")

    train_stage(model, stage1_data, cfg.train, cfg.train.stage_epochs[0], derived_seed(seed, 1), after_stage1_epoch)
    after_stage1 = {k: v.clone() for k, v in model.state_dict().items()}

    for s2, d in draws.items():
        model.load_state_dict(after_stage1)

        def after_stage2_epoch(epoch: int, loss: float, steps: int, s2=s2) -> None:
            rows.extend(metric_rows(evaluate(suites2[s2]), seed, s2, 2, epoch) + train_rows(loss, steps, seed, s2, 2, epoch))
            report(f"seed {seed} stage 2 epoch {epoch}")

        data = encode(stage_examples(d, cfg.data, "stage2", 0), tokenizer, cfg.train.loss_on)
        train_stage(model, data, cfg.train, cfg.train.stage_epochs[1], derived_seed(seed, s2, 2), after_stage2_epoch)
    return rows


def run_experiment(cfg: SetIncExperimentConfig, progress: bool = True) -> pd.DataFrame:
    """Every Stage-1 seed (in `n_jobs` processes); the tidy metrics frame (metric "em" is accuracy on true/false)."""
    s1, s2 = cfg.train.stage_epochs
    results = run_seeds(functools.partial(run_seed, cfg), cfg.run, s1 + cfg.run.n_seeds_stage2 * s2, "Set inclusion", progress)
    return metrics_frame([r for rows in results for r in rows])


def summary(metrics: pd.DataFrame) -> dict:
    """stats.summary plus what set inclusion needs: d1 − d2 before Stage 2 (noise only) and the Stage-2 gain gap."""
    return stats.summary_with_stage2_checks(metrics)


__all__ = ["run_experiment", "run_seed", "summary", "tokenizer_for"]
