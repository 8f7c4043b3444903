"""Sanity checks the notebooks run on their own results: each returns one line that says what held, or raises naming what did not.

The lines hold counts and structure only, never numbers from trained weights, so nbval can compare them on any machine.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

# A stage run's mean loss over its first epoch is compared with its last epoch's only where that is an invariant: over 1-2 epochs
# or a handful of optimizer steps it can rise (a fresh optimiser's first steps unsettle the model, and new material interferes
# with replayed facts the model already knew). Seen: set inclusion at 40 variables (3 epochs of 1 step each, 2.21 -> 2.37).
MIN_EPOCHS_FOR_LOSS_CHECK = 3
MIN_STEPS_FOR_LOSS_CHECK = 20


class SanityCheckError(AssertionError):
    """A result is not what a correct run produces; the message says which seed, stage and numbers."""


def _where(row: pd.Series | dict) -> str:
    row = dict(row)
    parts = []
    if "seed" in row and not pd.isna(row["seed"]):
        parts.append(f"seed {int(row['seed'])}")
    if "seed_stage2" in row and not pd.isna(row["seed_stage2"]):
        parts.append(f"Stage-2 seed {int(row['seed_stage2'])}")
    if "stage" in row:
        parts.append(f"stage {int(row['stage'])}")
    if "epoch" in row:
        parts.append(f"epoch {int(row['epoch'])}")
    if "subset" in row:
        parts.append(str(row["subset"]))
    return ", ".join(parts)


def _fail(what: str, bad: list[str], total: int) -> None:
    shown = "; ".join(bad[:5]) + (f"; ... ({len(bad) - 5} more)" if len(bad) > 5 else "")
    raise SanityCheckError(f"{what}: {len(bad)} of {total}: {shown}")


def values_in_range(metrics: pd.DataFrame, metric: str | None, low: float = 0.0, high: float = 1.0) -> str:
    """Every value of `metric` (None: every row) is a number in [low, high]."""
    rows = metrics if metric is None else metrics[metrics["metric"] == metric]
    if rows.empty:
        raise SanityCheckError(f"no `{metric}` values in the metrics")
    bad = rows[~rows["value"].between(low, high)]
    if len(bad):
        _fail(f"`{metric}` outside [{low}, {high}] (or missing)", [f"{_where(r)}: {r['value']}" for _, r in bad.iterrows()], len(rows))
    return f"{len(rows)} {'' if metric is None else f'`{metric}` '}values, all in [{low}, {high}]"


def values_are(frame: pd.DataFrame, column: str, expected: Iterable, what: str) -> str:
    """The distinct values of `column` (missing ones aside) are exactly `expected`."""
    want = set(expected)
    have = set(frame[column].dropna().tolist())
    if have != want:
        raise SanityCheckError(
            f"{what}: {column} values {sorted(have)}, expected {sorted(want)} "
            f"(missing {sorted(want - have)}, unexpected {sorted(have - want)})"
        )
    return f"{what}: {column} {sorted(want)}, as asked"


def seeds_are(metrics: pd.DataFrame, metric: str, seeds: Iterable[int]) -> str:
    """The seeds that report `metric` are exactly `seeds`."""
    rows = metrics.loc[metrics["metric"] == metric]
    return values_are(rows.assign(seed=rows["seed"].astype("Int64")), "seed", [int(s) for s in seeds], f"`{metric}`")


def batch_complete(table: pd.DataFrame) -> str:
    """Every run of a batch (iml_nb.runs.batch.run_batch's table) is complete, now or from an earlier execution."""
    bad = table[~table["status"].isin(["complete", "skipped"])]
    if len(bad):
        _fail("batch runs not complete", [f"{r['run']}: {r['status']} ({r['error']})" for _, r in bad.iterrows()], len(table))
    return f"{len(table)} batch runs complete"


def probe_prefix_at_chance(frame: pd.DataFrame) -> str:
    """Probe accuracy is at or below chance (0.5) on every position before the alias: those tokens are the same for every alias."""
    alias_at = frame.loc[frame["token"] == "<alias>", "position"].min()
    before = frame[frame["position"] < alias_at]
    above = before[before["accuracy"] > 0.5 + 1e-9]
    if len(above):
        _fail(
            "a probe decodes the class from tokens before the alias, which are identical for every alias",
            [
                f"seed {r['seed']}, {r['word_order']}/{r['probe']}, layer {r['layer']}, token {r['token']}: {r['accuracy']:.3f}"
                for _, r in above.iterrows()
            ],
            len(before),
        )
    return f"{len(before)} probe cells before the alias, all at or below chance"


def loss_fell(
    metrics: pd.DataFrame,
    min_epochs: int = MIN_EPOCHS_FOR_LOSS_CHECK,
    min_steps: int = MIN_STEPS_FOR_LOSS_CHECK,
    stages: Iterable[int] | None = None,
) -> str:
    """Every stage run of at least `min_epochs` epochs and `min_steps` optimizer steps ends with a lower mean training loss than
    its first epoch had; every loss is finite.

    Shorter stage runs (test sizes, quick examples) are only checked for a finite loss, and the line says how many. Runs that
    recorded no step count (checkpoints cached by an older version) are judged by their epochs alone.
    """
    train = metrics[metrics["subset"] == "train"]
    if stages is not None:
        train = train[train["stage"].isin(list(stages))]
    loss = train[train["metric"] == "loss"]
    if loss.empty:
        raise SanityCheckError("no training loss in the metrics")
    not_finite = loss[~loss["value"].between(float("-inf"), float("inf"))]
    if len(not_finite):
        _fail("training loss is not finite", [_where(r) for _, r in not_finite.iterrows()], len(loss))
    keys = ["seed", "seed_stage2", "stage"]
    runs = (
        loss.sort_values("epoch")
        .groupby(keys, dropna=False)
        .agg(
            first=("value", "first"),
            last=("value", "last"),
            epochs=("epoch", "nunique"),
            first_epoch=("epoch", "min"),
            last_epoch=("epoch", "max"),
        )
        .reset_index()
    )
    steps = train[train["metric"] == "steps"].groupby(keys, dropna=False)["value"].max().rename("steps").reset_index()
    runs = runs.merge(steps, on=keys, how="left")
    long = runs[(runs["epochs"] >= min_epochs) & ~(runs["steps"] < min_steps)]  # NaN steps: not recorded, epochs decide
    rose = long[~(long["last"] < long["first"])]
    if len(rose):
        _fail(
            f"training loss did not fall over a stage run of >= {min_epochs} epochs and >= {min_steps} steps",
            [
                f"{_where(r.drop(['epoch'], errors='ignore'))}: epoch {r['first_epoch']} {r['first']:.4f} -> "
                f"epoch {r['last_epoch']} {r['last']:.4f}"
                for _, r in rose.iterrows()
            ],
            len(long),
        )
    short = len(runs) - len(long)
    line = f"training loss fell in all {len(long)} stage runs of >= {min_epochs} epochs and >= {min_steps} steps"
    return line + (f"; {short} shorter stage runs checked for a finite loss only" if short else "")


# Greedy generation is scored after SQuAD normalisation, which forgives tokens teacher forcing counts as wrong: a model at chance
# on never-defined aliases once answered ": 1990s" for "1990s" (8 of 600 items of one cell). Such items are allowed, up to this
# share of a cell; beyond it the fast EM would no longer measure what generation EM measures.
MAX_LENIENT = 0.05


def fast_matches_generation(metrics: pd.DataFrame) -> str:
    """Where both were measured (each stage's last epoch of a fast run), teacher-forced EM equals greedy-generation EM, except on
    items whose top two logits are within evaluate.NEAR_TIE (float rounding differs between the two passes and may flip those) and
    on at most MAX_LENIENT of a cell's items that only generation gets right (em_disagree_lenient).

    Teacher-forced right implies greedy decoding emits exactly the answer, so away from near-ties only generation can be the one
    that is right. Cells from runs that did not record the lenient share infer it from the counts (the disagreements teacher
    forcing wins must all be near-ties); cells that did not record disagreements (older caches) must agree exactly.
    """
    keys = ["seed", "seed_stage2", "stage", "epoch", "subset"]
    names = ["em", "em_generate", "em_disagree", "em_disagree_tie", "em_disagree_lenient"]
    rows = metrics[metrics["metric"].isin(names)]
    cells = rows.pivot_table(index=keys, columns="metric", values="value", dropna=False, aggfunc="first").reset_index()
    if "em_generate" not in cells:
        return "EM comes from greedy generation (eval_mode generate): no teacher-forced EM to compare"
    cells = cells[cells["em_generate"].notna()]
    for name in names[2:]:
        if name not in cells:
            cells[name] = float("nan")
    tol = 1e-6  # the shares are float32 means: ~1e-8 apart where they count the same items; one item of 10^5 is 1e-5
    recorded = cells["em_disagree"].notna()
    forced_wins = (cells["em_disagree"] - (cells["em_generate"] - cells["em"])) / 2  # items only teacher forcing gets right
    lenient = cells["em_disagree_lenient"].fillna(cells["em_disagree"] - cells["em_disagree_tie"])
    unexplained = recorded & (
        (cells["em_disagree"] - cells["em_disagree_tie"] - lenient > tol)
        | (forced_wins - cells["em_disagree_tie"] > tol)
        | ((cells["em"] - cells["em_generate"]).abs() > cells["em_disagree"] + tol)
    )
    unequal = ~recorded & ((cells["em"] - cells["em_generate"]).abs() > tol)
    bad = cells[unexplained | unequal]
    if len(bad):
        _fail(
            "teacher-forced EM differs from greedy generation on items without a near-tie of the top two logits, and not only "
            "where generation alone is right (another token sequence that normalises to the answer, or an answer longer than "
            "max_new_tokens)",
            [
                f"{_where(r)}: em {r['em']:.4f} vs generated {r['em_generate']:.4f}, items differing {r['em_disagree']:.4f}, "
                f"at a near-tie {r['em_disagree_tie']:.4f}"
                for _, r in bad.iterrows()
            ],
            len(cells),
        )
    loose = cells[recorded & (lenient > MAX_LENIENT + tol)]
    if len(loose):
        _fail(
            f"greedy generation alone is right on more than {MAX_LENIENT:.0%} of a cell's items (its normalisation forgives tokens "
            "teacher forcing counts as wrong): the fast EM no longer measures generation EM there",
            [
                f"{_where(r)}: em {r['em']:.4f} vs generated {r['em_generate']:.4f}, generation alone right {r_l:.4f}"
                for (_, r), r_l in zip(loose.iterrows(), lenient[loose.index])
            ],
            len(cells),
        )
    if cells.empty:
        raise SanityCheckError("no cell has both teacher-forced and generated EM (a fast run decodes at every stage's end)")
    return (
        f"teacher-forced EM equals greedy-generation EM in all {len(cells)} cells, up to near-ties of the top two logits and "
        f"items only generation's normalisation accepts (at most {MAX_LENIENT:.0%} of a cell)"
    )


__all__ = [
    "MIN_EPOCHS_FOR_LOSS_CHECK",
    "MIN_STEPS_FOR_LOSS_CHECK",
    "SanityCheckError",
    "batch_complete",
    "fast_matches_generation",
    "loss_fell",
    "probe_prefix_at_chance",
    "seeds_are",
    "values_are",
    "values_in_range",
]
