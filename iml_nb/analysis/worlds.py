"""Across independent worlds (people database and Stage-0 model): does what Stage 1 taught predict the Stage-2 IML gap?

Reads stored run folders of the main experiment only. Exploratory: the runs it reads were chosen after their results were seen.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from scipy import stats as sps

from iml_nb.analysis.stats import gap, paired_differences, per_seed
from iml_nb.core.parameters import require

# What Stage 1 could have taught, each read at its end: whether a Define-dot definition lets the model name its alias's person
# (the held-out "What is the name of <alias>?" of Define-dot aliases; aliases with QA alone score 0), and whether it helps the QA.
STAGE1_READINGS = {
    "names_reliable_alias": ("ent_assoc_qd1consis", None),
    "reliable_definitions_help_qa": ("qd1consis", "q"),
}


def _stage1(metrics: pd.DataFrame, reading: str) -> pd.DataFrame:
    """Per Stage-1 seed (columns seed, x): one of STAGE1_READINGS at the end of Stage 1."""
    require(reading in STAGE1_READINGS, "reading", f"must be one of {list(STAGE1_READINGS)}, got {reading!r}")
    a, b = STAGE1_READINGS[reading]
    if b:
        pairs = paired_differences(metrics, a, b, stage=1)
        return pairs[["seed"]].assign(x=pairs["diff"])
    seeds = per_seed(metrics)
    seeds = seeds[(seeds["metric"] == "em") & (seeds["stage"] == 1) & (seeds["subset"] == a)]
    if seeds.empty:
        raise ValueError(f"no Stage-1 EM of {a!r}: the reading {reading!r} needs a two-stage run with ea_train")
    last = seeds[seeds["epoch"] == seeds["epoch"].max()]
    return pd.DataFrame({"seed": last["seed"].to_numpy(), "x": last["value"].to_numpy()})


def stage1_vs_gap(run_dirs) -> pd.DataFrame:
    """One row per run folder: its world, the Stage-1 readings (means across Stage-1 seeds) and the QA IML gap at the end of
    Stage 2 with its 95 % t-interval across seeds."""
    rows = []
    for d in map(Path, run_dirs):
        metrics = pd.read_csv(d / "metrics.csv")
        config = json.loads((d / "config.json").read_text())
        row = {
            "run": str(d),
            "model": config["model"]["name"],
            "people_seed": config["data"]["people_seed"],
            "stage0_seed": config["run"]["stage0_seed"],
        }
        for name in STAGE1_READINGS:
            row[name] = float(_stage1(metrics, name)["x"].mean())
        g = gap(metrics, "d1consis", "d2consis", stage=2)
        row.update(iml_gap=g["mean"], iml_gap_ci_low=g["ci_low"], iml_gap_ci_high=g["ci_high"], n_seeds=g["n_seeds"])
        rows.append(row)
    return pd.DataFrame(rows)


def per_seed_pairs(run_dirs, reading: str = "names_reliable_alias") -> pd.DataFrame:
    """Per Stage-1 seed of every run: one Stage-1 reading and that seed's QA IML gap, each centred on its run's mean (so a
    correlation of the centred columns is the within-world one, free of whatever differs between worlds)."""
    frames = []
    for d in map(Path, run_dirs):
        metrics = pd.read_csv(d / "metrics.csv")
        x = _stage1(metrics, reading)
        g = paired_differences(metrics, "d1consis", "d2consis", stage=2)[["seed", "diff"]].rename(columns={"diff": "y"})
        both = x.merge(g, on="seed", validate="1:1").assign(run=str(d))
        frames.append(both.assign(x=both["x"] - both["x"].mean(), y=both["y"] - both["y"].mean()))
    return pd.concat(frames, ignore_index=True)


def correlations(run_dirs, reading: str = "names_reliable_alias") -> dict:
    """Spearman's rho across worlds (one point per run) and Pearson's r within worlds (per seed, centred per run)."""
    require(reading in STAGE1_READINGS, "reading", f"must be one of {list(STAGE1_READINGS)}, got {reading!r}")
    table = stage1_vs_gap(run_dirs)
    across = sps.spearmanr(table[reading], table["iml_gap"])
    seeds = per_seed_pairs(run_dirs, reading)
    within = sps.pearsonr(seeds["x"], seeds["y"])
    return {
        "reading": reading,
        "across_worlds_spearman": float(across.statistic),
        "across_worlds_p": float(across.pvalue),
        "n_worlds": len(table),
        "within_worlds_pearson": float(within.statistic),
        "within_worlds_p": float(within.pvalue),
        "n_seeds": len(seeds),
    }
