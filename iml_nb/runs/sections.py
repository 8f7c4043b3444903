"""12_generality's plan: the paper's further claims (an unseen third tag, other stage plans, definitions in context, the amount of
data), each a sweep of the main experiment over one axis with its own resumable batch, all checked before any run, into one run
folder whose summary holds every section's gap table."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

import pandas as pd

from iml_nb.analysis.stats import IML_GAPS, Gap
from iml_nb.core.parameters import require
from iml_nb.runs.sweeps import Sweep, validate, with_overrides

NOTEBOOK = "12_generality"


@dataclass(frozen=True)
class Section:
    question: str  # the claim it tests, in words
    axis: str  # the main experiment's parameter it varies
    values: tuple
    fixed: MappingProxyType  # main-experiment parameters it sets beyond the notebook's shared ones
    reading: str  # which numbers answer the question
    gaps: tuple = ()  # differences it reads beside the IML gaps (QA and entity)
    log_x: bool = False  # its figure's axis on a log scale


SECTIONS = MappingProxyType(
    {
        "unseen_tag": Section(
            "Is a third tag, never seen in Stage 1 (D8, d3consis), internalized like the reliable one or like the unreliable one?",
            "frac_d3consis",
            (0.08,),
            # the paper's split of the Stage-2 pool with a third tag (d1/d2/d3 .08 each, never-defined .06)
            MappingProxyType({"frac_d1consis": 0.08, "frac_d2consis": 0.08, "frac_no_qd_baseline": 0.06}),
            "d3consis − d2consis and d3consis − d1consis (QA, end of Stage 2)",
            (
                Gap("unseen − unreliable", "d3consis", "d2consis", None, "D8 − D6, QA", ""),
                Gap("unseen − reliable", "d3consis", "d1consis", None, "D8 − D5, QA", ""),
            ),
        ),
        "stage_plan": Section(
            "Does IML appear when everything is trained at once (one stage), and when Stage 1 is split into definitions then QA "
            "(three stages)?",
            "stage_plan",
            ("one_stage", "two_stage", "three_stage"),
            MappingProxyType({}),
            "d1consis − d2consis at the end of each plan's last stage (epochs: 01's stage1/2/3_epochs, 15 + 10 + 10 by default)",
        ),
        "in_context": Section(
            "Given in the prompt instead of trained, are Define-dot definitions used more than Define-bar ones?",
            "definitions",
            ("trained", "in_context"),
            MappingProxyType({"stage_plan": "one_stage"}),
            "d1consis − d2consis with definitions in context, beside trained; d1consis against real-name QA",
            (Gap("reliable − real name", "d1consis", "q_no_replacement_baseline", None, "D5 − QA4, QA", ""),),
        ),
        "data_amount": Section(
            "Does the IML gap grow with the amount of data (people, hence aliases)?",
            "n_people",
            (250, 500, 1000, 2000),
            MappingProxyType({}),
            "the per-seed QA gap's slope per log2 people",
            log_x=True,
        ),
    }
)


@dataclass
class Sections:
    """The chosen sections as sweeps of 01_main_two_stage: `shared` parameters for all, each section's own on top."""

    names: list
    shared: dict  # the notebook's own parameters (a section's axis overrides its value there)
    overrides: dict  # further main-experiment parameters for every section (e.g. test-size epochs)
    batch_prefix: str  # each section's batch: outputs/batches/<batch_prefix>_<section>/, reused to resume
    output_dir: str = ""
    jobs: int = 1
    backend: str = "local"
    slurm_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from iml_nb.core import results

        require(
            isinstance(self.names, list) and len(self.names) > 0 and all(n in SECTIONS for n in self.names),
            "sections",
            f"must be a non-empty list of {list(SECTIONS)}, got {self.names!r}",
        )
        require(len(set(self.names)) == len(self.names), "sections", f"names a section twice: {self.names!r}")
        shared = with_overrides(self.shared, self.overrides)
        for n in self.names:
            taken = (set(SECTIONS[n].fixed) | {SECTIONS[n].axis}) & set(self.overrides)
            require(not taken, "overrides", f"sets {sorted(taken)}, which section {n!r} sets itself")
        fixed = {n: {k: v for k, v in {**shared, **SECTIONS[n].fixed}.items() if k != SECTIONS[n].axis} for n in self.names}
        for n in self.names:  # every grid point of every section built and checked before the run folder exists
            validate(fixed[n], SECTIONS[n].axis, list(SECTIONS[n].values))
        self.run_dir = results.run_dir_for(self.output_dir, NOTEBOOK)
        self.sweeps = {
            n: Sweep(
                NOTEBOOK,
                SECTIONS[n].axis,
                list(SECTIONS[n].values),
                fixed[n],
                f"{self.batch_prefix}_{n}",
                str(self.run_dir),
                self.jobs,
                self.backend,
                self.slurm_options,
            )
            for n in self.names
        }

    def describe(self) -> str:
        return "\n".join(f"{n} (reads {SECTIONS[n].reading}): {s.describe()}" for n, s in self.sweeps.items())

    def run(self) -> dict[str, pd.DataFrame]:
        """Every section's batch in turn (complete runs are skipped): {section: its status table}."""
        return {n: s.run() for n, s in self.sweeps.items()}

    def collect(self, tables: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
        """(every complete run's metrics with `section` and the section's axis as columns, {section: its gap table})."""
        metrics, gaps = [], {}
        for n, s in self.sweeps.items():
            m, gaps[n] = s.collect(tables[n], IML_GAPS + SECTIONS[n].gaps)
            metrics.append(m.assign(section=n))
        return pd.concat(metrics, ignore_index=True), gaps

    def write(self, tables: dict[str, pd.DataFrame], metrics: pd.DataFrame, gaps: dict[str, pd.DataFrame]) -> dict:
        """Config and metrics into the run folder; returns the summary for results.mark_complete (the notebook's last cell)."""
        from iml_nb.core import results

        config = {
            "sections": {
                n: {"axis": s.axis, "values": s.values, "fixed": s.fixed, "batch_name": s.batch_name} for n, s in self.sweeps.items()
            }
        }
        results.write_run(self.run_dir, config, metrics)
        return {
            "sections": {
                n: {
                    "question": SECTIONS[n].question,
                    "reading": SECTIONS[n].reading,
                    "axis": s.axis,
                    "values": s.values,
                    "gaps": gaps[n].to_dict("records"),
                    "batch": tables[n].attrs["batch_json"],
                }
                for n, s in self.sweeps.items()
            }
        }
