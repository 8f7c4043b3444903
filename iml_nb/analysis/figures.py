"""Every figure the notebooks save and the docs show, each defined once: drawn from the data a notebook holds, or redrawn from a
complete run folder's stored files (`python -m iml_nb figures`, `make figures`), never from live model state."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import pandas as pd

from iml_nb.analysis import plots, stats
from iml_nb.core.results import read_metrics


@dataclass(frozen=True)
class Figure:
    file: str  # its name in the run folder
    draw: Callable[..., alt.TopLevelMixin]  # the chart from the data the notebook holds
    load: Callable[[Path], tuple]  # the same data, read back from a complete run folder

    def save(self, run_dir: str | Path, *data, **named) -> alt.TopLevelMixin:
        """Draw, write <run_dir>/<file>, and return the chart (a notebook's figure cell shows it)."""
        chart = self.draw(*data, **named)
        plots.save_chart(chart, Path(run_dir) / self.file)
        return chart

    def redraw(self, run_dir: str | Path) -> alt.TopLevelMixin:
        return self.save(run_dir, *self.load(Path(run_dir)))


def _metrics(run: Path) -> tuple:
    return (read_metrics(run / "metrics.csv"),)


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def _sweep(run: Path) -> tuple:
    """A sweep's gap table, its grid values in the order they ran (config.json: `values`; older runs name the list after the
    notebook's parameter, `orders` or `models`) and, where the run read it, the gap table at memorisation (else None)."""
    config = json.loads((run / "config.json").read_text())
    order = config.get("values") or next(v for v in config.values() if isinstance(v, list))
    summary = _summary(run)
    memorised = pd.DataFrame(summary["gaps_memorised"]) if summary.get("gaps_memorised") else None
    return pd.DataFrame(summary["gaps"]), order, memorised


def _sweep_chart(gaps: pd.DataFrame, axis: str, title: str, order=None, log_x=False, memorised: pd.DataFrame | None = None):
    """Fig. 4-like gaps at the end of training and, where the sweep read them, beside them the gaps where each grid point's
    definitions are first memorised (the reading that compares equally learned things; points never memorised are left out)."""
    end = plots.gap_vs(gaps, axis, title=title, order=order, log_x=log_x)
    read = None if memorised is None or "mean" not in memorised else memorised.dropna(subset=["mean"])
    if read is None or read.empty:
        return end
    at = plots.gap_vs(
        read,
        axis,
        title="… read where both tags' definitions are first memorised",
        order=order,
        log_x=log_x,
        y_title="EM(d1consis) − EM(d2consis), at memorisation",
    )
    return alt.hconcat(end, at).resolve_scale(y="shared")


def _entity_curves(metrics: pd.DataFrame):
    present = set(metrics["subset"])
    return plots.em_curves(
        metrics, subsets=[s for s in plots.ENTITY_SUBSETS if s in present], title="Fig. 3b: entity association exact match"
    )


def _gradient_alignment(table: pd.DataFrame):
    gaps = table.rename(columns={"cos_gap": "mean", "cos_gap_ci_low": "ci_low", "cos_gap_ci_high": "ci_high"}).assign(gap="gradient cosine")
    return plots.gap_vs(
        gaps,
        "batch_size",
        title="Gradient alignment gap (Define-dot − Define-bar) vs batch size",
        log_x=True,
        y_title="cos(d1consis) − cos(d2consis), end of training",
    )


def _robustness(table: pd.DataFrame, arms: list[str]):
    from iml_nb.people_qa.robustness import PRIMARY

    gaps = table[table["outcome"].isin(PRIMARY)].rename(columns={"outcome": "gap"})
    return plots.gap_vs(
        gaps.assign(n_seeds=gaps["n_worlds"]), "arm", order=arms, title="IML gaps per arm: mean and 95 % t-interval across worlds"
    )


def _four_subsets(metrics: pd.DataFrame, metric: str, y_title: str, title: str):
    """Accuracy curves of the four subsets the set-inclusion and MNIST experiments have (chance 0.5)."""
    subsets = ["qd1consis", "qd2incons", "d1consis", "d2consis"]
    return plots.em_curves(metrics, subsets=subsets, metric=metric, y_title=y_title, y_domain=(0.3, 1), title=title)


def _probe_curves(run: Path) -> tuple:
    from iml_nb.mechanisms.probe import probe_curves

    return (probe_curves(pd.read_csv(run / "probes.csv")),)


def _generality(gaps: dict[str, pd.DataFrame]):
    """12_generality: one panel per section, its gaps against its own axis, in the sections' declared order (summary.json
    stores them sorted by name, so a redraw would otherwise reorder the panels)."""
    from iml_nb.runs.sections import SECTIONS

    panels = []
    for name in sorted(gaps, key=list(SECTIONS).index):
        table, s = gaps[name], SECTIONS[name]
        order = None if s.log_x else list(s.values)
        panels.append(plots.gap_vs(table, s.axis, title=f"{name}: gaps by {s.axis}", order=order, log_x=s.log_x))
    return alt.vconcat(*panels)


def _tag_orientations(table: pd.DataFrame):
    # Each arm may have run more seeds than the two share; the title says how many the pairing used.
    return plots.gap_vs(
        table,
        "reading",
        title=[
            "Natural-language tags in both orientations: each arm's gap, IML (half sum), the words' prior (half difference)",
            f"paired over the {table['n_seeds'].max()} Stage-1 seeds both arms ran",
        ],
        order=list(stats.ORIENTATIONS),
        y_title="d1consis − d2consis EM, end of Stage 2",
    )


def _orientation_runs(run: Path) -> tuple:
    from iml_nb.analysis.claims import orientation_table, swapped_arm

    swapped = swapped_arm(run)
    if swapped is None:
        raise FileNotFoundError(f"{run} has no complete swapped arm (-p tags <style>_swapped) to pair with")
    return (orientation_table(run, swapped),)


def _robustness_table(run: Path) -> tuple:
    table = pd.read_csv(run / "robustness.csv")
    return table, list(dict.fromkeys(table["arm"]))


QA_CURVES = Figure("fig3a_qa.svg", lambda metrics: plots.em_curves(metrics, title="Fig. 3a: QA exact match per subset"), _metrics)
ENTITY_CURVES = Figure("fig3b_entity.svg", _entity_curves, _metrics)
ALPHA = Figure(
    "fig4a_alpha.svg",
    lambda gaps, order=None, memorised=None: _sweep_chart(
        gaps, "alpha", "IML gap vs tag-consistency correlation alpha", memorised=memorised
    ),
    _sweep,
)
WORD_ORDER = Figure(
    "fig4b_word_order.svg",
    lambda gaps, order, memorised=None: _sweep_chart(gaps, "word_order", "IML gap vs definition word order", order, memorised=memorised),
    _sweep,
)
BATCH_SIZE = Figure(
    "fig4c_batch_size.svg",
    lambda gaps, order=None, memorised=None: _sweep_chart(
        gaps, "batch_size", "IML gap vs batch size (one-stage training)", log_x=True, memorised=memorised
    ),
    _sweep,
)
MODEL_SIZE = Figure(
    "fig_model_size.svg",
    lambda gaps, order, memorised=None: _sweep_chart(gaps, "model", "IML gap vs model size", order, memorised=memorised),
    _sweep,
)
SET_INCLUSION = Figure(
    "fig_set_inclusion.svg",
    lambda metrics: _four_subsets(metrics, "em", "accuracy (true/false)", "Set inclusion: test accuracy per subset"),
    _metrics,
)
MNIST = Figure(
    "fig_mnist.svg",
    lambda metrics: _four_subsets(metrics, "acc", "QA accuracy (test cells)", "MNIST IML: QA accuracy per subset"),
    _metrics,
)
PROBES = Figure("fig_probes.svg", plots.probe_heatmap, _probe_curves)
GRADIENT_ALIGNMENT = Figure("fig_gradient_alignment.svg", _gradient_alignment, lambda run: (pd.DataFrame(_summary(run)["alignment"]),))
ROBUSTNESS = Figure("fig_robustness.svg", _robustness, _robustness_table)
GENERALITY = Figure(
    "fig_generality.svg",
    _generality,
    lambda run: ({n: pd.DataFrame(s["gaps"]) for n, s in _summary(run)["sections"].items()},),
)

TAG_ORIENTATIONS = Figure("fig_tag_orientations.svg", _tag_orientations, _orientation_runs)  # drawn into the as-named arm's folder

FIGURES = {  # notebook -> the figures its run folder holds
    "01_main_two_stage": (QA_CURVES, ENTITY_CURVES),
    "02_alpha_sweep": (ALPHA,),
    "03_word_order": (WORD_ORDER,),
    "04_set_inclusion": (SET_INCLUSION,),
    "05_mnist": (MNIST,),
    "06_probing": (PROBES,),
    "07_batch_size": (BATCH_SIZE,),
    "08_model_size": (MODEL_SIZE,),
    "09_gradient_alignment": (GRADIENT_ALIGNMENT,),
    "10_robustness": (ROBUSTNESS,),
    "11_pretrained": (QA_CURVES, ENTITY_CURVES),
    "12_generality": (GENERALITY,),
}


def redraw_all(outputs: str | Path = "outputs") -> list[Path]:
    """Redraw the figures of every notebook's curated run: its newest complete one, which the report and the docs read."""
    from iml_nb.analysis.claims import CLAIMS, swapped_arm
    from iml_nb.analysis.report import latest_complete_run
    from iml_nb.core.env import project_path

    outputs = project_path(outputs)
    written = []
    for notebook, figures in FIGURES.items():
        run = latest_complete_run(notebook, outputs)
        for figure in figures if run else ():
            figure.redraw(run)
            written.append(run / figure.file)
    for claim in CLAIMS:  # a row read over two orientations: its pair's figure, once both arms exist
        run = latest_complete_run(claim.notebook, outputs, claim.answers) if claim.arms else None
        if run is not None and swapped_arm(run) is not None:
            TAG_ORIENTATIONS.redraw(run)
            written.append(run / TAG_ORIENTATIONS.file)
    return written
