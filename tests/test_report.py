"""The paper-vs-ours report: rebuilt from run folders, verdicts read from CIs, 'not run' where outputs/ has nothing."""

import json

import pandas as pd
import pytest

from iml_nb.analysis import report
from iml_nb.core import results
from iml_nb.core.results import METRIC_COLUMNS
from iml_nb.people_qa.config import build_config

EMPTY = pd.DataFrame(columns=METRIC_COLUMNS)


def _gap(mean, half=0.02):
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n_seeds": 4}


JITTER = (-0.015, 0.015, -0.005, 0.005)  # per-seed deviations from a point's gap: mean 0, the same at every point


def _sweep(root, stem, axis, points, values=None):
    """A sweep's run folder: summary.json with each point's gap, and metrics.csv with per-seed d1consis/d2consis EM behind it."""
    from iml_nb.core.results import metric_rows, metrics_frame

    gaps = [{axis: v, "gap": "qa", **_gap(m)} for v, m in points]
    folder = root / stem / "20260101-000000-abcd"
    summary = {"axis": axis, "values": values or [v for v, _ in points], "gaps": gaps}
    frames = []
    for v, m in points:
        rows = [
            r
            for seed, j in enumerate(JITTER)
            for r in metric_rows({"d1consis": {"em": 0.3 + m + j}, "d2consis": {"em": 0.3}}, seed, 0, 2, 10)
        ]
        frames.append(metrics_frame(rows).assign(**{axis: v}))
    results.finalize_run(folder, {"fixed": {"n_seeds": 4, "n_people": 1000, "n_jobs": 2}}, pd.concat(frames), summary)
    return folder


@pytest.mark.slow
def test_report_reads_runs_and_judges_claims(tmp_path):
    main = tmp_path / "01_main_two_stage" / "20260101-000000-abcd"
    summary = {"iml_gap_qa": _gap(0.07), "iml_gap_entity": _gap(0.01, 0.05), "stage1_gap_qa": _gap(-0.05)}
    results.finalize_run(main, build_config().to_dict(), EMPTY, summary)
    nb = {"cells": [], "metadata": {"papermill": {"parameters": {"n_seeds": 2, "model": "pythia-tiny", "output_dir": "x"}}}}
    (main / "01_main_two_stage.ipynb").write_text(json.dumps(nb))
    (tmp_path / "01_main_two_stage" / "20270101-000000-ffff").mkdir()  # newer but killed: not complete, ignored
    _sweep(tmp_path, "02_alpha_sweep", "alpha", [(0.75, 0.03), (0.5, 0.0), (1.0, 0.07)])  # unsorted on purpose
    from iml_nb.setinc.data import PARAMETERS as SETINC

    setinc = tmp_path / "04_set_inclusion" / "20260101-000000-abcd"
    results.finalize_run(setinc, SETINC.build().to_dict(), EMPTY, {"stage1_gap_qa": _gap(0.05), "iml_gap_qa": _gap(0.0)})
    from iml_nb.vision.experiment import PARAMETERS as VISION

    mnist = tmp_path / "05_mnist" / "20260101-000000-abcd"
    results.finalize_run(mnist, VISION.build().to_dict(), EMPTY, {"stage1_gap_qa": _gap(0.4), "iml_gap_qa": _gap(0.15)})
    configs = {"configs": [build_config(word_order=o, loss_on="all", n_people=500).to_dict() for o in ("tve", "vte")]}
    results.finalize_run(
        tmp_path / "06_probing" / "20260101-000000-abcd",
        configs,
        EMPTY,
        {"vte/tag": {"after_alias_last_layer": _gap(0.9)}, "tve/tag": {"after_alias_last_layer": _gap(0.68)}},
    )
    configs = {"configs": [build_config(stage_plan="one_stage", batch_size=b).to_dict() for b in (16, 256)]}
    alignment = [
        {"batch_size": 256, "cos_gap": 0.0, "cos_gap_ci_low": -0.01, "cos_gap_ci_high": 0.01, "n_seeds": 4},
        {"batch_size": 16, "cos_gap": 0.02, "cos_gap_ci_low": 0.01, "cos_gap_ci_high": 0.03, "n_seeds": 4},
    ]
    results.finalize_run(tmp_path / "09_gradient_alignment" / "20260101-000000-abcd", configs, EMPTY, {"alignment": alignment})
    _sweep(tmp_path, "07_batch_size", "batch_size", [(16, 0.01), (64, 0.05)])  # grows with batch size: the paper says shrinks
    _sweep(
        tmp_path,
        "08_model_size",
        "model",
        [("pythia-base", 0.08), ("pythia-small", 0.05), ("pythia-tiny", 0.02)],
        values=["pythia-tiny", "pythia-small", "pythia-base"],
    )
    design = [
        {"arm": a, "people_seed": p, "stage0_seed": p + 1, "params": {"seed": 7000, "n_seeds": 4, "people_seed": p, "stage0_seed": p + 1}}
        for a in ("default", "untied")
        for p in (1, 3)
    ]
    table10 = [
        {"arm": "default", "outcome": "qa_gap", "n_worlds": 2, "verdict": "IML", **_gap(0.06)},
        {"arm": "untied", "outcome": "qa_gap", "n_worlds": 2, "verdict": "no effect", **_gap(0.0, 0.01)},
    ]
    results.finalize_run(
        tmp_path / "10_robustness" / "20260101-000000-abcd",
        {"design": design},
        EMPTY,
        {"table": table10, "memorised": [{"arm": "default", "unequal": False}, {"arm": "untied", "unequal": False}]},
    )
    table = report.build(tmp_path).set_index("claim")
    verdicts = [table.loc[c.claim, "verdict"] for c in report.CLAIMS]

    def claim(notebook, i=0):
        return [c.claim for c in report.CLAIMS if c.notebook == notebook][i]

    assert verdicts == [
        *["disagrees", "agrees", "inconclusive"],  # 01
        *["agrees", "agrees", "not run"],  # 02: α = 0.5, the trend, α = 0.95 (not among this sweep's values)
        *["not run"] * 2,  # 03: no run folder here (loss on the answer, explored; loss on all, pre-registered)
        *["agrees", "inconclusive"],  # 04
        *["agrees", "agrees"],  # 05
        *["agrees", "disagrees"],  # 06
        "agrees",  # 09
        *[
            "disagrees",
            "inconclusive",
            "not run",
            "not run",
        ],  # 07: matched epochs; at memorisation (none scored here); pre-registered; matched steps
        *["agrees", "inconclusive", "not run"],  # 08: at the end; read at memorisation (none scored here); pre-registered
        "agrees",  # 10
        *["not run"] * 5,  # 11: no run folder: random tags explored, pre-registered (QA; entity), source tags, is / isn't tags
        *["not run"] * 5,  # 12_generality's sections
    ]
    assert table.loc[claim("10_robustness"), "ours (95% CI)"].startswith("+0.060 [+0.040, +0.080] across 2 worlds; IML kept by default")
    assert table.loc[claim("10_robustness"), "seeds"] == "2 worlds × 4"
    # the α = 0.5 row agrees through the equivalence test (TOST ±0.03), not through a CI that contains zero
    assert table.loc[claim("02_alpha_sweep"), "rule"] == "TOST ±0.03" and table.attrs["family"] == 14
    assert table.loc[claim("02_alpha_sweep", 1), "ours (95% CI)"].startswith("slope per α +0.140 [")
    assert table.loc[claim("02_alpha_sweep", 2), "ours (95% CI)"] == "alpha = 0.95 not run"
    assert table.loc[claim("10_robustness"), "evidence"].startswith("confirmed")
    assert table.loc[claim("01_main_two_stage", 1), "evidence"].startswith("explored")
    assert table.loc[claim("06_probing", 1), "ours (95% CI)"] == "0.680 [0.660, 0.700] (chance 0.5)"
    assert table.loc[claim("06_probing"), "scale"] == "pythia-small, 500 people, epochs 30+15+10, orders tve/vte, loss on all"
    assert table.loc[claim("09_gradient_alignment"), "ours (95% CI)"].startswith("bs 16: +0.020 [+0.010, +0.030] (bs 16: +0.0200")
    assert table.loc[claim("04_set_inclusion"), "scale"] == "pythia-tiny, 1000 variables, resampled Qs, epochs 0+45+20, bs 64"
    assert table.loc[claim("05_mnist", 1), "scale"] == "convnet (cells), 400 variables, epochs 1+30+30, bs 64"
    row = table.loc[report.CLAIMS[1].claim]
    assert row["ours (95% CI)"] == "+0.070 [+0.050, +0.090]" and row["seeds"] == "6 × 1"
    assert row["command"] == "python -m iml_nb run 01_main_two_stage -p model pythia-tiny -p n_seeds 2"
    # a row not run yet that is explored with a parameters file names it
    assert (
        table.loc[claim("07_batch_size", 3), "command"] == "python -m iml_nb run 07_batch_size -f params/07_batch_size_matched_steps.yaml"
    )


def test_report_writes_markdown_and_html(tmp_path):
    md, html, table = report.write(tmp_path)
    assert (table["verdict"] == "not run").all()
    assert md.read_text().count("\n| ") == len(report.CLAIMS) + 1 and "<table" in html.read_text()


@pytest.mark.slow
def test_readme_table_is_generated_from_the_committed_run_folders(tmp_path):
    """The README's results table (and docs/usage.md's wall times) are what `report` builds from the run folders git tracks (not from
    local, uncommitted runs)."""
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    tracked = subprocess.run(["git", "ls-files", "outputs"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, tmp_path / name)
    table = report.build(tmp_path / "outputs")
    readme = (root / "README.md").read_text()
    assert report.README_START + "\n" + report.readme_block(table) + "\n" + report.README_END in readme, (
        "README's results table is stale: run `python -m iml_nb report` and commit README.md"
    )
    headline = report.headline(tmp_path / "outputs")
    assert report.HEADLINE_START + "\n" + headline + "\n" + report.HEADLINE_END in readme, "README's headline is stale (same fix)"
    from iml_nb.analysis import paper

    usage = (root / "docs" / "usage.md").read_text()
    times, total = paper.times_markdown(tmp_path / "outputs")
    assert paper.TIMES_START + "\n" + times + "\n" + paper.TIMES_END in usage, "docs/usage.md's wall-time table is stale (same fix)"
    assert paper.TOTAL_START + "\n" + total + "\n" + paper.TOTAL_END in readme, "README's make paper time is stale (same fix)"


def test_update_readme_replaces_only_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        f"intro\n{report.HEADLINE_START}\nSTALE\n{report.HEADLINE_END}\nmiddle\n{report.README_START}\nSTALE-ROW\n{report.README_END}\nrest\n"
    )
    table = report.build(tmp_path / "outputs")
    report.update_readme(table, readme, tmp_path / "outputs")
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{report.README_END}\nrest\n") and "STALE" not in text
    assert "no complete run" in text  # the headline of an empty outputs/
    assert text.count("\n| ") == len(report.CLAIMS) + 1
    readme.write_text("no block\n")
    import pytest

    with pytest.raises(ValueError, match="block"):
        report.update_readme(table, readme)


def test_command_keeps_the_defaults_a_run_had_when_they_have_changed_since(tmp_path):
    """A run made at older defaults is reproduced by naming them: the command does not silently mean the new defaults."""
    cell = {
        "cell_type": "code",
        "metadata": {"tags": ["parameters"]},
        "source": 'n_seeds: int = 4  # x\nmodel: str = "pythia-small"  # y\n',
    }
    nb = {"cells": [cell], "metadata": {"papermill": {"parameters": {"lr": 0.002}}}}
    (tmp_path / "01_main_two_stage.ipynb").write_text(json.dumps(nb))
    assert report.command_of(tmp_path, "01_main_two_stage") == "python -m iml_nb run 01_main_two_stage -p n_seeds 4 -p lr 0.002"


def test_command_reads_the_injected_cell_of_a_copy_stripped_of_papermills_metadata(tmp_path):
    """Committed run folders are stripped of papermill's metadata; the injected-parameters cell still holds the values."""
    injected = {
        "cell_type": "code",
        "metadata": {"tags": ["injected-parameters"]},
        "source": ["# Parameters\n", "n_people = 400\n", 'output_dir = "/somewhere/run"\n', "seed = 10\n"],
    }
    (tmp_path / "11_pretrained.ipynb").write_text(json.dumps({"cells": [injected], "metadata": {}}))
    assert report.command_of(tmp_path, "11_pretrained").endswith("run 11_pretrained -p n_people 400 -p seed 10")


def test_command_is_the_same_before_and_after_the_notebook_is_stripped(tmp_path):
    """nbformat writes papermill's metadata sorted, the injected cell in injection order: stripping must not reorder the command."""
    values = {"tags": "sources", "n_people": 400, "eval_every": 10}
    injected = {
        "cell_type": "code",
        "metadata": {"tags": ["injected-parameters"]},
        "source": [f"{k} = {v!r}\n" for k, v in values.items()],
    }
    commands = []
    for metadata in ({"papermill": {"parameters": dict(sorted(values.items()))}}, {}):
        (tmp_path / "11_pretrained.ipynb").write_text(json.dumps({"cells": [injected], "metadata": metadata}))
        commands.append(report.command_of(tmp_path, "11_pretrained"))
    assert commands[0] == commands[1]
    assert commands[0].endswith("run 11_pretrained -p eval_every 10 -p n_people 400 -p tags sources")
