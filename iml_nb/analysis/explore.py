"""The JupyterLab explorer (notebook 00_explore): widgets over the run folders already in outputs/ — curves per subset,
the IML gap with its CI, the training texts and model answers of one alias — and a small "try it" panel that runs a short
main-experiment variant. The results panel only reads stored files; the try-it button is the one thing that computes.
"""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from pathlib import Path

import ipywidgets as w
import pandas as pd
from IPython.display import display

from iml_nb.analysis import plots, stats
from iml_nb.analysis.stats import METRIC_COLUMNS
from iml_nb.core.env import project_path
from iml_nb.core.results import atomic_write_text, finalize_run, is_complete, read_metrics
from iml_nb.people_qa.config import build_config, from_dict

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
    from iml_nb.people_qa.experiment import load_people

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
    from iml_nb.people_qa.experiment import load_people

    cfg = run.define_config
    if cfg is None:
        return []
    data = make_define_data(load_people(cfg), cfg.data, seed, 0)
    return [data.alias_of[e] for e in data.subsets.get(subset, ())]


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
