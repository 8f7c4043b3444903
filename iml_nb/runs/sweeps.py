"""Sweeps of the main experiment (paper §5-6, Fig. 4): collect a batch's run folders and compute the IML gap at every grid point."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from iml_nb.analysis import stats
from iml_nb.core.parameters import require
from iml_nb.core.results import is_complete, read_metrics


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


# "Converged" for a read-out at matched learning: both tags' training definitions memorised to this EM, on average over seeds.
MEMORISED = 0.95


def gap_table(metrics: pd.DataFrame, axis: str, metric: str = "em", gaps: tuple = stats.IML_GAPS, at: str = "end") -> pd.DataFrame:
    """Per grid value: the gaps (default: the IML gaps, QA and entity) with their CIs across Stage-1 seeds, a verdict, the two EMs
    behind each gap, how well each side's definitions were memorised, and the stage and epoch read.

    `at` "end": the last evaluation; "memorised": the first evaluation of the last stage at which both tags' training definitions
    (d1consis, d2consis) are memorised to MEMORISED on average over seeds, the same as training each grid point to that criterion
    under a constant learning rate (a grid value that never gets there, or never scored its definitions, has no row)."""
    require(at in ("end", "memorised"), "at", f"must be 'end' or 'memorised', got {at!r}")
    rows = []
    for value, frame in metrics.groupby(axis, sort=True):
        frame = frame.drop(columns=[axis])
        where = {} if at == "end" else first_memorised(frame, metric)
        if where is None:
            continue
        for gap in gaps:
            kind, a, b = gap.name, gap.a, gap.b
            if {a, b} <= set(frame["subset"]):
                diffs = stats.paired_differences(frame, a, b, metric, **where)  # once: stats.gap would compute it again
                g = stats.mean_ci(diffs["diff"])
                rows.append(
                    {
                        axis: value,
                        "gap": kind,
                        "mean": g["mean"],
                        "ci_low": g["ci_low"],
                        "ci_high": g["ci_high"],
                        "n_seeds": g["n_seeds"],
                        "verdict": verdict(g["ci_low"], g["ci_high"]),
                        "em_reliable": diffs[a].mean(),
                        "em_unreliable": diffs[b].mean(),
                        **memorised(frame, diffs, metric),
                        "stage": diffs.attrs["stage"],
                        "epoch": diffs.attrs["epoch"],
                    }
                )
    return pd.DataFrame(rows)


def first_memorised(frame: pd.DataFrame, metric: str = "em", threshold: float = MEMORISED) -> dict | None:
    """{stage, epoch} of the first evaluation of the last stage at which train_defs_d1consis and train_defs_d2consis both reach
    `threshold` (means over seeds), or None if none does (or they were not scored)."""
    names = ("train_defs_d1consis", "train_defs_d2consis")
    seeds = stats.per_seed(frame)
    seeds = seeds[(seeds["metric"] == metric) & seeds["subset"].isin(names)]
    if seeds.empty:  # definitions never scored (given in context, or another experiment): nothing to read at
        return None
    seeds = seeds[seeds["stage"] == seeds["stage"].max()]
    means = seeds.groupby(["epoch", "subset"])["value"].mean().unstack("subset").reindex(columns=list(names))
    reached = means[(means >= threshold).all(axis=1)]
    return None if reached.empty else {"stage": int(seeds["stage"].max()), "epoch": int(reached.index.min())}


def memorised(frame: pd.DataFrame, diffs: pd.DataFrame, metric: str = "em") -> dict[str, float]:
    """How well the two sides' own training definitions were learned where the gap was read (mean over seeds; NaN where they
    were not scored, e.g. definitions given in context): a gap is read only between equally learned definitions."""
    a, b = (f"train_defs_{diffs.attrs[side].removeprefix('ent_assoc_')}" for side in ("a", "b"))
    if not {a, b} <= set(frame["subset"]):
        return {"memorised_reliable": float("nan"), "memorised_unreliable": float("nan")}
    m = stats.paired_differences(frame, a, b, metric, stage=diffs.attrs["stage"], epoch=diffs.attrs["epoch"])
    return {"memorised_reliable": float(m[a].mean()), "memorised_unreliable": float(m[b].mean())}


def verdict(ci_low: float, ci_high: float) -> str:
    """What a 95% CI says about a gap: 'IML' (above zero), 'reversed' (below) or 'n.s.' (contains zero, or undefined)."""
    return {1: "IML", -1: "reversed", 0: "n.s."}[stats.ci_sign(ci_low, ci_high)]


def validate(fixed: dict, axis: str, values: list) -> None:
    """Build every grid point's config now, and check the names against 01_main_two_stage's parameters, so a bad value fails
    before any run (each run would only fail when it starts)."""
    from iml_nb.people_qa.config import grid
    from iml_nb.runs.runner import check_parameters, resolve_notebook

    grid(fixed, axis, values)
    check_parameters(resolve_notebook("01_main_two_stage"), {**fixed, axis: values[0]})


def with_overrides(own: dict, overrides: dict, axis: str = "") -> dict:
    """A notebook's own main-experiment parameters plus `overrides`, further 01_main_two_stage parameters the same at every grid
    point (loss on all tokens, a fresh world or fresh seeds); an override may not set what the notebook sets itself, or the axis."""
    require(isinstance(overrides, dict), "overrides", f"must be a mapping of 01_main_two_stage parameters, got {overrides!r}")
    taken = (set(own) | ({axis} if axis else set())) & set(overrides)
    require(not taken, "overrides", f"sets {sorted(taken)}: set them through the notebook's own parameters")
    return {**own, **overrides}


@dataclass
class Sweep:
    """One sweep notebook's plan: 01_main_two_stage with `axis` over `values`, everything else `fixed` (the notebook's own
    parameters plus `overrides`), one resumable batch.

    Building it checks every grid point's config, the backend and the run folder, before any run starts."""

    notebook: str  # the sweep notebook (its run folder: outputs/<notebook>/<run id>/, unless output_dir names one)
    axis: str
    values: list
    fixed: dict
    batch_name: str  # outputs/batches/<batch_name>/, reused to resume
    output_dir: str = ""
    jobs: int = 1
    backend: str = "local"
    slurm_options: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from iml_nb.core import results
        from iml_nb.runs import slurm

        self.fixed = with_overrides(self.fixed, self.overrides, self.axis)
        validate(self.fixed, self.axis, self.values)
        self.cluster = slurm.options_from(self.backend, self.slurm_options)  # None for the local backend
        self.run_dir = results.run_dir_for(self.output_dir, self.notebook)

    def describe(self) -> str:
        return f"{len(self.values)} values of {self.axis} x {self.fixed.get('n_seeds')} seeds; fixed: {self.fixed}"

    def run(self) -> pd.DataFrame:
        """Every grid point as a run of 01_main_two_stage (complete ones are skipped); the batch's status table."""
        from iml_nb.core.env import project_path
        from iml_nb.runs.batch import run_batch

        return run_batch(
            "01_main_two_stage",
            grid={self.axis: self.values},
            fixed=self.fixed,
            jobs=self.jobs,
            out=project_path("outputs/batches"),
            name=self.batch_name,
            backend=self.backend,
            slurm=self.cluster,
        )

    def collect(self, table: pd.DataFrame, gaps: tuple = stats.IML_GAPS) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(metrics of every complete run with the axis as a column, the gap table per grid value)."""
        metrics = collect(table.attrs["batch_json"])
        return metrics, gap_table(metrics, self.axis, gaps=gaps)

    def write(
        self, table: pd.DataFrame, metrics: pd.DataFrame, gaps: pd.DataFrame, expectation: str, memorised: pd.DataFrame | None = None
    ) -> dict:
        """Config and metrics into the run folder; returns the summary for results.mark_complete (the notebook's last cell).
        `memorised`: the gap table read where definitions are first memorised (gap_table's at="memorised"), kept beside."""
        from iml_nb.core import results

        results.write_run(
            self.run_dir, {"axis": self.axis, "values": self.values, "fixed": self.fixed, "batch_name": self.batch_name}, metrics
        )
        return {
            "axis": self.axis,
            "values": self.values,
            "gaps": gaps.to_dict("records"),
            "batch": table.attrs["batch_json"],
            "paper_expectation": expectation,
            **({"gaps_memorised": memorised.to_dict("records")} if memorised is not None else {}),
        }

    def qa_line(self, gaps: pd.DataFrame) -> str:
        """The QA gap at every grid value with its verdict, on one line."""
        qa = gaps[gaps["gap"] == "qa"].set_index(self.axis)
        return f"QA gap by {self.axis}: " + ", ".join(f"{v}: {m:+.2f} ({x})" for v, m, x in zip(qa.index, qa["mean"], qa["verdict"]))
