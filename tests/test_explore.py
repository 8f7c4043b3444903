"""The explorer's pieces without a browser: which run folders it lists, the run it shows first, a widget change redraws the chart
from stored metrics, an alias's texts come from the stored config, and the try-it panel checks its settings and runs only when asked."""

import pandas as pd
import pytest

from iml_nb.analysis import explore, stored
from iml_nb.core import results
from iml_nb.core.parameters import ConfigError
from iml_nb.core.results import METRIC_COLUMNS
from iml_nb.people_qa.config import build_config

SUBSETS = ("qd1consis", "qd2incons", "d1consis", "d2consis")


def _metrics(offset: float = 0.0) -> pd.DataFrame:
    rows = []
    for seed in (0, 1):
        for stage, epochs in ((1, 2), (2, 2)):
            for epoch in range(1, epochs + 1):
                for i, subset in enumerate(SUBSETS):
                    if stage == 2 and subset.startswith("qd"):  # as in the main experiment: Stage-1 test sets end with Stage 1
                        continue
                    value = min(1.0, 0.1 * epoch + 0.05 * i + 0.01 * seed + offset * (subset == "d1consis"))
                    rows.append(dict(seed=seed, seed_stage2=0, stage=stage, epoch=epoch, subset=subset, metric="em", value=value))
    return pd.DataFrame(rows, columns=METRIC_COLUMNS).astype({"seed": "Int64", "seed_stage2": "Int64"})


@pytest.fixture
def outputs(tmp_path):
    cfg = build_config(n_people=60, n_seeds=2).to_dict()
    results.finalize_run(tmp_path / "01_main_two_stage" / "20260101-000000-aaaa", cfg, _metrics(), {})
    results.finalize_run(tmp_path / "01_main_two_stage" / "20260102-000000-bbbb", cfg, _metrics(0.2), {})
    sweep = pd.concat([_metrics().assign(alpha=0.5), _metrics(0.1).assign(alpha=1.0)], ignore_index=True)
    results.finalize_run(tmp_path / "02_alpha_sweep" / "20260103-000000-cccc", {"fixed": {}}, sweep, {})
    probe = pd.DataFrame(
        [dict(seed=0, seed_stage2=pd.NA, stage=1, epoch=2, subset="probe_tag@tve", metric="acc_l0_p0", value=0.5)], columns=METRIC_COLUMNS
    )
    results.finalize_run(tmp_path / "06_probing" / "20260104-000000-dddd", {"configs": []}, probe, {})  # no curves: not listed
    results.finalize_run(tmp_path / "nbval" / "01_main_two_stage", cfg, _metrics(), {})  # regression-test output: not listed
    (tmp_path / "01_main_two_stage" / "20270101-000000-eeee").mkdir()  # killed: incomplete, not listed
    return tmp_path


def test_lists_complete_runs_with_curves_newest_first(outputs):
    runs = stored.list_runs(str(outputs))
    assert list(runs["label"]) == [
        "02_alpha_sweep / 20260103-000000-cccc",
        "01_main_two_stage / 20260102-000000-bbbb",
        "01_main_two_stage / 20260101-000000-aaaa",
    ]
    assert list(runs["axis"]) == ["alpha", "", ""] and (runs["seeds"] == 2).all()


def test_first_run_and_a_bad_experiment_named(outputs):
    runs = stored.list_runs(str(outputs))
    assert stored.pick_run(runs, "") == "01_main_two_stage / 20260102-000000-bbbb"  # newest main-experiment run
    assert stored.pick_run(runs, "02_alpha_sweep") == "02_alpha_sweep / 20260103-000000-cccc"
    assert stored.pick_run(runs, "01_main_two_stage/20260101-000000-aaaa") == "01_main_two_stage / 20260101-000000-aaaa"
    with pytest.raises(ValueError, match="parameter `experiment`"):
        stored.pick_run(runs, "01_main")
    with pytest.raises(ValueError, match="no complete run folder"):
        stored.pick_run(runs.iloc[:0], "")


@pytest.mark.slow
def test_widget_changes_redraw_from_stored_metrics(outputs):
    runs = stored.list_runs(str(outputs))
    ui = explore.Explorer(runs, stored.pick_run(runs, ""))
    assert ui.chart is not None
    both = ui.chart.to_dict()["datasets"]
    ui.stage.value = 2
    only2 = ui.chart.to_dict()["datasets"]
    assert only2 != both
    stages = {row["stage"] for rows in only2.values() for row in rows if "stage" in row}
    assert stages == {2}
    gaps = stored.gap_table(ui.current).set_index("gap")["value"]
    assert gaps["D5 − D6, QA (IML gap)"].startswith("+0.150  95% CI [+0.150, +0.150]")  # stored: d1 = d2 - 0.05 + 0.2
    assert ui.alias_subset.value == "d1consis" and ui.alias_seed.value == 0 and ui.alias.value == ui.alias.options[0]
    ui.alias_subset.value = "d2consis"
    assert ui.alias.value in stored.aliases_of(ui.current, 0, "d2consis")
    assert stored.present_subsets(ui.current, stage=2) == ["d1consis", "d2consis"]
    with pytest.raises(ValueError, match="none of"):
        stored.curve_chart(ui.current, ["qd1consis"], stage=2)
    ui.seeds.value = (0,)
    assert "n=1" in stored.gap_table(ui.current, seeds=(0,)).iloc[0]["value"]
    ui.run_box.value = "02_alpha_sweep / 20260103-000000-cccc"  # a sweep: its point chooser appears, the last point first
    assert ui.point.layout.display == "" and ui.point.value == 1.0 and ui.point.description == "alpha"
    ui.point.value = 0.5
    assert ui.chart is not None and ui.alias_subset.options == ()  # a sweep's folder keeps no full config: no alias view


def test_alias_view_reads_the_stored_config(outputs):
    run = stored.load_run(str(outputs / "01_main_two_stage" / "20260101-000000-aaaa"))
    alias = stored.aliases_of(run, 0, "d1consis")[0]
    view = stored.alias_view(run, 0, alias)
    assert (view["where"] == "stage2").sum() == 1 and view.loc[view["where"] == "stage2", "kind"].item() == "definition"
    assert view["where"].str.startswith("test: d1consis").any() and view["text"].str.contains(alias, regex=False).all()


def test_try_it_checks_settings_and_waits_for_its_button():
    with pytest.raises(ConfigError, match="stage1_epochs"):
        explore.TrySettings(stage1_epochs=0)
    panel = explore.TryIt(explore.TrySettings())
    assert panel.metrics is None  # building the panel trains nothing
    assert [c.description for c in (panel.n_people, panel.alpha, panel.word_order, panel.model)] == ["people", "α", "word order", "model"]


@pytest.mark.slow
def test_try_it_runs_a_short_experiment(tmp_path):
    panel = explore.TryIt(explore.TrySettings(stage0_epochs=1, stage1_epochs=2, stage2_epochs=2, cache_dir=str(tmp_path)))
    panel.n_people.value = 50
    metrics = panel.run()
    assert set(metrics["stage"]) == {0, 1, 2} and {"d1consis", "d2consis"} <= set(metrics["subset"])
    assert set(metrics["seed"].dropna()) == {0, 1}
