"""Across independent worlds (people database and Stage-0 model): does what Stage 1 taught predict the Stage-2 IML gap?

Reads stored run folders of the main experiment only. The worlds the hypothesis came from were chosen after their results were
seen; `fresh_worlds_test` is the pre-registered test of it on worlds that were not (its rules are fixed in its docstring).
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


# Both tags' Stage-2 training definitions, read beside every gap (a gap is read only between equally learned definitions).
MEMORISED = {"train_defs_d1consis": "defs_memorised_d1", "train_defs_d2consis": "defs_memorised_d2"}


def _check_reading(reading: str) -> None:
    require(reading in STAGE1_READINGS, "reading", f"must be one of {list(STAGE1_READINGS)}, got {reading!r}")


def _em_at_end(seeds: pd.DataFrame, stage: int, subsets: list[str], needs: str) -> pd.DataFrame:
    """Per Stage-1 seed (columns seed and each subset): EM at the last epoch of `stage`, from per_seed's table; `needs` says
    what a run lacking a subset is missing."""
    rows = seeds[(seeds["metric"] == "em") & (seeds["stage"] == stage) & seeds["subset"].isin(subsets)]
    missing = sorted(set(subsets) - set(rows["subset"]))
    if missing:
        raise ValueError(f"no Stage-{stage} EM of {', '.join(map(repr, missing))}: {needs}")
    last = rows[rows["epoch"] == rows["epoch"].max()]
    return last.pivot(index="seed", columns="subset", values="value").reset_index()[["seed", *subsets]]


def _stage1(metrics: pd.DataFrame, seeds: pd.DataFrame, reading: str) -> pd.DataFrame:
    """Per Stage-1 seed (columns seed, x): one of STAGE1_READINGS at the end of Stage 1 (`seeds`: per_seed(metrics))."""
    a, b = STAGE1_READINGS[reading]
    if b:
        pairs = paired_differences(metrics, a, b, stage=1)
        return pairs[["seed"]].assign(x=pairs["diff"])
    return _em_at_end(seeds, 1, [a], f"the reading {reading!r} needs a two-stage run with ea_train").rename(columns={a: "x"})


def per_seed_table(run_dirs) -> pd.DataFrame:
    """One row per Stage-1 seed of every run folder (each folder read once): its world, both Stage-1 readings, both tags'
    definitions memorised and the seed's QA IML gap (d1consis - d2consis) at the end of Stage 2."""
    frames = []
    for d in map(Path, run_dirs):
        metrics = pd.read_csv(d / "metrics.csv")
        seeds = per_seed(metrics)
        config = json.loads((d / "config.json").read_text())
        g = paired_differences(metrics, "d1consis", "d2consis", stage=2)[["seed", "diff"]].rename(columns={"diff": "iml_gap"})
        memorised = _em_at_end(seeds, 2, list(MEMORISED), "the run trained no Stage-2 definitions").rename(columns=MEMORISED)
        g = g.merge(memorised, on="seed", validate="1:1")
        for name in STAGE1_READINGS:
            g = g.merge(_stage1(metrics, seeds, name).rename(columns={"x": name}), on="seed", validate="1:1")
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
            | {name: float(g[name].mean()) for name in (*STAGE1_READINGS, *MEMORISED.values())}
            | {"iml_gap": ci["mean"], "iml_gap_ci_low": ci["ci_low"], "iml_gap_ci_high": ci["ci_high"], "n_seeds": ci["n_seeds"]}
        )
    return pd.DataFrame(rows)


def correlations(run_dirs, reading: str = "names_reliable_alias") -> dict:
    """Spearman's rho across worlds (one point per run) and Pearson's r within worlds (per seed, each centred on its run's mean,
    so free of whatever differs between worlds)."""
    _check_reading(reading)
    return _correlations(per_seed_table(run_dirs), reading)


def _correlations(seeds: pd.DataFrame, reading: str) -> dict:
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


def fresh_worlds_test(known_runs, fresh_runs, reading: str = "names_reliable_alias", alpha: float = 0.05) -> dict:
    """The pre-registered test of the across-worlds hypothesis on worlds that played no part in forming it.

    Primary (one test, a family of its own): Spearman's rho between the fresh worlds' mean Stage-1 reading and their mean QA IML gap,
    one-sided (the hypothesis says positive); "confirmed" if p < alpha, else "not confirmed". Secondary: a least-squares line
    through the known worlds' means (gap = a + b x reading) and its 95 % prediction interval for each fresh world; the count of
    fresh worlds inside it. Descriptive: the fresh worlds' within-world per-seed correlation (`correlations`), and, when the fresh
    worlds cross people seeds with Stage-0 seeds, a two-way additive ANOVA of the world means (how much of the reading and of the
    gap goes with the people, how much with the Stage-0 model)."""
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    _check_reading(reading)
    require(0 < alpha < 1, "alpha", f"must lie in (0, 1), got {alpha!r}")
    fresh_seeds = per_seed_table(fresh_runs)  # read once: the world table and the within-world correlation both come from it
    known, fresh = stage1_vs_gap(known_runs), _by_world(fresh_seeds)
    overlap = set(zip(known["people_seed"], known["stage0_seed"])) & set(zip(fresh["people_seed"], fresh["stage0_seed"]))
    require(not overlap, "fresh_runs", f"must be worlds the hypothesis was not formed on; these are in known_runs too: {sorted(overlap)}")
    fit = smf.ols(f"iml_gap ~ {reading}", data=known).fit()
    fresh = _predicted(fit, fresh)
    fresh["inside"] = fresh["iml_gap"].between(fresh["pi_low"], fresh["pi_high"])
    span = pd.concat([known[reading], fresh[reading]])
    band = _predicted(fit, pd.DataFrame({reading: [span.min() + (span.max() - span.min()) * i / 50 for i in range(51)]}))
    rho = sps.spearmanr(fresh[reading], fresh["iml_gap"], alternative="greater")
    crossed = fresh["people_seed"].nunique() > 1 and fresh["stage0_seed"].nunique() > 1
    anova = (
        {
            y: anova_lm(smf.ols(f"{y} ~ C(people_seed) + C(stage0_seed)", data=fresh).fit()).reset_index().to_dict("records")
            for y in (reading, "iml_gap")
        }
        if crossed and len(fresh) > fresh["people_seed"].nunique() + fresh["stage0_seed"].nunique() - 1
        else None
    )
    return {
        "reading": reading,
        "fit": {
            "intercept": float(fit.params["Intercept"]),
            "slope": float(fit.params[reading]),
            "r2": float(fit.rsquared),
            "n_worlds": len(known),
        },
        "worlds": fresh,
        "known": known,
        "band": band,  # the known worlds' line and its 95 % prediction interval across both sets' readings (for `chart`)
        "spearman": float(rho.statistic),
        "p_one_sided": float(rho.pvalue),
        "verdict": "confirmed" if rho.pvalue < alpha else "not confirmed",
        "inside_prediction_interval": int(fresh["inside"].sum()),
        "within_worlds": _correlations(fresh_seeds, reading),
        "anova": anova,
    }


def _predicted(fit, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the fitted line's prediction at its readings and the 95 % prediction interval of a new world's gap there."""
    line = fit.get_prediction(frame).summary_frame(alpha=0.05)
    return frame.assign(predicted=line["mean"].to_numpy(), pi_low=line["obs_ci_lower"].to_numpy(), pi_high=line["obs_ci_upper"].to_numpy())


READING_TITLES = {
    "names_reliable_alias": "names a Define-dot alias's person, end of Stage 1 (world mean)",
    "reliable_definitions_help_qa": "Define-dot definitions' help to held-out QA, end of Stage 1 (world mean)",
}


def chart(test: dict):
    """The fresh-worlds test as a figure: each world's mean QA IML gap (95 % CI over its seeds) against its Stage-1 reading, the known
    worlds grey and the fresh ones coloured, over the known worlds' line and its 95 % prediction interval."""
    import altair as alt

    reading = test["reading"]
    worlds = pd.concat([test["known"].assign(worlds="known (formed the idea)"), test["worlds"].assign(worlds="fresh (the test)")])
    worlds = worlds[[reading, "iml_gap", "iml_gap_ci_low", "iml_gap_ci_high", "people_seed", "stage0_seed", "worlds"]]
    x = alt.X(f"{reading}:Q", title=READING_TITLES[reading])
    y_title = "QA IML gap, d1consis − d2consis (world mean, 95 % CI)"
    band = alt.Chart(test["band"]).encode(x=x)
    sets = {"fresh (the test)": "#d62728", "known (formed the idea)": "#7f7f7f"}
    colour = alt.Color("worlds:N", scale=alt.Scale(domain=list(sets), range=list(sets.values())), title=None)
    points = alt.Chart(worlds).encode(x=x, color=colour, tooltip=["people_seed", "stage0_seed", "worlds", reading, "iml_gap"])
    fit = test["fit"]
    title = (
        f"Fresh worlds: Spearman {test['spearman']:.2f}, one-sided p {test['p_one_sided']:.3f} ({test['verdict']}); "
        f"known line {fit['intercept']:+.3f} + {fit['slope']:.3f} × reading"
    )
    return alt.layer(
        band.mark_area(opacity=0.15, color="#7f7f7f").encode(y=alt.Y("pi_low:Q", title=y_title), y2="pi_high:Q"),
        band.mark_line(color="#7f7f7f", strokeDash=[4, 4]).encode(y=alt.Y("predicted:Q", title=y_title)),
        points.mark_errorbar().encode(y=alt.Y("iml_gap_ci_low:Q", title=y_title), y2="iml_gap_ci_high:Q"),
        points.mark_point(filled=True, size=60).encode(y=alt.Y("iml_gap:Q", title=y_title)),
    ).properties(title=title, width=460, height=300)
