"""Fast tests of iml_nb.analysis.stats: t intervals, per-seed aggregation, global epochs, gaps and the run summary."""

import json
import math

import pandas as pd
import pytest

from iml_nb.analysis import stats

T_975_DF2 = 4.302652729911275  # Student t 97.5% quantile, 2 degrees of freedom (printed tables: 4.303)


def frame(rows):
    """Tidy metrics frame from (seed, seed_stage2, stage, epoch, subset, value) tuples, metric em."""
    df = pd.DataFrame(rows, columns=["seed", "seed_stage2", "stage", "epoch", "subset", "value"])
    df.insert(5, "metric", "em")
    return df.astype({"seed": "Int64", "seed_stage2": "Int64", "value": float})


def two_stage(d1=(0.5, 0.6, 0.7), d2=(0.2, 0.3, 0.5), spread=0.1):
    """3 Stage-1 seeds x 2 Stage-2 seeds; stage 1 has 2 epochs, stage 2 has 3; stage-2 seeds differ by +-spread/2."""
    rows = [(pd.NA, pd.NA, 0, 1, "qd1consis", 0.0)]
    for seed in range(3):
        for epoch in (1, 2):
            rows += [(seed, pd.NA, 1, epoch, "qd1consis", 0.8), (seed, pd.NA, 1, epoch, "qd2incons", 0.4 + 0.1 * seed)]
        for s2, shift in ((0, -spread / 2), (1, spread / 2)):
            for epoch in (1, 2):
                rows += [(seed, s2, 1, epoch, "d1consis", 0.1), (seed, s2, 1, epoch, "d2consis", 0.1)]
            for epoch in (1, 2, 3):
                rows += [(seed, s2, 2, epoch, "d1consis", d1[seed] + shift), (seed, s2, 2, epoch, "d2consis", d2[seed] + shift)]
    return frame(rows)


def test_mean_ci_matches_hand_computation():
    out = stats.mean_ci([1.0, 2.0, 3.0])
    half = T_975_DF2 * 1.0 / math.sqrt(3)  # sd of 1,2,3 is 1
    assert out["mean"] == pytest.approx(2.0)
    assert out["sd"] == pytest.approx(1.0)
    assert out["ci_low"] == pytest.approx(2.0 - half)
    assert out["ci_high"] == pytest.approx(2.0 + half)
    assert out["n_seeds"] == 3


def test_mean_ci_narrower_at_lower_confidence():
    wide, narrow = stats.mean_ci([1, 2, 3], 0.95), stats.mean_ci([1, 2, 3], 0.5)
    assert wide["ci_low"] < narrow["ci_low"] < 2 < narrow["ci_high"] < wide["ci_high"]


def test_mean_ci_one_value_has_no_interval_and_none_is_an_error():
    one = stats.mean_ci([0.3])
    assert one["mean"] == 0.3 and one["n_seeds"] == 1
    assert math.isnan(one["ci_low"]) and math.isnan(one["ci_high"]) and math.isnan(one["sd"])
    with pytest.raises(ValueError):
        stats.mean_ci([])
    with pytest.raises(ValueError, match="NaN"):
        stats.mean_ci([0.1, float("nan")])


def test_per_seed_averages_stage2_seeds_and_passes_the_rest_through():
    df = two_stage()
    out = stats.per_seed(df)
    d1 = out[(out["subset"] == "d1consis") & (out["stage"] == 2) & (out["epoch"] == 3)].set_index("seed")
    assert d1["value"].to_dict() == pytest.approx({0: 0.5, 1: 0.6, 2: 0.7})  # the +-0.05 shifts cancel
    assert (d1["n_seed_stage2"] == 2).all()
    passed = out[out["subset"] == "qd2incons"]
    original = df[df["subset"] == "qd2incons"]
    assert len(passed) == len(original) and passed["n_seed_stage2"].isna().all()
    assert sorted(passed["value"]) == pytest.approx(sorted(original["value"]))
    assert "seed_stage2" not in out.columns


def test_per_seed_rejects_repeated_and_mixed_keys():
    df = two_stage()
    with pytest.raises(ValueError, match="repeated key"):
        stats.per_seed(pd.concat([df, df.iloc[[3]]]))
    mixed = pd.concat([df, frame([(0, pd.NA, 2, 1, "d1consis", 0.5)])])
    with pytest.raises(ValueError, match="with and without"):
        stats.per_seed(mixed)


def test_curves_count_stage1_seeds_not_stage2_runs():
    c = stats.curves(two_stage())
    d1_last = c[(c["subset"] == "d1consis") & (c["stage"] == 2) & (c["epoch"] == 3)].iloc[0]
    assert d1_last["n_seeds"] == 3  # 3 Stage-1 seeds, not the 6 pooled runs the reference counted
    assert d1_last["mean"] == pytest.approx(0.6)
    half = T_975_DF2 * 0.1 / math.sqrt(3)
    assert (d1_last["ci_low"], d1_last["ci_high"]) == pytest.approx((0.6 - half, 0.6 + half))


def test_curves_global_epoch_follows_stages():
    c = stats.curves(two_stage())
    by_stage = c.groupby("stage")["global_epoch"].agg(["min", "max"])
    assert by_stage.loc[0].tolist() == [0, 0]  # stage 0 (one eval) sits just before stage 1
    assert by_stage.loc[1].tolist() == [1, 2]
    assert by_stage.loc[2].tolist() == [3, 5]  # stage 2 follows stage 1's two epochs
    with pytest.raises(ValueError, match="metric"):
        stats.curves(two_stage(), metric="f1")


def test_gap_sign_and_ci_exclusion():
    df = two_stage()
    g = stats.gap(df, "d1consis", "d2consis")
    # per-seed differences 0.3, 0.3, 0.2
    assert g["mean"] == pytest.approx(0.8 / 3)
    assert g["ci_low"] > 0  # consistent across seeds: the interval excludes zero
    assert (g["a"], g["b"], g["stage"], g["epoch"], g["n_seeds"]) == ("d1consis", "d2consis", 2, 3, 3)
    flipped = stats.gap(df, "d2consis", "d1consis")
    assert flipped["mean"] == pytest.approx(-g["mean"])
    assert flipped["ci_high"] == pytest.approx(-g["ci_low"])


def test_gap_ci_includes_zero_when_seeds_disagree():
    g = stats.gap(two_stage(d1=(0.5, 0.3, 0.6), d2=(0.3, 0.5, 0.5)), "d1consis", "d2consis")
    assert g["ci_low"] < 0 < g["ci_high"]


def test_gap_at_an_explicit_stage_and_missing_subset():
    df = two_stage()
    g = stats.gap(df, "d1consis", "d2consis", stage=1)
    assert (g["stage"], g["epoch"], g["mean"]) == (1, 2, pytest.approx(0.0))
    with pytest.raises(ValueError, match="ent_assoc_d1consis"):
        stats.gap(df, "ent_assoc_d1consis", "d2consis")
    with pytest.raises(ValueError, match="stage 2"):
        stats.gap(df, "qd1consis", "qd2incons", stage=2)


def test_gap_rejects_a_seed_with_one_side_only():
    df = two_stage()
    drop = (df["seed"] == 2) & (df["subset"] == "d2consis") & (df["stage"] == 2)
    with pytest.raises(ValueError, match="not both"):
        stats.gap(df[~drop], "d1consis", "d2consis", stage=2, epoch=3)


def test_summary_keys_values_and_json():
    s = stats.summary(two_stage())
    assert {"iml_gap_qa", "iml_gap_entity", "stage1_gap_qa", "final_em"} <= set(s)
    assert s["iml_gap_qa"]["mean"] == pytest.approx(0.8 / 3)
    assert s["iml_gap_entity"] is None  # no ent_assoc subsets in this frame
    assert s["stage1_gap_qa"]["stage"] == 1 and s["stage1_gap_qa"]["mean"] == pytest.approx(0.3)
    assert s["final_em"]["qd1consis"]["stage"] == 1 and s["final_em"]["d1consis"]["stage"] == 2
    assert s["n_seeds"] == 3 and s["n_seeds_stage2"] == 2
    json.dumps(s, allow_nan=False)  # raises on NaN


def test_summary_of_one_seed_is_written_as_strict_json_with_null_intervals(tmp_path):
    from iml_nb.core.results import atomic_write_json

    one_seed = two_stage()
    one_seed = one_seed[one_seed["seed"].isna() | (one_seed["seed"] == 0)]
    s = stats.summary(one_seed)
    assert s["iml_gap_qa"]["n_seeds"] == 1 and math.isnan(s["iml_gap_qa"]["ci_low"])
    stored = json.loads(atomic_write_json(tmp_path / "summary.json", s).read_text())
    assert stored["iml_gap_qa"]["ci_low"] is None


def test_summary_table_is_rounded_and_one_row_per_subset_stage():
    t = stats.summary_table(two_stage())
    assert list(t.columns) == ["subset", "stage", "epoch", "EM mean", "95% CI low", "95% CI high", "n_seeds"]
    assert len(t) == len({(s, st) for s, st in zip(t["subset"], t["stage"])}) == 7  # stage 0 counts too
    row = t[(t["subset"] == "d1consis") & (t["stage"] == 2)].iloc[0]
    assert row["epoch"] == 3 and row["EM mean"] == 0.6
    assert row["95% CI low"] == round(0.6 - T_975_DF2 * 0.1 / math.sqrt(3), 3)


def test_gain_gap_subtracts_the_difference_before_the_last_stage():
    metrics = two_stage()  # after Stage 2, d1 - d2 per seed: .3, .3, .2; before (stage 1, epoch 2): 0, 0, 0
    head_start = (metrics["seed"] == 0) & (metrics["stage"] == 1) & (metrics["subset"] == "d1consis")
    metrics.loc[head_start, "value"] += 0.1  # seed 0 starts Stage 2 with d1 ahead by .1
    out = stats.gain_gap(metrics, "d1consis", "d2consis")
    assert out["mean"] == pytest.approx((0.2 + 0.3 + 0.2) / 3)
    assert (out["stage"], out["epoch"], out["stage_before"], out["epoch_before"]) == (2, 3, 1, 2)
    assert stats.gap(metrics, "d1consis", "d2consis")["mean"] == pytest.approx((0.3 + 0.3 + 0.2) / 3)  # the plain gap keeps it


def test_format_ci_shows_one_seed_without_failing():
    assert stats.format_ci({"mean": 0.0684, "ci_low": 0.047, "ci_high": 0.0891, "n_seeds": 6}) == "+0.068  95% CI [+0.047, +0.089]  n=6"
    one = stats.mean_ci([0.25])
    assert stats.format_ci(one) == "+0.250  95% CI n/a (1 seed)  n=1"
    assert stats.format_ci({"mean": 0.9, "ci_low": None, "ci_high": None, "n_seeds": 1}, ".2f", full=False) == "0.90 n/a (1 seed)"
    assert stats.format_ci({"mean": 0.814, "ci_low": 0.723, "ci_high": 0.906, "n_seeds": 4}, ".3f", full=False) == "0.814 [0.723, 0.906]"


def test_format_ci_never_writes_negative_zero():
    g = {"mean": -0.0001, "ci_low": -0.011, "ci_high": 0.0104, "n_seeds": 8}
    assert stats.format_ci(g, full=False) == "+0.000 [-0.011, +0.010]"
    assert stats.format_ci({**g, "mean": -0.0004}, ".3f", full=False) == "0.000 [-0.011, 0.010]"
