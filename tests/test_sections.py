"""12_generality's plan: every section's grid checked before any run folder exists; the report reads each section's claim."""

import json

import pandas as pd
import pytest
import yaml

from iml_nb.analysis import claims
from iml_nb.core.env import project_path
from iml_nb.core.parameters import ConfigError
from iml_nb.runs import sections

SHARED = {"n_seeds": 2, "n_people": 200, "model": "pythia-tiny", "stage0_epochs": 1, "n_jobs": 1}


@pytest.mark.slow
def test_every_section_builds_at_the_notebooks_defaults(tmp_path):
    plan = sections.Sections(list(sections.SECTIONS), {**SHARED, "n_seeds": 8, "n_people": 1000}, {}, "b", str(tmp_path / "run"))
    assert set(plan.sweeps) == set(sections.SECTIONS)
    assert plan.sweeps["data_amount"].values == [250, 500, 1000, 2000] and "n_people" not in plan.sweeps["data_amount"].fixed
    assert plan.sweeps["in_context"].fixed["stage_plan"] == "one_stage"
    assert all(s.run_dir == tmp_path / "run" for s in plan.sweeps.values())  # one run folder for every section


@pytest.mark.parametrize(
    ("names", "overrides", "match"),
    [
        (["stage_plan", "nope"], {}, "`sections`"),
        (["stage_plan", "stage_plan"], {}, "twice"),
        (["in_context"], {"stage_plan": "two_stage"}, "`overrides`.*in_context"),
        (["stage_plan"], {"n_seeds": 3}, "`overrides`.*own parameters"),
        (["stage_plan"], {"stage4_epochs": 3}, "stage4_epochs"),
        (["unseen_tag"], {"frac_qd1consis": 0.3}, "sum to 1"),
    ],
)
def test_bad_plans_fail_before_any_run_folder(tmp_path, names, overrides, match):
    with pytest.raises((ConfigError, ValueError), match=match):
        sections.Sections(names, SHARED, overrides, "b", str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def _gaps(axis, value, gap, mean, mem=(1.0, 1.0)):
    return dict(
        **{axis: value},
        gap=gap,
        mean=mean,
        ci_low=mean - 0.01,
        ci_high=mean + 0.01,
        n_seeds=8,
        memorised_reliable=mem[0],
        memorised_unreliable=mem[1],
    )


def test_the_sections_claims_read_their_own_section(tmp_path):
    summary = {
        "sections": {
            "unseen_tag": {
                "axis": "frac_d3consis",
                "gaps": [
                    _gaps("frac_d3consis", 0.08, "qa", 0.05),
                    _gaps("frac_d3consis", 0.08, "unseen − unreliable", 0.04),
                    _gaps("frac_d3consis", 0.08, "unseen − reliable", 0.0),
                ],
            },
            "in_context": {
                "axis": "definitions",
                "gaps": [
                    _gaps("definitions", "in_context", "qa", 0.3, (float("nan"),) * 2),
                    _gaps("definitions", "in_context", "reliable − real name", -0.02),
                    _gaps("definitions", "trained", "qa", 0.05),
                ],
            },
        }
    }
    registered = yaml.safe_load(project_path("params/12_generality_confirm.yaml").read_text())
    confirmed, explored, other = (tmp_path / "12_generality" / r for r in ("confirm-1", "20261203-120000-abcd", "confirm-2"))
    for run, params in ((confirmed, registered), (explored, registered), (other, {**registered, "n_seeds": 2})):
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps(summary))
        papermill = {"parameters": {**params, "output_dir": str(run)}}
        (run / "12_generality.ipynb").write_text(json.dumps({"cells": [], "metadata": {"papermill": papermill}}))
    by = {c.section: c for c in claims.CLAIMS if c.section}
    unseen = by["unseen_tag"].judge(summary, confirmed)
    assert [t.predicts for t in unseen.tests] == ["positive", "none"] and unseen.combine(["agrees", "agrees"]) == "agrees"
    assert unseen.combine(["agrees", "inconclusive"]) == "inconclusive"
    context = by["in_context"].judge(summary, confirmed)
    assert context.tests[0].estimate == pytest.approx(0.3) and "trained (one stage): +0.050" in context.value
    # the rows read the pre-registered run (params/12_generality_confirm.yaml, exactly its parameters), only the sections it ran
    assert by["unseen_tag"].answers(confirmed) and not by["data_amount"].answers(confirmed)
    assert not by["unseen_tag"].answers(explored) and not by["unseen_tag"].answers(other)
    assert by["unseen_tag"].command() == "python -m iml_nb run 12_generality -f params/12_generality_confirm.yaml --run-id confirm-1"


def test_the_pre_registered_gate_reads_a_gap_only_between_memorised_definitions(tmp_path):
    """A D8 whose definitions reached 0.90 (< 0.95): its tests stay in the family, its verdict is inconclusive whatever they say."""
    part = {
        "axis": "frac_d3consis",
        "gaps": [
            _gaps("frac_d3consis", 0.08, "unseen − unreliable", 0.04, (0.90, 0.99)),
            _gaps("frac_d3consis", 0.08, "unseen − reliable", 0.0, (0.90, 0.99)),
        ],
    }
    unseen = next(c for c in claims.CLAIMS if c.section == "unseen_tag").judge({"sections": {"unseen_tag": part}}, tmp_path)
    assert len(unseen.tests) == 2 and unseen.combine(["agrees", "agrees"]) == "inconclusive"
    assert "unequal learning" in unseen.value and "memorised ≥ 0.95" in unseen.rule
    plan = {"axis": "stage_plan", "gaps": [_gaps("stage_plan", "one_stage", "qa", 0.05, (0.97, 0.96))]}
    one = next(c for c in claims.CLAIMS if "Single-stage" in c.claim).judge({"sections": {"stage_plan": plan}}, tmp_path)
    assert one.combine is None and "unequal" not in one.value  # learned: the one test's verdict stands


@pytest.mark.slow
def test_data_amount_trend_reads_only_its_sections_rows(tmp_path):
    rows = []
    for section, axis, values in (("data_amount", "n_people", (250, 500, 1000)), ("stage_plan", "stage_plan", ("one_stage",))):
        for value in values:
            for seed in range(3):
                gap = 0.01 * (values.index(value) + 1) + 0.002 * seed if section == "data_amount" else 0.5
                for subset, v in (("d1consis", 0.2 + gap), ("d2consis", 0.2)):
                    rows.append(
                        dict(
                            seed=seed,
                            seed_stage2=0,
                            stage=2,
                            epoch=1,
                            subset=subset,
                            metric="em",
                            value=v,
                            section=section,
                            **{axis: value},
                        )
                    )
    pd.DataFrame(rows).to_csv(tmp_path / "metrics.csv", index=False)
    judge = next(c for c in claims.CLAIMS if c.section == "data_amount").judge
    judged = judge({"sections": {"data_amount": {"axis": "n_people", "gaps": []}}}, tmp_path)
    assert judged.tests[0].predicts == "slope+" and judged.tests[0].estimate == pytest.approx(0.01, abs=1e-9)
