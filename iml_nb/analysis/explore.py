"""The JupyterLab explorer (notebook 00_explore): widgets over the run folders already in outputs/ — curves per subset,
the IML gap with its CI, the training texts and model answers of one alias — and a small "try it" panel that runs a short
main-experiment variant. The results panel only reads stored files; the try-it button is the one thing that computes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import ipywidgets as w
import pandas as pd
from IPython.display import display

from iml_nb.analysis import plots, stats
from iml_nb.analysis.stats import METRIC_COLUMNS
from iml_nb.analysis.stored import (
    StoredRun,
    alias_view,
    aliases_of,
    curve_chart,
    gap_table,
    list_runs,
    load_run,
    pick_run,
    present_subsets,
    select,
)
from iml_nb.core.results import atomic_write_text, finalize_run
from iml_nb.people_qa.config import build_config


class Explorer:
    """The results panel: pick a run (and a sweep point), subsets, seeds, stage; see curves and gaps; pick an alias, see its texts.

    `widget` is what the notebook displays; `chart` the chart now shown (tests and the notebook's checks read it)."""

    def __init__(self, runs: pd.DataFrame, first: str):
        self.runs = runs.set_index("label")
        self.run_box = w.Dropdown(options=list(self.runs.index), value=first, description="run", layout=w.Layout(width="560px"))
        self.point = w.Dropdown(description="point")
        self.subsets = w.SelectMultiple(description="subsets", rows=8, layout=w.Layout(width="420px"))
        self.seeds = w.SelectMultiple(description="seeds", rows=6)
        self.stage = w.Dropdown(options=["all", 1, 2], value="all", description="stage")
        self.alias_subset = w.Dropdown(description="subset")
        self.alias_seed = w.Dropdown(description="seed")
        self.alias = w.Dropdown(description="alias")
        self.chart_out, self.gap_out, self.alias_out = w.Output(), w.Output(), w.Output()
        self.chart = None
        self._busy = False
        self._load()
        for control in (self.point, self.subsets, self.seeds, self.stage):
            control.observe(lambda _: self._draw(), names="value")
        self.run_box.observe(lambda _: self._load(), names="value")
        for control in (self.alias_subset, self.alias_seed):
            control.observe(lambda _: self._fill_aliases(), names="value")
        self.alias.observe(lambda _: self._show_alias(), names="value")
        self.widget = w.VBox(
            [
                w.HTML("<b>Stored results</b> (read from outputs/; nothing is recomputed)"),
                self.run_box,
                w.HBox([self.subsets, w.VBox([self.seeds, self.stage, self.point])]),
                self.chart_out,
                self.gap_out,
                w.HTML("<b>One alias</b>: its training texts and test questions (with the model's answers where the run kept them)"),
                w.HBox([self.alias_subset, self.alias_seed, self.alias]),
                self.alias_out,
            ]
        )

    @property
    def current(self) -> StoredRun:
        return load_run(self.runs.loc[self.run_box.value, "path"])

    def _load(self) -> None:
        run = self.current
        self._busy = True  # setting options fires observers: draw once, at the end
        present = plots.ordered(set(run.metrics[run.metrics["metric"] == run.metric]["subset"]) - {"train", "stage0_facts"})
        default = [s for s in plots.QA_SUBSETS if s in present] or present[:6]
        self.subsets.options, self.subsets.value = present, tuple(default)
        seeds = sorted(int(s) for s in run.metrics["seed"].dropna().unique())
        self.seeds.options, self.seeds.value = seeds, ()
        stages = sorted(int(s) for s in run.metrics["stage"].unique() if s != 0)
        self.stage.options, self.stage.value = ["all", *stages], "all"
        points = sorted(run.metrics[run.axis].unique().tolist()) if run.axis else []
        self.point.options = points
        self.point.value = points[-1] if points else None
        self.point.layout.display = "" if points else "none"
        self.point.description = run.axis or "point"
        with_aliases = run.define_config is not None
        self.alias_subset.options = (
            [s for s in ("d1consis", "d2consis", "qd1consis", "qd2incons", "q", "no_qd_baseline") if s in present] if with_aliases else []
        )
        self.alias_subset.value = self.alias_subset.options[0] if self.alias_subset.options else None
        self.alias_seed.options = seeds if with_aliases else []
        self.alias_seed.value = seeds[0] if with_aliases and seeds else None
        self._busy = False
        self._draw()
        self._fill_aliases()

    def _draw(self) -> None:
        if self._busy:
            return
        run = self.current
        args = dict(seeds=self.seeds.value, point=self.point.value if run.axis else None)
        self.chart_out.clear_output(wait=True)
        self.gap_out.clear_output(wait=True)
        with self.chart_out:
            try:
                self.chart = curve_chart(run, self.subsets.value, stage=self.stage.value, **args)
                absent = [x for x in self.subsets.value if x not in present_subsets(run, stage=self.stage.value, **args)]
                if absent:
                    print(f"not evaluated in stage {self.stage.value}: {', '.join(absent)}")
                display(self.chart)
            except ValueError as exc:  # no chosen subset has values in the chosen stage
                self.chart = None
                print(f"nothing to draw: {exc}")
        with self.gap_out:
            display(gap_table(run, **args))

    def _fill_aliases(self) -> None:
        if self._busy:
            return
        if self.alias_subset.value is None or self.alias_seed.value is None:
            self.alias.options = []
        else:
            self.alias.options = aliases_of(self.current, self.alias_seed.value, self.alias_subset.value)[:50]
        self.alias.value = self.alias.options[0] if self.alias.options else None
        self._show_alias()

    def _show_alias(self) -> None:
        self.alias_out.clear_output(wait=True)
        with self.alias_out:
            if self.alias.value:
                with pd.option_context("display.max_colwidth", None):  # whole texts, not "Q: What was the ..."
                    display(alias_view(self.current, self.alias_seed.value, self.alias.value))


@dataclasses.dataclass(frozen=True)
class TrySettings:
    """The try-it panel's fixed settings (checked once, like any config); its sliders choose the rest."""

    stage0_epochs: int = 4
    stage1_epochs: int = 3
    stage2_epochs: int = 3
    n_seeds: int = 2
    cache_dir: str = "outputs/.cache"

    def __post_init__(self):
        self.config(n_people=100, alpha=1.0, word_order="tve", model="pythia-tiny")  # every value checked, named on failure

    def config(self, **chosen):
        return build_config(
            **chosen,
            stage0_epochs=self.stage0_epochs,
            stage1_epochs=self.stage1_epochs,
            stage2_epochs=self.stage2_epochs,
            n_seeds=self.n_seeds,
            n_seeds_stage2=1,
            n_jobs=1,
            cache_dir=self.cache_dir,
        )


class TryIt:
    """A short main-experiment variant chosen with sliders, run in this kernel when the button is pressed (never in a batch run)."""

    def __init__(self, settings: TrySettings):
        self.settings = settings
        self.n_people = w.IntSlider(value=200, min=50, max=1000, step=50, description="people")
        self.alpha = w.FloatSlider(value=1.0, min=0.5, max=1.0, step=0.05, description="α")
        self.word_order = w.Dropdown(options=["tve", "tev", "vte", "vet", "etv", "evt"], value="tve", description="word order")
        self.model = w.Dropdown(options=["pythia-tiny", "pythia-small", "pythia-base"], value="pythia-tiny", description="model")
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.out = w.Output()
        self.metrics = None
        self.button.on_click(lambda _: self.run())
        epochs = f"Stage 0/1/2: {settings.stage0_epochs}/{settings.stage1_epochs}/{settings.stage2_epochs} epochs, {settings.n_seeds} seeds"
        self.widget = w.VBox(
            [
                w.HTML(f"<b>Try it</b>: a short main experiment ({epochs}), run here when you press Run"),
                w.HBox([self.n_people, self.alpha]),
                w.HBox([self.word_order, self.model]),
                self.button,
                self.out,
            ]
        )

    def run(self) -> pd.DataFrame | None:
        from iml_nb.people_qa.experiment import run_experiment

        self.out.clear_output()
        with self.out:
            try:
                cfg = self.settings.config(
                    n_people=self.n_people.value, alpha=round(self.alpha.value, 2), word_order=self.word_order.value, model=self.model.value
                )
            except ValueError as exc:
                print(f"not run: {exc}")
                return None
            self.button.disabled = True
            try:
                self.metrics, _ = run_experiment(cfg)  # tqdm.auto: a progress bar in this output
            finally:
                self.button.disabled = False
            display(
                plots.em_curves(
                    self.metrics, title=f"Try it: {cfg.data.n_people} people, α {cfg.data.alpha}, {cfg.data.word_order}, {cfg.model.name}"
                )
            )
            display(pd.DataFrame([{"gap": "IML gap, QA", "value": stats.format_ci(stats.gap(self.metrics, "d1consis", "d2consis"))}]))
        return self.metrics


def finalize(run_dir: str | Path, runs: pd.DataFrame, explorer: Explorer) -> None:
    """The explorer's run folder: the index of runs it found (runs.csv) and what it showed first (summary.json)."""
    atomic_write_text(Path(run_dir) / "runs.csv", runs.to_csv(index=False))
    shown = {"runs_found": len(runs), "shown": explorer.run_box.value, "gaps": gap_table(explorer.current).to_dict("records")}
    finalize_run(run_dir, {"outputs": sorted(set(runs["notebook"]))}, pd.DataFrame(columns=METRIC_COLUMNS), shown)


__all__ = [
    "Explorer",
    "StoredRun",
    "TryIt",
    "TrySettings",
    "alias_view",
    "aliases_of",
    "curve_chart",
    "finalize",
    "gap_table",
    "list_runs",
    "load_run",
    "pick_run",
    "present_subsets",
    "select",
]
