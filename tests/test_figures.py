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
