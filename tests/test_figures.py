"""Each figure is defined once (iml_nb.analysis.figures) and redrawn from a run folder's stored files: redrawing a committed
curated run gives the figure its notebook saved (up to the renderer's clip-path numbering)."""

import re
import shutil

import pytest

from iml_nb.analysis import figures
from iml_nb.analysis.report import latest_complete_run
from iml_nb.core.env import project_path


def _normalised(svg: str) -> str:
    return re.sub(r"clip\d+", "clip", svg)


@pytest.mark.parametrize("notebook", sorted(figures.FIGURES))
@pytest.mark.slow
def test_redrawn_figures_equal_the_committed_ones(notebook, tmp_path):
    run = latest_complete_run(notebook, project_path("outputs"))
    if run is None:
        pytest.skip(f"no committed run of {notebook}")
    copy = tmp_path / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("*.svg", "*.ipynb"))
    for figure in figures.FIGURES[notebook]:
        figure.redraw(copy)
        assert _normalised((copy / figure.file).read_text()) == _normalised((run / figure.file).read_text()), figure.file


def test_a_sweep_figure_shows_the_reading_at_memorisation_beside_the_end_where_the_run_has_one():
    import altair as alt
    import pandas as pd

    gaps = pd.DataFrame({"batch_size": [16, 64], "gap": "qa", "mean": [0.04, 0.01], "ci_low": [0.0, -0.01], "ci_high": [0.08, 0.03]})
    both = figures.BATCH_SIZE.draw(gaps, memorised=gaps.assign(mean=[0.05, None]))
    assert isinstance(both, alt.HConcatChart) and len(both.hconcat) == 2
    assert len(both.hconcat[1].layer[1].data) == 1  # the batch size never memorised is left out, not drawn at zero
    for nothing in (None, pd.DataFrame(), gaps.assign(mean=None)):
        assert isinstance(figures.BATCH_SIZE.draw(gaps, memorised=nothing), alt.LayerChart)


def test_natural_language_tags_get_their_pair_figure_once_both_orientations_ran(tmp_path):
    """The figure beside the natural-language rows: each arm's gap, the half sum and half difference, on QA and the entity
    question, drawn into the as-named arm's folder by `figures` once its swapped arm exists (same config but the tags)."""
    import math

    from iml_nb.analysis import stats
    from iml_nb.core import results
    from iml_nb.core.results import metric_rows, metrics_frame

    def arm(run_id, tags, gaps, entity, n_people=400):
        ems = [
            {"d1consis": {"em": 0.3 + g}, "d2consis": {"em": 0.3}, "ent_assoc_d1consis": {"em": 0.1 + e}, "ent_assoc_d2consis": {"em": 0.1}}
            for g, e in zip(gaps, entity)
        ]
        rows = [r for seed, em in enumerate(ems) for r in metric_rows(em, seed, 0, 2, 10)]
        folder = tmp_path / "11_pretrained" / run_id
        results.finalize_run(
            folder,
            {"data": {"tags": tags, "n_people": n_people}, "run": {"n_seeds": len(gaps)}},
            metrics_frame(rows),
            {"iml_gap_qa": stats.mean_ci(gaps)},
        )
        return folder

    named = arm("a", "sources", [0.05, 0.07, 0.06, 0.08], [0.1, 0.0, 0.1, 0.0])
    with pytest.raises(FileNotFoundError, match="swapped arm"):
        figures.TAG_ORIENTATIONS.redraw(named)
    arm("b", "sources_swapped", [0.0, 0.0], [0.0, 0.0], n_people=200)
    assert not any(p.name == figures.TAG_ORIENTATIONS.file for p in figures.redraw_all(tmp_path))  # not a partner: another world
    arm("c", "sources_swapped", [-0.03, -0.05, -0.02, -0.04], [0.1, 0.1, 0.0, 0.0])
    assert named / figures.TAG_ORIENTATIONS.file in figures.redraw_all(tmp_path)
    (table,) = figures._orientation_runs(named)
    at = table.set_index(["gap", "reading"])["mean"]
    assert math.isclose(at["QA", "IML (half sum)"], 0.015) and math.isclose(at["QA", "words' prior (half difference)"], 0.05)
    assert math.isclose(at["entity", "IML (half sum)"], 0.05) and math.isclose(
        at["entity", "words' prior (half difference)"], 0.0, abs_tol=1e-12
    )
    from iml_nb.analysis.claims import swapped_arm

    fewer = arm("d", "sources_swapped", [-0.03, -0.05], [0.1, 0.1])  # a partner with fewer seeds pairs on those both ran
    assert swapped_arm(named) == fewer and set(figures._orientation_runs(named)[0]["n_seeds"]) == {2}
    assert "paired over the 2 Stage-1 seeds" in " ".join(figures.TAG_ORIENTATIONS.redraw(named).to_dict()["title"])
