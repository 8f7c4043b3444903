"""The across-worlds reading of stored runs, on constructed run folders with known answers."""

import json

import pandas as pd
import pytest

from iml_nb.analysis import worlds


def _run(tmp_path, name, people_seed, names, gaps, help_qa=0.05):
    """A run folder whose Stage-1 seed i names Define-dot persons names[i] of the time and has Stage-2 QA gap gaps[i]."""
    rows = []
    for seed, (x, g) in enumerate(zip(names, gaps)):
        cells = [
            (1, 15, "ent_assoc_qd1consis", x),
            (1, 15, "qd1consis", 0.5 + help_qa),
            (1, 15, "q", 0.5),
            (1, 14, "ent_assoc_qd1consis", 0.0),  # an earlier epoch, never read
            (2, 10, "d1consis", 0.2 + g),
            (2, 10, "d2consis", 0.2),
        ]
        rows += [
            {"seed": seed, "seed_stage2": None, "stage": s, "epoch": e, "subset": k, "metric": "em", "value": v} for s, e, k, v in cells
        ]
    d = tmp_path / name
    d.mkdir()
    pd.DataFrame(rows).to_csv(d / "metrics.csv", index=False)
    config = {"model": {"name": "pythia-small"}, "data": {"people_seed": people_seed}, "run": {"stage0_seed": people_seed}}
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
