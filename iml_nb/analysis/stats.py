"""Per-seed means, t intervals and IML gaps from the tidy metrics frame (paper Fig. 3 numbers)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

from iml_nb.core.results import METRIC_COLUMNS

_CELL = ["stage", "epoch", "subset", "metric"]  # one point of a curve, before seeds


@dataclass(frozen=True)
class Gap:
    """A difference between two subsets, per Stage-1 seed: the package's one definition of each gap it reports."""

    name: str  # "qa", "entity", "stage1"
    a: str
    b: str
    stage: int | None  # None: the last stage both subsets appear in
    label: str
    summary_key: str  # its key in summary.json


GAPS = (
    Gap("qa", "d1consis", "d2consis", None, "D5 − D6, QA (IML gap)", "iml_gap_qa"),
    Gap("entity", "ent_assoc_d1consis", "ent_assoc_d2consis", None, "D5 − D6, entity (IML gap)", "iml_gap_entity"),
    Gap("stage1", "qd1consis", "qd2incons", 1, "D1QA1 − D2QA2, Stage 1", "stage1_gap_qa"),
)
IML_GAPS = GAPS[:2]  # the two read-outs of implicit meta-learning after the last stage


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> dict:
    """Mean and Student-t interval across independent samples (here: Stage-1 seeds)."""
    x = np.asarray(list(values), dtype=float)
    if x.size == 0:
        raise ValueError("mean_ci needs at least one value, got none")
    if np.isnan(x).any():
        raise ValueError(f"mean_ci got NaN among {x.size} values; drop or fix them first")
    mean = float(x.mean())
    if x.size == 1:
        # One seed says nothing about spread: report the point, leave the interval undefined.
        return {"mean": mean, "ci_low": math.nan, "ci_high": math.nan, "n_seeds": 1, "sd": math.nan}
    sd = float(x.std(ddof=1))
    half = float(st.t.ppf((1 + confidence) / 2, df=x.size - 1)) * sd / math.sqrt(x.size)
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n_seeds": int(x.size), "sd": sd}


def ci_sign(ci_low, ci_high) -> int:
    """Which side of zero a confidence interval lies on: 1 above, -1 below, 0 when it contains zero or is undefined."""
    if ci_low is None or ci_high is None or math.isnan(ci_low) or math.isnan(ci_high):
        return 0
    return 1 if ci_low > 0 else -1 if ci_high < 0 else 0


def format_ci(g: dict, spec: str = "+.3f", full: bool = True) -> str:
    """A mean_ci (or summary.json) record as text: "+0.068  95% CI [+0.047, +0.089]  n=6"; full=False: "+0.068 [+0.047, +0.089]".

    One seed has no interval (NaN in memory, null in JSON): shown as "n/a (1 seed)" instead of failing to format."""
    low, high = g.get("ci_low"), g.get("ci_high")
    defined = all(v is not None and not (isinstance(v, float) and math.isnan(v)) for v in (low, high))
    ci = f"[{_number(low, spec)}, {_number(high, spec)}]" if defined else f"n/a ({g.get('n_seeds')} seed)"
    mean = _number(g["mean"], spec)
    return f"{mean}  95% CI {ci}  n={g.get('n_seeds')}" if full else f"{mean} {ci}"


def _number(value: float, spec: str) -> str:
    """format(value, spec), but a value that rounds to zero reads as zero ("+0.000"), never "-0.000"."""
    text = format(value, spec)
    return format(0.0, spec) if text.lstrip("+-").strip("0.") == "" else text


def _check(metrics: pd.DataFrame) -> None:
    missing = [c for c in METRIC_COLUMNS if c not in metrics.columns]
    if missing:
        raise ValueError(f"metrics frame lacks columns {missing}; expected {METRIC_COLUMNS}")
    dup = metrics.duplicated(subset=METRIC_COLUMNS[:-1], keep=False)
    if dup.any():
        # A repeated key would be counted as an extra seed downstream, silently narrowing the CI.
        raise ValueError(
            f"metrics frame has {int(dup.sum())} rows with a repeated key, e.g.\n"
            f"{metrics.loc[dup, METRIC_COLUMNS[:-1]].head(3).to_string(index=False)}"
        )


def per_seed(metrics: pd.DataFrame) -> pd.DataFrame:
    """Average over Stage-2 seeds within each Stage-1 seed; rows without a Stage-2 seed pass through.

    Stage-2 seeds share their Stage-1 model, so they are not independent samples (the reference pools them, §10.10);
    Stage-1 seeds are. Returns columns seed, stage, epoch, subset, metric, value, n_seed_stage2 (<NA> for pass-through rows).
    """
    _check(metrics)
    key = ["seed", *_CELL]
    has_s2 = metrics["seed_stage2"].notna()
    kinds = metrics.assign(_has_s2=has_s2).groupby(key, dropna=False)["_has_s2"].nunique()
    if (kinds > 1).any():
        raise ValueError(f"keys with and without a seed_stage2 at once, e.g. {kinds[kinds > 1].index[:3].tolist()}")
    averaged = metrics[has_s2].groupby(key, dropna=False)["value"].agg(value="mean", n_seed_stage2="count").reset_index()
    passed = metrics.loc[~has_s2, [*key, "value"]].assign(n_seed_stage2=pd.NA)
    out = pd.concat([passed, averaged], ignore_index=True)
    out["seed"] = out["seed"].astype("Int64")
    out["n_seed_stage2"] = out["n_seed_stage2"].astype("Int64")
    return out.sort_values(["stage", "subset", "metric", "epoch", "seed"], ignore_index=True)


def _global_epoch_offsets(metrics: pd.DataFrame) -> dict[int, int]:
    """Stage -> offset added to its epochs so stages follow on from each other on one axis.

    Rule: stage 1 starts at global epoch 1; each later stage starts right after the last epoch of the stages
    before it that are present; stage 0 (the pretrained model) is placed just before, ending at 0, so its
    epochs map to 1-E0 .. 0. Only stages present in the frame take room on the axis.
    """
    last = metrics.groupby("stage")["epoch"].max().sort_index()
    offsets, used = {}, 0
    for stage, n_epochs in last.items():
        if stage == 0:
            offsets[0] = -int(n_epochs)
        else:
            offsets[int(stage)] = used
            used += int(n_epochs)
    return offsets


def curves(metrics: pd.DataFrame, metric: str = "em", confidence: float = 0.95) -> pd.DataFrame:
    """Per (stage, epoch, subset): mean and t-CI across Stage-1 seeds, with a `global_epoch` for plotting."""
    seeds = per_seed(metrics)
    seeds = seeds[seeds["metric"] == metric]
    if seeds.empty:
        raise ValueError(f"no rows with metric {metric!r}; metrics present: {sorted(metrics['metric'].unique())}")
    rows = [
        {"stage": stage, "epoch": epoch, "subset": subset, **mean_ci(g["value"], confidence)}
        for (stage, epoch, subset), g in seeds.groupby(["stage", "epoch", "subset"])
    ]
    out = pd.DataFrame(rows)
    offsets = _global_epoch_offsets(metrics)
    out["global_epoch"] = out["epoch"] + out["stage"].map(offsets)
    cols = ["stage", "epoch", "global_epoch", "subset", "mean", "ci_low", "ci_high", "n_seeds", "sd"]
    return out[cols].sort_values(["subset", "stage", "epoch"], ignore_index=True)


def _last_stage_epoch(seeds: pd.DataFrame, subsets: list[str], stage: int | None) -> tuple[int, int]:
    """Last stage (unless given) and its last epoch at which every one of `subsets` was evaluated."""
    have = seeds[seeds["subset"].isin(subsets)].groupby(["stage", "epoch"])["subset"].nunique()
    have = have[have == len(set(subsets))].reset_index()
    if stage is not None:
        have = have[have["stage"] == stage]
    if have.empty:
        where = f"stage {stage}" if stage is not None else "any one stage and epoch"
        raise ValueError(f"subsets {subsets} are never evaluated together at {where}")
    stage = int(have["stage"].max()) if stage is None else int(stage)
    return stage, int(have.loc[have["stage"] == stage, "epoch"].max())


def paired_differences(
    metrics: pd.DataFrame, a: str, b: str, metric: str = "em", stage: int | None = None, epoch: int | None = None
) -> pd.DataFrame:
    """Per Stage-1 seed: value of `a`, value of `b` and a - b at one stage/epoch (default: the last both share).

    The chosen stage and epoch are in `.attrs`.
    """
    seeds = per_seed(metrics)
    seeds = seeds[seeds["metric"] == metric]
    for name in (a, b):
        if name not in set(seeds["subset"]):
            raise ValueError(f"subset {name!r} is absent for metric {metric!r}; present: {sorted(seeds['subset'].unique())}")
    if epoch is None:
        stage, epoch = _last_stage_epoch(seeds, [a, b], stage)
    elif stage is None:
        raise ValueError("give `stage` together with `epoch`: epochs are counted within a stage")
    at = seeds[(seeds["stage"] == stage) & (seeds["epoch"] == epoch)]
    left = at.loc[at["subset"] == a, ["seed", "value"]].rename(columns={"value": a})
    right = at.loc[at["subset"] == b, ["seed", "value"]].rename(columns={"value": b})
    pairs = left.merge(right, on="seed", how="outer")
    if pairs.empty:
        raise ValueError(f"no rows for {a!r} and {b!r} at stage {stage}, epoch {epoch}")
    unpaired = pairs[pairs[[a, b]].isna().any(axis=1)]
    if not unpaired.empty:
        # A seed with only one side would bias the gap; it means a run is missing an evaluation.
        raise ValueError(f"seeds {unpaired['seed'].tolist()} have {a!r} or {b!r} but not both at stage {stage}, epoch {epoch}")
    pairs["diff"] = pairs[a] - pairs[b]
    pairs = pairs.sort_values("seed", ignore_index=True)
    pairs.attrs.update(a=a, b=b, metric=metric, stage=int(stage), epoch=int(epoch))
    return pairs


def gap(
    metrics: pd.DataFrame, a: str, b: str, metric: str = "em", stage: int | None = None, epoch: int | None = None, confidence: float = 0.95
) -> dict:
    """Mean and t-CI across Stage-1 seeds of the per-seed difference a - b (e.g. the IML gap d1consis - d2consis)."""
    pairs = paired_differences(metrics, a, b, metric, stage, epoch)
    return {**mean_ci(pairs["diff"], confidence), "a": a, "b": b, "stage": pairs.attrs["stage"], "epoch": pairs.attrs["epoch"]}


def gain_gap(metrics: pd.DataFrame, a: str, b: str, metric: str = "em", confidence: float = 0.95) -> dict:
    """Difference in differences across Stage-1 seeds: (a − b after the last stage) − (a − b at the end of the stage before).

    Separates what the last stage did from a head start: before Stage 2, d1consis and d2consis differ only by sampling noise.
    """
    after = paired_differences(metrics, a, b, metric)
    before = paired_differences(metrics, a, b, metric, stage=after.attrs["stage"] - 1)
    both = after[["seed", "diff"]].merge(before[["seed", "diff"]], on="seed", suffixes=("_after", "_before"), validate="1:1")
    return {
        **mean_ci(both["diff_after"] - both["diff_before"], confidence),
        "a": a,
        "b": b,
        "stage": after.attrs["stage"],
        "epoch": after.attrs["epoch"],
        "stage_before": before.attrs["stage"],
        "epoch_before": before.attrs["epoch"],
    }


ORIENTATIONS = ("as named", "swapped", "IML (half sum)", "words' prior (half difference)")


def orientations(named: pd.DataFrame, swapped: pd.DataFrame, gaps: dict[str, tuple[str, str]], confidence: float = 0.95) -> pd.DataFrame:
    """Two runs that differ only in which tag carries which words, paired by Stage-1 seed (the same seeds give the same world and
    split). Per gap `name: (a, b)`: each arm's a − b, their half sum (what Stage 1 taught about a tag's role, whichever words it
    carries: IML) and half difference (what the words bring, whichever role they play: their prior), each a mean and t-interval
    across the shared seeds. Rows: gap, reading (ORIENTATIONS), mean, ci_low, ci_high, n_seeds, sd."""
    rows = []
    for name, (a, b) in gaps.items():
        arms = [paired_differences(m, a, b)[["seed", "diff"]] for m in (named, swapped)]
        both = arms[0].merge(arms[1], on="seed", suffixes=("", "_swapped"))
        if len(both) < 2:
            raise ValueError(f"the two arms share {len(both)} Stage-1 seed(s); pairing needs two or more")
        readings = (
            both["diff"],
            both["diff_swapped"],
            (both["diff"] + both["diff_swapped"]) / 2,
            (both["diff"] - both["diff_swapped"]) / 2,
        )
        rows += [{"gap": name, "reading": r, **mean_ci(v, confidence)} for r, v in zip(ORIENTATIONS, readings)]
    return pd.DataFrame(rows)


def gaps_by_question(
    metrics: pd.DataFrame, a: str = "d1consis", b: str = "d2consis", metric: str = "em", pool: tuple[str, ...] = ()
) -> pd.DataFrame:
    """The gap a − b per question type, from a run with `score_by_question`: after the last stage and its gain over it, beside
    each side's EM: an attribute the model cannot answer shows no gap whatever the tags do, and dilutes the overall one.

    `pool` (question types, e.g. the ones a knowledge check shows the model knows) adds a row for their unweighted mean per seed,
    named "q1+q2+…": the gap on those questions only, with its interval across seeds."""
    present = set(metrics.loc[metrics["metric"] == metric, "subset"])
    questions = sorted(
        {n.split(":", 1)[1] for n in present if n.startswith(f"{a}:")} & {n.split(":", 1)[1] for n in present if n.startswith(f"{b}:")}
    )
    if not questions:
        raise ValueError(f"no per-question views of {a!r} and {b!r} in these metrics; run with score_by_question: true")
    if pool:
        unknown = sorted(set(pool) - set(questions))
        if unknown or len(pool) < 2:
            raise ValueError(f"`pool` needs two or more of the question types {questions}; got {list(pool)}")
        name = "+".join(pool)
        views = metrics[metrics["subset"].isin([f"{s}:{q}" for s in (a, b) for q in pool]) & (metrics["metric"] == metric)]
        keys = ["seed", "seed_stage2", "stage", "epoch", "metric"]
        pooled = (
            views.assign(subset=views["subset"].str.split(":").str[0] + f":{name}")
            .groupby(keys + ["subset"], dropna=False, as_index=False)["value"]
            .mean()
        )
        metrics = pd.concat([metrics, pooled[list(metrics.columns)]], ignore_index=True)
        questions.append(name)
    rows = []
    for q in questions:
        after, gain = gap(metrics, f"{a}:{q}", f"{b}:{q}", metric), gain_gap(metrics, f"{a}:{q}", f"{b}:{q}", metric)
        pairs = paired_differences(metrics, f"{a}:{q}", f"{b}:{q}", metric)
        rows.append(
            {
                "question": q,
                f"{a}": pairs[f"{a}:{q}"].mean(),
                f"{b}": pairs[f"{b}:{q}"].mean(),
                "gap": after["mean"],
                "gap low": after["ci_low"],
                "gap high": after["ci_high"],
                "gain gap": gain["mean"],
                "gain low": gain["ci_low"],
                "gain high": gain["ci_high"],
                "n_seeds": after["n_seeds"],
            }
        )
    return pd.DataFrame(rows).round(3)


def _final_cells(seeds: pd.DataFrame) -> pd.DataFrame:
    """For each subset, the rows at the last epoch of the last stage in which it appears."""
    last_stage = seeds.groupby("subset")["stage"].transform("max")
    seeds = seeds[seeds["stage"] == last_stage]
    last_epoch = seeds.groupby("subset")["epoch"].transform("max")
    return seeds[seeds["epoch"] == last_epoch]


def summary(metrics: pd.DataFrame, metric: str = "em") -> dict:
    """Headline numbers of a run: IML gaps (QA, entity), the Stage-1 gap and final EM per subset (strict JSON once written by
    results.atomic_write_json).

    A gap whose subsets are absent (e.g. a Stage-1-only run) is None rather than an error.
    """

    def maybe_gap(a, b, stage=None):
        present = set(metrics.loc[metrics["metric"] == metric, "subset"])
        return gap(metrics, a, b, metric, stage=stage) if {a, b} <= present else None

    seeds = per_seed(metrics)
    final = _final_cells(seeds[seeds["metric"] == metric])
    out = {
        "metric": metric,
        **{g.summary_key: maybe_gap(g.a, g.b, stage=g.stage) for g in GAPS},
        f"final_{metric}": {
            subset: {**mean_ci(g["value"]), "stage": int(g["stage"].iloc[0]), "epoch": int(g["epoch"].iloc[0])}
            for subset, g in final.groupby("subset")
        },
        "n_seeds": int(metrics["seed"].nunique()),
        "n_seeds_stage2": int(metrics["seed_stage2"].nunique()),
    }
    return out


def summary_with_stage2_checks(metrics: pd.DataFrame, metric: str = "em") -> dict:
    """summary plus two checks on the IML gap: d1 − d2 before the last stage (noise only: those aliases are still undefined) and the
    gain gap (what the last stage added); used by the set-inclusion and MNIST experiments."""
    out = summary(metrics, metric)
    out["iml_gap_before_stage2"] = gap(metrics, "d1consis", "d2consis", metric, stage=1)
    out["iml_gain_gap"] = gain_gap(metrics, "d1consis", "d2consis", metric)
    return out


def stage2_checks_lines(summary: dict) -> str:
    """The four numbers of summary_with_stage2_checks, one line each, with stage and epoch: the Stage-1 effect, d1 − d2 before
    Stage 2 (noise only), the IML gap and the gain gap."""
    lines = [
        ("stage1_gap_qa", "Stage-1 effect   qd1consis - qd2incons"),
        ("iml_gap_before_stage2", "before Stage 2   d1consis - d2consis"),
        ("iml_gap_qa", "IML gap          d1consis - d2consis"),
        ("iml_gain_gap", "gain gap         (after - before)"),
    ]
    return "\n".join(
        f"{label}: {format_ci(summary[key])}  (stage {summary[key]['stage']}, epoch {summary[key]['epoch']})" for key, label in lines
    )


def summary_table(metrics: pd.DataFrame, metric: str = "em", confidence: float = 0.95) -> pd.DataFrame:
    """Readable table for notebooks: one row per (subset, stage) at that stage's last epoch, rounded to 3 decimals."""
    c = curves(metrics, metric, confidence)
    last = c.groupby(["subset", "stage"])["epoch"].transform("max")
    c = c[c["epoch"] == last].sort_values(["stage", "subset"])
    pct = f"{round(confidence * 100)}% CI"
    table = pd.DataFrame(
        {
            "subset": c["subset"],
            "stage": c["stage"],
            "epoch": c["epoch"],
            f"{metric.upper()} mean": c["mean"],
            f"{pct} low": c["ci_low"],
            f"{pct} high": c["ci_high"],
            "n_seeds": c["n_seeds"],
        }
    )
    return table.round(3).reset_index(drop=True)
