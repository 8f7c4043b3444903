"""The across-worlds reading of stored runs, on constructed run folders with known answers."""

import json

import pandas as pd
import pytest

from iml_nb.analysis import worlds


def _run(tmp_path, name, people_seed, names, gaps, help_qa=0.05, stage0_seed=None):
    """A run folder whose Stage-1 seed i names Define-dot persons names[i] of the time and has Stage-2 QA gap gaps[i]; Define-dot
    definitions memorised 0.98, Define-bar 0.96."""
    rows = []
    for seed, (x, g) in enumerate(zip(names, gaps)):
        cells = [
            (1, 15, "ent_assoc_qd1consis", x),
            (1, 15, "qd1consis", 0.5 + help_qa),
            (1, 15, "q", 0.5),
            (1, 14, "ent_assoc_qd1consis", 0.0),  # an earlier epoch, never read
            (2, 10, "d1consis", 0.2 + g),
            (2, 10, "d2consis", 0.2),
            (2, 10, "train_defs_d1consis", 0.98),
            (2, 10, "train_defs_d2consis", 0.96),
            (2, 9, "train_defs_d2consis", 0.5),  # an earlier epoch, never read
        ]
        rows += [
            {"seed": seed, "seed_stage2": None, "stage": s, "epoch": e, "subset": k, "metric": "em", "value": v} for s, e, k, v in cells
        ]
    d = tmp_path / name
    d.mkdir()
    pd.DataFrame(rows).to_csv(d / "metrics.csv", index=False)
    config = {
        "model": {"name": "pythia-small"},
        "data": {"people_seed": people_seed},
        "run": {"stage0_seed": people_seed if stage0_seed is None else stage0_seed},
    }
    (d / "config.json").write_text(json.dumps(config))
    return d


def test_table_reads_the_end_of_each_stage(tmp_path):
    d = _run(tmp_path, "w1", 7, [0.1, 0.3], [0.02, 0.04], help_qa=0.05)
    row = worlds.stage1_vs_gap([d]).iloc[0]
    assert row["people_seed"] == 7 and row["n_seeds"] == 2
    assert row["names_reliable_alias"] == pytest.approx(0.2)
    assert row["reliable_definitions_help_qa"] == pytest.approx(0.05)
    assert row["iml_gap"] == pytest.approx(0.03)
    assert row["iml_gap_ci_low"] < 0.03 < row["iml_gap_ci_high"]
    assert (row["defs_memorised_d1"], row["defs_memorised_d2"]) == pytest.approx((0.98, 0.96))


def test_across_worlds_and_within_worlds_are_told_apart(tmp_path):
    # Worlds whose mean reading orders their mean gap, while within each world the seeds run the other way.
    runs = [
        _run(tmp_path, f"w{i}", i, [base + 0.02, base - 0.02], [gap - 0.01, gap + 0.01])
        for i, (base, gap) in enumerate([(0.05, 0.0), (0.1, 0.03), (0.2, 0.05), (0.3, 0.09)])
    ]
    c = worlds.correlations(runs)
    assert c["n_worlds"] == 4 and c["n_seeds"] == 8
    assert c["across_worlds_spearman"] == pytest.approx(1.0)
    assert c["within_worlds_pearson"] == pytest.approx(-1.0)


def test_a_run_without_the_reading_is_refused(tmp_path):
    d = _run(tmp_path, "w1", 1, [0.1, 0.2], [0.0, 0.0])
    m = pd.read_csv(d / "metrics.csv")
    m[m["subset"] != "ent_assoc_qd1consis"].to_csv(d / "metrics.csv", index=False)
    with pytest.raises(ValueError, match="ent_assoc_qd1consis"):
        worlds.stage1_vs_gap([d])


def test_an_unknown_reading_is_named(tmp_path):
    d = _run(tmp_path, "w1", 1, [0.1, 0.2], [0.0, 0.0])
    with pytest.raises(ValueError, match="reading"):
        worlds.correlations([d], reading="names")


def _worlds(tmp_path, prefix, points, crossed=False):
    """One run per (reading, gap) point, two seeds each at +-0.01 around it; crossed: people x Stage-0 seeds on a 3 x 3 grid."""
    runs = []
    for i, (x, g) in enumerate(points):
        people, stage0 = (100 + i // 3, 200 + i % 3) if crossed else (100 + i, 100 + i)
        runs.append(_run(tmp_path, f"{prefix}{i}", people, [x - 0.01, x + 0.01], [g - 0.01, g + 0.01], stage0_seed=stage0))
    return runs


def test_fresh_worlds_on_the_known_line_confirm_it(tmp_path):
    known = [
        _run(tmp_path, f"k{i}", i, [x - 0.01, x + 0.01], [0.02 + 0.3 * x - 0.004 * (-1) ** i, 0.02 + 0.3 * x])
        for i, x in enumerate([0.0, 0.1, 0.2, 0.3, 0.4])
    ]
    fresh = _worlds(tmp_path, "f", [(x, 0.02 + 0.3 * x) for x in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45)], crossed=True)
    out = worlds.fresh_worlds_test(known, fresh)
    assert out["verdict"] == "confirmed" and out["spearman"] == pytest.approx(1.0) and out["p_one_sided"] < 0.001
    assert out["fit"]["slope"] == pytest.approx(0.3, abs=0.02) and out["fit"]["n_worlds"] == 5
    assert out["inside_prediction_interval"] == 9 and len(out["worlds"]) == 9
    assert out["worlds"]["predicted"].iloc[0] == pytest.approx(0.035, abs=0.005)
    assert set(out["anova"]) == {"names_reliable_alias", "iml_gap"}
    assert out["band"]["pi_low"].lt(out["band"]["predicted"]).all() and len(out["known"]) == 5
    assert worlds.chart(out).to_dict()["layer"]  # the figure docs/results.md shows, from the same result


def test_fresh_worlds_against_the_line_do_not_confirm_it_and_known_worlds_are_refused(tmp_path):
    known = _worlds(tmp_path, "k", [(0.0, 0.02), (0.1, 0.05), (0.2, 0.09), (0.3, 0.11)])
    fresh = [_run(tmp_path, f"f{i}", 300 + i, [x, x + 0.02], [0.1 - x, 0.12 - x]) for i, x in enumerate([0.0, 0.1, 0.2, 0.3])]
    out = worlds.fresh_worlds_test(known, fresh)
    assert out["verdict"] == "not confirmed" and out["spearman"] == pytest.approx(-1.0) and out["anova"] is None
    with pytest.raises(ValueError, match="fresh_runs"):
        worlds.fresh_worlds_test(known, known[:2])
