"""Across independent worlds (people database and Stage-0 model): does what Stage 1 taught predict the Stage-2 IML gap?

Reads stored run folders of the main experiment only. Exploratory: the runs it reads were chosen after their results were seen.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from scipy import stats as sps

from iml_nb.analysis.stats import mean_ci, paired_differences, per_seed
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


def per_seed_table(run_dirs) -> pd.DataFrame:
    """One row per Stage-1 seed of every run folder (each folder read once): its world, both Stage-1 readings and the seed's QA
    IML gap (d1consis - d2consis) at the end of Stage 2."""
    frames = []
    for d in map(Path, run_dirs):
        metrics = pd.read_csv(d / "metrics.csv")
        config = json.loads((d / "config.json").read_text())
        g = paired_differences(metrics, "d1consis", "d2consis", stage=2)[["seed", "diff"]].rename(columns={"diff": "iml_gap"})
        for name in STAGE1_READINGS:
            g = g.merge(_stage1(metrics, name).rename(columns={"x": name}), on="seed", validate="1:1")
        world = {"run": str(d), "model": config["model"]["name"], "people_seed": config["data"]["people_seed"]}
        frames.append(g.assign(**world, stage0_seed=config["run"]["stage0_seed"]))
    return pd.concat(frames, ignore_index=True)


def stage1_vs_gap(run_dirs) -> pd.DataFrame:
    """One row per run folder: its world, the Stage-1 readings (means across Stage-1 seeds) and the QA IML gap at the end of
    Stage 2 with its 95 % t-interval across seeds."""
    return _by_world(per_seed_table(run_dirs))


def _by_world(seeds: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (run, model, people_seed, stage0_seed), g in seeds.groupby(["run", "model", "people_seed", "stage0_seed"], sort=False):
        ci = mean_ci(g["iml_gap"])
        rows.append(
            {"run": run, "model": model, "people_seed": people_seed, "stage0_seed": stage0_seed}
            | {name: float(g[name].mean()) for name in STAGE1_READINGS}
            | {"iml_gap": ci["mean"], "iml_gap_ci_low": ci["ci_low"], "iml_gap_ci_high": ci["ci_high"], "n_seeds": ci["n_seeds"]}
        )
    return pd.DataFrame(rows)


def correlations(run_dirs, reading: str = "names_reliable_alias") -> dict:
    """Spearman's rho across worlds (one point per run) and Pearson's r within worlds (per seed, each centred on its run's mean,
    so free of whatever differs between worlds)."""
    require(reading in STAGE1_READINGS, "reading", f"must be one of {list(STAGE1_READINGS)}, got {reading!r}")
    seeds = per_seed_table(run_dirs)
    table = _by_world(seeds)
    across = sps.spearmanr(table[reading], table["iml_gap"])
    centred = seeds[[reading, "iml_gap"]] - seeds.groupby("run")[[reading, "iml_gap"]].transform("mean")
    within = sps.pearsonr(centred[reading], centred["iml_gap"])
    return {
        "reading": reading,
        "across_worlds_spearman": float(across.statistic),
        "across_worlds_p": float(across.pvalue),
        "n_worlds": len(table),
        "within_worlds_pearson": float(within.statistic),
        "within_worlds_p": float(within.pvalue),
        "n_seeds": len(seeds),
    }
