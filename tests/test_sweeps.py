"""Sweep aggregation: per-grid-point IML gaps from a batch's run folders."""

import json

import pandas as pd
import pytest

from iml_nb.core import results
from iml_nb.runs import sweeps


def _metrics(gap: float, seeds=(0, 1, 2)) -> pd.DataFrame:
    rows = []
    for s in seeds:
        for subset, value in (("d1consis", 0.2 + gap + 0.01 * s), ("d2consis", 0.2 + 0.01 * s)):
            rows.append(dict(seed=s, seed_stage2=0, stage=2, epoch=3, subset=subset, metric="em", value=value))
    frame = pd.DataFrame(rows)
    frame[["seed", "seed_stage2"]] = frame[["seed", "seed_stage2"]].astype("Int64")
    return frame


def test_collect_and_gap_table(tmp_path):
    runs = []
    for alpha, gap in ((0.5, 0.0), (1.0, 0.05)):
        folder = tmp_path / f"alpha={alpha}"
        results.finalize_run(folder, {"alpha": alpha}, _metrics(gap), {"ok": True})
        runs.append({"folder": folder.name, "params": {"alpha": alpha}, "status": "complete"})
    (tmp_path / "alpha=0.7").mkdir()  # a killed run: no summary.json, left out
    runs.append({"folder": "alpha=0.7", "params": {"alpha": 0.7}, "status": "pending"})
    (tmp_path / "batch.json").write_text(json.dumps({"runs": runs}))
    metrics = sweeps.collect(tmp_path / "batch.json")
    assert sorted(metrics["alpha"].unique()) == [0.5, 1.0]
    table = sweeps.gap_table(metrics, "alpha").set_index("alpha")
    assert table.loc[0.5, "mean"] == pytest.approx(0.0) and table.loc[1.0, "mean"] == pytest.approx(0.05)
    assert (table["n_seeds"] == 3).all() and set(table["gap"]) == {"qa"}  # no entity subsets in these frames


def test_validate_fails_before_any_run():
    with pytest.raises(ValueError, match="`alpha`"):
        sweeps.validate({"n_people": 200}, "alpha", [0.5, 1.5])
    with pytest.raises(ValueError, match="non-empty list"):
        sweeps.validate({}, "alpha", [])


def test_overrides_reach_every_point_and_may_not_set_the_notebooks_own_parameters(tmp_path):
    own = {"n_seeds": 2, "n_people": 200, "model": "pythia-tiny"}
    sweep = sweeps.Sweep("03_word_order", "word_order", ["tve", "vte"], own, "b", str(tmp_path / "run"), overrides={"loss_on": "all"})
    assert sweep.fixed == {**own, "loss_on": "all"} and "loss_on" in sweep.describe()
    for overrides, match in (
        ({"n_seeds": 8}, "`overrides`.*own parameters"),
        ({"word_order": "vte"}, "`overrides`.*own"),
        ({"loss_on": "every"}, "`loss_on`"),
        ({"n_epochs": 3}, "n_epochs"),
        (["loss_on"], "`overrides`.*mapping"),
    ):
        with pytest.raises(ValueError, match=match):
            sweeps.Sweep("03_word_order", "word_order", ["tve"], own, "b", str(tmp_path / "bad"), overrides=overrides)
    assert not (tmp_path / "bad").exists()  # failed before the run folder


def test_verdict_reads_the_ci():
    assert sweeps.verdict(0.01, 0.2) == "IML"
    assert sweeps.verdict(-0.2, -0.01) == "reversed"
    assert sweeps.verdict(-0.1, 0.1) == "n.s." and sweeps.verdict(float("nan"), float("nan")) == "n.s."


def test_gap_table_reports_memorisation_beside_each_gap():
    metrics = _metrics(0.05)
    memorised = metrics[metrics["subset"] == "d1consis"].assign(subset="train_defs_d1consis", value=0.9)
    both = pd.concat([metrics, memorised, memorised.assign(subset="train_defs_d2consis", value=0.7)], ignore_index=True)
    row = sweeps.gap_table(both.assign(alpha=1.0), "alpha").iloc[0]
    assert row["memorised_reliable"] == pytest.approx(0.9) and row["memorised_unreliable"] == pytest.approx(0.7)
    plain = sweeps.gap_table(metrics.assign(alpha=1.0), "alpha").iloc[0]  # definitions in context: nothing memorised to show
    assert plain["memorised_reliable"] != plain["memorised_reliable"]


def test_gap_read_where_both_tags_definitions_are_first_memorised():
    rows = []
    for seed in range(3):
        for epoch, (m1, m2, gap) in {5: (0.9, 0.6, 0.10), 10: (0.97, 0.96, 0.04), 15: (1.0, 1.0, 0.02)}.items():
            for subset, v in (
                ("train_defs_d1consis", m1),
                ("train_defs_d2consis", m2),
                ("d1consis", 0.2 + gap + 0.01 * seed),
                ("d2consis", 0.2),
            ):
                rows.append(dict(seed=seed, seed_stage2=0, stage=1, epoch=epoch, subset=subset, metric="em", value=v))
    frame = pd.DataFrame(rows).astype({"seed": "Int64", "seed_stage2": "Int64"})
    fast = frame.assign(batch_size=16)
    slow = frame[~((frame["epoch"] == 10) & (frame["subset"] == "train_defs_d2consis"))].assign(batch_size=256)  # never at 10
    slow = pd.concat([slow, frame[(frame["epoch"] == 10) & (frame["subset"] == "train_defs_d2consis")].assign(value=0.8, batch_size=256)])
    both = pd.concat([fast, slow], ignore_index=True)
    end = sweeps.gap_table(both, "batch_size").set_index("batch_size")
    assert (end["epoch"] == 15).all() and end.loc[16, "mean"] == pytest.approx(0.03)
    at = sweeps.gap_table(both, "batch_size", at="memorised").set_index("batch_size")
    assert at.loc[16, "epoch"] == 10 and at.loc[16, "mean"] == pytest.approx(0.05) and at.loc[256, "epoch"] == 15
    never = both[both["batch_size"] == 16].assign(value=lambda f: f["value"].where(~f["subset"].str.startswith("train_defs"), 0.5))
    assert sweeps.gap_table(never, "batch_size", at="memorised").empty
    with pytest.raises(ValueError, match="`at`"):
        sweeps.gap_table(both, "batch_size", at="converged")
