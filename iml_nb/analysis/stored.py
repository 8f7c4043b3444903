"""Stored runs, read back for the explorer: which run folders outputs/ holds, one run's metrics and config, its curves and gaps,
and the training texts and model answers of one alias. Nothing here trains; everything reads files."""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from pathlib import Path

import pandas as pd

from iml_nb.analysis import plots, stats
from iml_nb.core.env import project_path
from iml_nb.core.results import METRIC_COLUMNS, is_complete, read_metrics
from iml_nb.people_qa.config import from_dict

SKIPPED_FOLDERS = {"nbval", "batches", "diagnostics", ".cache", "00_explore"}  # not experiments' own run folders
CURVE_METRICS = ("em", "acc")  # a run with one of these per subset and epoch has curves to show


def list_runs(outputs: str = "outputs") -> pd.DataFrame:
    """Every complete run folder with curves under outputs/<notebook>/<run id>/, newest first.

    Columns: label, notebook, run, path, metric ("em" or "acc"), axis (a sweep's grid column, or ""), seeds, subsets."""
    rows = []
    for summary in project_path(outputs).glob("*/*/summary.json"):
        folder = summary.parent
        if folder.parent.name in SKIPPED_FOLDERS or not is_complete(folder) or not (folder / "metrics.csv").exists():
            continue
        metrics = read_metrics(folder / "metrics.csv")
        metric = next((m for m in CURVE_METRICS if m in set(metrics["metric"])), None)
        if metric is None:  # probes, gradient cosines: no per-subset curves
            continue
        axis = next((c for c in metrics.columns if c not in METRIC_COLUMNS), "")
        rows.append(
            {
                "label": f"{folder.parent.name} / {folder.name}",
                "notebook": folder.parent.name,
                "run": folder.name,
                "path": str(folder),
                "metric": metric,
                "axis": axis,
                "seeds": int(metrics["seed"].dropna().nunique()),
                "subsets": int(metrics["subset"].nunique()),
            }
        )
    columns = ["label", "notebook", "run", "path", "metric", "axis", "seeds", "subsets"]
    return pd.DataFrame(rows, columns=columns).sort_values("run", ascending=False, ignore_index=True)


def pick_run(runs: pd.DataFrame, experiment: str) -> str:
    """The label of the run to show first: "" -> the newest main-experiment run (else the newest of all), a notebook name -> its
    newest run, "<notebook>/<run id>" -> that run. Anything else is an error naming `experiment` and what there is."""
    if runs.empty:
        raise ValueError("no complete run folder with curves under outputs/: run a notebook first (e.g. `make main`)")
    if experiment == "":
        main = runs[runs["notebook"] == "01_main_two_stage"]
        return (main if len(main) else runs)["label"].iloc[0]
    notebook, _, run = experiment.partition("/")
    hit = runs[(runs["notebook"] == notebook) & ((runs["run"] == run) if run else True)]
    if hit.empty:
        raise ValueError(
            f"parameter `experiment`: no complete run {experiment!r}; there are {sorted(set(runs['notebook']))} "
            f"(or '<notebook>/<run id>' among {runs['label'].head(5).tolist()} ...)"
        )
    return hit["label"].iloc[0]


@dataclasses.dataclass(frozen=True)
class StoredRun:
    """One run folder, as stored: tidy metrics, summary, config, and the model answers when the run kept them."""

    path: Path
    metrics: pd.DataFrame
    summary: dict
    config: dict
    metric: str
    axis: str
    answers: pd.DataFrame | None

    @property
    def define_config(self):
        """The experiment config that drew the data (main experiment and its sweeps), or None (set inclusion, MNIST)."""
        c = self.config.get("configs", [self.config])[0] if "configs" in self.config else self.config
        return from_dict(c) if {"data", "model", "train", "run"} <= set(c) and "n_people" in c["data"] else None


@lru_cache(maxsize=16)
def load_run(path: str) -> StoredRun:
    folder = Path(path)
    metrics = read_metrics(folder / "metrics.csv")
    extra = [c for c in metrics.columns if c not in METRIC_COLUMNS]  # a sweep's merged metrics keep their grid column
    metric = next(m for m in CURVE_METRICS if m in set(metrics["metric"]))
    answers = pd.read_csv(folder / "answers.csv") if (folder / "answers.csv").exists() else None
    return StoredRun(
        folder,
        metrics,
        json.loads((folder / "summary.json").read_text()),
        json.loads((folder / "config.json").read_text()),
        metric,
        extra[0] if extra else "",
        answers,
    )


def select(run: StoredRun, seeds=(), stage="all", point=None) -> pd.DataFrame:
    """The run's metrics for the chosen seeds (all if none), stage ("all" or a number; Stage 0 rows always kept for the curves'
    baseline) and sweep point."""
    m = run.metrics
    if run.axis and point is not None:
        m = m[m[run.axis] == point].drop(columns=[run.axis])
    elif run.axis:  # the sweep's last point, as the explorer shows first
        m = m[m[run.axis] == sorted(m[run.axis].unique())[-1]].drop(columns=[run.axis])
    if seeds:
        m = m[m["seed"].isna() | m["seed"].isin(list(seeds))]
    if stage != "all":
        m = m[m["stage"].isin([0, int(stage)])]
    return m


def present_subsets(run: StoredRun, seeds=(), stage="all", point=None) -> list[str]:
    """Subsets with curve values in the selection (Stage-1 test sets, say, are not evaluated in Stage 2)."""
    m = select(run, seeds, stage, point)
    m = m[(m["metric"] == run.metric) & (m["stage"] != 0)]
    return plots.ordered(set(m["subset"]) - {"train", "stage0_facts"})


def curve_chart(run: StoredRun, subsets, seeds=(), stage="all", point=None):
    """The chosen subsets' curves through the chosen stage(s), those without values there left out (ValueError if none has)."""
    m = select(run, seeds, stage, point)
    present = present_subsets(run, seeds, stage, point)
    keep = [s for s in subsets if s in present] if subsets else None
    if keep == []:
        raise ValueError(f"none of {list(subsets)} is evaluated in stage {stage}; there: {present}")
    y_title = {"em": "exact match", "acc": "accuracy"}[run.metric]
    n = int(m["seed"].dropna().nunique())
    return plots.em_curves(
        m,
        subsets=keep,
        metric=run.metric,
        y_title=y_title,
        title=f"{run.path.parent.name}: {y_title} per subset ({n} seed{'s' * (n != 1)}, 95% t-CI)",
    )


def gap_table(run: StoredRun, seeds=(), point=None) -> pd.DataFrame:
    """The gaps this run can show (IML gap QA and entity, Stage-1 gap), recomputed for the chosen seeds, with 95% t-CIs."""
    m = select(run, seeds, "all", point)
    present = set(m[m["metric"] == run.metric]["subset"])
    rows = []
    for gap in stats.GAPS:
        if {gap.a, gap.b} <= present:
            g = stats.gap(m, gap.a, gap.b, run.metric, stage=gap.stage)
            rows.append({"gap": gap.label, "value": stats.format_ci(g), "stage": g["stage"], "epoch": g["epoch"]})
    return pd.DataFrame(rows, columns=["gap", "value", "stage", "epoch"])


def _text(ex) -> str:
    return f"{ex.prompt} → {ex.answer}".replace("\n", " ↵ ")  # the prompt's newline, visible in a table cell


def alias_view(run: StoredRun, seed: int, alias: str) -> pd.DataFrame:
    """Everything the chosen seed's data says about one alias — each training text (stage, kind) and each test question — with
    the model's stored answer next to a question where the run kept one (answers.csv: a few items per Stage-2 subset)."""
    from iml_nb.people_qa.define import make_define_data
    from iml_nb.people_qa.people import load_people

    cfg = run.define_config
    if cfg is None:
        return pd.DataFrame({"note": ["this experiment has no aliases (set inclusion or MNIST)"]})
    data = make_define_data(load_people(cfg), cfg.data, seed, 0)
    rows = [
        {"where": stage, "kind": ex.kind, "subset": ex.subset, "text": _text(ex)}
        for stage, examples in data.train.items()
        for ex in examples
        if ex.alias == alias
    ]
    answers = run.answers
    for name, examples in data.eval_sets.items():
        for ex in examples:
            if ex.alias == alias:
                row = {"where": f"test: {name}", "kind": ex.kind, "subset": ex.subset, "text": _text(ex)}
                if answers is not None:
                    hit = answers[(answers["seed"] == seed) & (answers["prompt"] == ex.prompt)]
                    row["model answer"] = hit["prediction"].iloc[0] if len(hit) else ""
                rows.append(row)
    return pd.DataFrame(rows)


def aliases_of(run: StoredRun, seed: int, subset: str) -> list[str]:
    from iml_nb.people_qa.define import make_define_data
    from iml_nb.people_qa.people import load_people

    cfg = run.define_config
    if cfg is None:
        return []
    data = make_define_data(load_people(cfg), cfg.data, seed, 0)
    return [data.alias_of[e] for e in data.subsets.get(subset, ())]
