"""Does the headline hold across independent worlds? The main experiment per (arm, world) as resumable batch runs, outcomes per
seed, and across-world verdicts with multiplicity control and equivalence tests (notebook 10_robustness)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from iml_nb.analysis import stats
from iml_nb.core.parameters import ConfigError
from iml_nb.core.results import is_complete, read_metrics
from iml_nb.people_qa.config import build_config

# Each arm changes the default main experiment in one respect (a shortcut of the toy, or a choice the paper makes differently).
ARMS = {
    "default": {},
    "untied": {"tie_embeddings": False},  # Pythia's choice: no shared input/output embedding row for an alias
    "no_ea_train": {"ea_train": False},  # entity association never trained: out of distribution, as in the paper
    "no_stage2_replay": {"stage2_replay_frac": 0.0},  # Stage 2 is definitions only, as the paper's (Stages 0-1 shared with default)
    "fresh_aliases": {"alias_pool": 0},  # aliases and tags drawn fresh per seed, as the paper does
}
# name -> (subset a, subset b, stage or None for the last): per-seed differences a - b, read at that stage's last epoch
OUTCOMES = {
    "qa_gap": ("d1consis", "d2consis", None),
    "entity_gap": ("ent_assoc_d1consis", "ent_assoc_d2consis", None),
    "stage1_effect": ("qd1consis", "qd2incons", 1),
    "internalized_d1": ("d1consis", "no_qd_baseline", None),  # IML presupposes that definitions help at all
    "internalized_d2": ("d2consis", "no_qd_baseline", None),
}
MEMORISED = ("train_defs_d1consis", "train_defs_d2consis")  # the Stage-2 definitions themselves, per tag
PRIMARY = ("qa_gap", "entity_gap")  # the family Holm's correction runs over: every arm x these outcomes
ALPHA = 0.05


def check_design(arms: list, worlds: list, margin: float) -> None:
    """The notebook's design parameters, checked (and named) before any run starts."""
    if not isinstance(arms, list) or not arms or set(arms) - set(ARMS):
        raise ConfigError(f"parameter `arms`: a non-empty list among {list(ARMS)}, got {arms!r}")
    ok = (
        isinstance(worlds, list)
        and len(worlds) >= 2
        and all(
            isinstance(w, list) and len(w) == 2 and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in w)
            for w in worlds
        )
    )
    if not ok or len({tuple(w) for w in worlds}) != len(worlds):
        raise ConfigError(f"parameter `worlds`: at least two distinct [people_seed, stage0_seed] pairs, got {worlds!r}")
    if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not 0 < margin < 1:
        raise ConfigError(f"parameter `margin`: the equivalence margin in EM, a number in (0, 1), got {margin!r}")


def plan(arms: list, worlds: list, fixed: dict, prefix: str = "robustness") -> pd.DataFrame:
    """One row per (arm, world): its batch name (under `prefix`) and the 01 parameters; every config is built (and checked) here."""
    rows = []
    for arm in arms:
        for people_seed, stage0_seed in worlds:
            params = {**fixed, **ARMS[arm], "people_seed": people_seed, "stage0_seed": stage0_seed}
            build_config(**params)
            rows.append(
                {
                    "arm": arm,
                    "people_seed": people_seed,
                    "stage0_seed": stage0_seed,
                    "batch": f"{prefix}__{arm}__world-{people_seed}-{stage0_seed}",
                    "params": params,
                }
            )
    return pd.DataFrame(rows)


def stage2_composition(design: pd.DataFrame) -> pd.DataFrame:
    """Per arm (first world, first seed): what Stage 2 trains on, definitions vs replayed Stage-0 facts."""
    from iml_nb.people_qa.define import make_define_data, replay_sample, stage0_examples
    from iml_nb.people_qa.people import load_people

    rows = []
    for arm, first in design.groupby("arm", sort=False).first().iterrows():
        cfg = build_config(**first["params"])
        people = load_people(cfg)
        definitions = len(make_define_data(people, cfg.data, cfg.run.seed, 0).train[cfg.stages[-1]])
        replayed = len(replay_sample(stage0_examples(people), cfg.data.last_replay_frac, 0))
        rows.append(
            {"arm": arm, "definitions": definitions, "replayed_facts": replayed, "definition_share": definitions / (definitions + replayed)}
        )
    return pd.DataFrame(rows)


def run(design: pd.DataFrame, out: str | os.PathLike, jobs: int = 1, backend: str = "local", slurm=None) -> pd.DataFrame:
    """Every (arm, world) as a one-run batch of 01_main_two_stage under `out`; complete runs are skipped, so a rerun resumes."""
    from iml_nb.runs.batch import run_batch

    tables = []
    for row in design.itertuples():
        params = dict(row.params)
        seed = params.pop("seed")
        table = run_batch(
            "01_main_two_stage",
            grid={"seed": [seed]},
            fixed=params,
            jobs=jobs,
            out=out,
            name=row.batch,
            progress=False,
            backend=backend,
            slurm=slurm,
        )
        tables.append(
            table.assign(
                arm=row.arm,
                people_seed=row.people_seed,
                stage0_seed=row.stage0_seed,
                folder=[str(Path(table.attrs["batch_json"]).parent / r) for r in table["run"]],
            )
        )
    return pd.concat(tables, ignore_index=True)


def outcomes(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, world, Stage-1 seed): every OUTCOMES difference and the Stage-2 definitions memorised per tag."""
    frames = []
    for r in runs.itertuples():
        if not is_complete(r.folder):
            raise ValueError(f"{r.folder} is not complete; rerun to resume it")
        metrics = read_metrics(Path(r.folder) / "metrics.csv")
        per = None
        for name, (a, b, stage) in OUTCOMES.items():
            diffs = stats.paired_differences(metrics, a, b, stage=stage)
            part = diffs[["seed", "diff"]].rename(columns={"diff": name})
            if name == "qa_gap":  # memorisation read where the gap is read: the last stage's last epoch
                mem = stats.paired_differences(metrics, *MEMORISED, stage=diffs.attrs["stage"], epoch=diffs.attrs["epoch"])
                part = part.merge(
                    mem[["seed", *MEMORISED]].rename(columns={m: m.replace("train_defs_", "memorised_") for m in MEMORISED}), on="seed"
                )
            per = part if per is None else per.merge(part, on="seed")
        frames.append(per.assign(arm=r.arm, world=f"{r.people_seed}/{r.stage0_seed}"))
    return pd.concat(frames, ignore_index=True)


def summarise(per_seed: pd.DataFrame, margin: float) -> pd.DataFrame:
    """One row per (arm, outcome): the across-world mean and 95 % t-CI (the number to quote: worlds are the independent unit), the
    pooled seed-level CI beside it, a t-test across worlds with Holm's correction over PRIMARY x arms, an equivalence test (TOST,
    +-margin) across worlds, and the pre-registered verdict."""
    from scipy import stats as sps
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.weightstats import DescrStatsW

    columns = list(OUTCOMES) + [c for c in per_seed if c.startswith("memorised_")]
    rows = []
    for arm, frame in per_seed.groupby("arm", sort=False):
        worlds = frame.groupby("world")[columns].mean()
        for name in columns:
            by_world = worlds[name].dropna().to_numpy()
            across, pooled = stats.mean_ci(by_world), stats.mean_ci(frame[name].dropna())
            with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():  # worlds that agree exactly: sd 0
                warnings.simplefilter("ignore", RuntimeWarning)
                p = float(sps.ttest_1samp(by_world, 0.0).pvalue) if len(by_world) > 1 else np.nan
                p_equiv = float(DescrStatsW(by_world).ttost_mean(-margin, margin)[0]) if len(by_world) > 1 else np.nan
            rows.append(
                {
                    "arm": arm,
                    "outcome": name,
                    "mean": across["mean"],
                    "ci_low": across["ci_low"],
                    "ci_high": across["ci_high"],
                    "n_worlds": len(by_world),
                    "pooled_ci_low": pooled["ci_low"],
                    "pooled_ci_high": pooled["ci_high"],
                    "n_seeds": pooled["n_seeds"],
                    "p": p,
                    "p_equivalence": p_equiv,
                }
            )
    table = pd.DataFrame(rows)
    family = table["outcome"].isin(PRIMARY) & table["p"].notna()
    table["p_holm"] = np.nan
    if family.any():
        table.loc[family, "p_holm"] = multipletests(table.loc[family, "p"], alpha=ALPHA, method="holm")[1]
    table["verdict"] = [verdict(r) for r in table.itertuples()]
    return table


def verdict(row) -> str:
    """The pre-registered rule: 'IML' if Holm-adjusted p < 0.05 with a positive mean; 'reversed' likewise with a negative one;
    'no effect' if the TOST across worlds rejects |gap| >= margin at 0.05; else 'inconclusive'. Outcomes outside the family get
    'descriptive'."""
    if row.outcome not in PRIMARY:
        return "descriptive"
    if row.p_holm < ALPHA:
        return "IML" if row.mean > 0 else "reversed"
    return "no effect" if row.p_equivalence < ALPHA else "inconclusive"


def memorisation_check(table: pd.DataFrame, tolerance: float = 0.05) -> pd.DataFrame:
    """Per arm: how well each tag's Stage-2 definitions were memorised where the gap is read, and whether they differ by more than
    `tolerance` (then the arm's gap is not read as IML: it may come from unequal learning)."""
    mem = table[table["outcome"].str.startswith("memorised_")].pivot(index="arm", columns="outcome", values="mean")
    mem["unequal"] = (mem["memorised_d1consis"] - mem["memorised_d2consis"]).abs() > tolerance
    return mem.reset_index()


def tries(batches: list[Path]) -> pd.DataFrame:
    """Exploratory runs outside the pre-registration: one batch of 01_main_two_stage per try, named `<prefix>__<try>`, all in one
    world. One row per (try, outcome): mean over the Stage-1 seeds and their 95 % t-interval (one world: seeds are the unit),
    with the parameters the try fixed. Incomplete runs are left out (a batch still running shows what it has)."""
    runs = []
    for batch in batches:
        meta = json.loads((Path(batch) / "batch.json").read_text())
        fixed = meta["fixed"]
        for r in meta["runs"]:
            folder = Path(batch) / r["folder"]
            if is_complete(folder):
                runs.append(
                    {
                        "arm": Path(batch).name.split("__", 1)[-1],
                        "people_seed": fixed.get("people_seed", 0),
                        "stage0_seed": fixed.get("stage0_seed", 0),
                        "folder": str(folder),
                        "fixed": fixed,
                    }
                )
    if not runs:
        return pd.DataFrame(columns=["try", "outcome", "mean", "ci_low", "ci_high", "n_seeds", "fixed"])
    runs = pd.DataFrame(runs)
    per_seed = pd.concat(
        [outcomes(runs.iloc[[i]]).merge(_alignment(runs.iloc[[i]]), on=["arm", "seed"], how="left") for i in range(len(runs))],
        ignore_index=True,
    )  # run by run: two runs may share seed numbers
    columns = [c for c in per_seed if c not in ("arm", "world", "seed")]
    fixed_of = dict(zip(runs["arm"], runs["fixed"]))
    return pd.DataFrame(
        [
            {"try": arm, "outcome": name, **stats.mean_ci(frame[name].dropna()), "fixed": fixed_of[arm]}
            for arm, frame in per_seed.groupby("arm", sort=False)
            for name in columns
            if frame[name].notna().any()
        ]
    )


ALIGNED = {"align_d1": "align_d1consis", "align_d2": "align_d2consis", "align_none": "align_no_qd_baseline"}


def _alignment(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, seed), at the last stage's last epoch: how much closer each Stage-2 alias's row is to its person's row than to
    other people's (cosine minus chance cosine; metric `cos` of mechanism.alignment), for Define-dot, Define-bar and never-defined
    aliases. Runs that did not record it give no rows."""
    frames = []
    for r in runs.itertuples():
        m = stats.per_seed(read_metrics(Path(r.folder) / "metrics.csv"))
        m = m[m["subset"].isin(ALIGNED.values()) & m["metric"].isin(["cos", "cos_other"])]
        if m.empty:
            continue
        last = m[m["stage"] == m["stage"].max()]
        last = last[last["epoch"] == last["epoch"].max()]
        wide = last.pivot_table(index=["seed", "subset"], columns="metric", values="value").reset_index()
        wide["value"] = wide["cos"] - wide["cos_other"]
        per = wide.pivot(index="seed", columns="subset", values="value").rename(columns={v: k for k, v in ALIGNED.items()})
        frames.append(per.reset_index().assign(arm=r.arm))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["arm", "seed", *ALIGNED])


def as_metrics(per_seed: pd.DataFrame, stage2_epochs: int) -> pd.DataFrame:
    """The per-seed outcomes as the package's tidy metrics frame (subset = arm, metric = outcome, at the end of Stage 2; the world
    in an extra column), so the run folder holds them like any run's metrics."""
    from iml_nb.core.results import metrics_frame

    long = per_seed.melt(id_vars=["arm", "world", "seed"], var_name="metric", value_name="value")
    rows = long.assign(seed_stage2=pd.NA, stage=2, epoch=stage2_epochs, subset=long["arm"])
    return metrics_frame(rows.to_dict("records")).assign(world=rows["world"].to_numpy())


__all__ = [
    "ALPHA",
    "ARMS",
    "MEMORISED",
    "OUTCOMES",
    "PRIMARY",
    "check_design",
    "memorisation_check",
    "outcomes",
    "plan",
    "run",
    "stage2_composition",
    "summarise",
    "tries",
    "verdict",
    "as_metrics",
]
