"""Sweeps of the main experiment (paper §5-6, Fig. 4): collect a batch's run folders and compute the IML gap at every grid point."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from . import stats
from .results import is_complete, read_metrics


def collect(batch_json: str | os.PathLike) -> pd.DataFrame:
    """Every complete run's metrics, with the batch's grid values as extra columns (incomplete runs are left out)."""
    batch_json = Path(batch_json)
    batch = json.loads(batch_json.read_text())
    frames = []
    for run in batch["runs"]:
        folder = batch_json.parent / run["folder"]
        if is_complete(folder):
            frames.append(read_metrics(folder / "metrics.csv").assign(**run["params"]))
    if not frames:
        raise ValueError(f"{batch_json}: no complete run to collect")
    return pd.concat(frames, ignore_index=True)


def gap_table(metrics: pd.DataFrame, axis: str, metric: str = "em") -> pd.DataFrame:
    """Per grid value: the IML gaps (QA and entity) with their CIs across Stage-1 seeds, a verdict, and the two EMs behind each gap."""
    rows = []
    for value, frame in metrics.groupby(axis, sort=True):
        frame = frame.drop(columns=[axis])
        for gap in stats.IML_GAPS:
            kind, a, b = gap.name, gap.a, gap.b
            if {a, b} <= set(frame["subset"]):
                diffs = stats.paired_differences(frame, a, b, metric)  # once: stats.gap would compute it again
                g = stats.mean_ci(diffs["diff"])
                rows.append({axis: value, "gap": kind, "mean": g["mean"], "ci_low": g["ci_low"], "ci_high": g["ci_high"],
                             "n_seeds": g["n_seeds"], "verdict": verdict(g["ci_low"], g["ci_high"]),
                             "em_reliable": diffs[a].mean(), "em_unreliable": diffs[b].mean()})
    return pd.DataFrame(rows)


def verdict(ci_low: float, ci_high: float) -> str:
    """What a 95% CI says about a gap: 'IML' (above zero), 'reversed' (below) or 'n.s.' (contains zero, or undefined)."""
    return {1: "IML", -1: "reversed", 0: "n.s."}[stats.ci_sign(ci_low, ci_high)]


def validate(fixed: dict, axis: str, values: list) -> None:
    """Build every grid point's config now, so a bad value fails before any run (each run would only fail when it starts)."""
    from .config import build_config

    if not values:
        raise ValueError(f"parameter `{axis}`: give at least one value")
    for value in values:
        build_config(**fixed, **{axis: value})
