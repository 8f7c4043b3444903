"""The pre-registered rules of 10_robustness on constructed outcomes: an effect, a null that is equivalent to zero, an inconclusive
one, Holm over the primary family, unequal memorisation, and the design checks."""

import numpy as np
import pandas as pd
import pytest

from iml_nb.core.parameters import ConfigError
from iml_nb.people_qa import robustness


def per_seed(gaps_by_arm: dict, memorised: tuple = (0.9, 0.9)) -> pd.DataFrame:
    """{arm: [per-world QA gap]} -> per-seed outcomes (4 seeds per world, +-0.001 around the world's value)."""
    rows = []
    for arm, gaps in gaps_by_arm.items():
        for w, g in enumerate(gaps):
            for s, jitter in enumerate((-0.001, 0.001, -0.0005, 0.0005)):
                rows.append(
                    {
                        "arm": arm,
                        "world": f"{w}/{w}",
                        "seed": 7000 + s,
                        "qa_gap": g + jitter,
                        "entity_gap": g / 2 + jitter,
                        "stage1_effect": 0.3,
                        "internalized_d1": 0.1,
                        "internalized_d2": 0.05,
                        "memorised_d1consis": memorised[0],
                        "memorised_d2consis": memorised[1],
                    }
                )
    return pd.DataFrame(rows)


def test_rules_on_an_effect_a_null_and_noise():
    frame = per_seed(
        {
            "default": [0.06, 0.07, 0.05, 0.08, 0.065],
            "untied": [0.001, -0.002, 0.0, 0.002, -0.001],
            "fresh_aliases": [0.1, -0.08, 0.05, -0.06, 0.02],
        }
    )
    table = robustness.summarise(frame, margin=0.02).set_index(["arm", "outcome"])
    assert table.loc[("default", "qa_gap"), "verdict"] == "IML"
    assert table.loc[("untied", "qa_gap"), "verdict"] == "no effect"
    assert table.loc[("fresh_aliases", "qa_gap"), "verdict"] == "inconclusive"
    assert table.loc[("default", "stage1_effect"), "verdict"] == "descriptive"
    # Holm over 3 arms x 2 primary gaps: adjusted p never below the raw p, and only the family is adjusted
    family = table[table.index.get_level_values("outcome").isin(robustness.PRIMARY)]
    assert len(family) == 6 and (family["p_holm"] >= family["p"] - 1e-12).all()
    assert table.loc[("default", "stage1_effect"), "p_holm"] != table.loc[("default", "stage1_effect"), "p_holm"]  # NaN
    # the quoted interval is across worlds (n 5); the pooled one counts seeds (n 20) and is narrower here
    row = table.loc[("default", "qa_gap")]
    assert row["n_worlds"] == 5 and row["n_seeds"] == 20
    assert row["ci_low"] < row["pooled_ci_low"] and np.isclose(row["mean"], 0.065)


def test_unequal_memorisation_is_flagged():
    table = robustness.summarise(per_seed({"default": [0.06, 0.07, 0.05]}, memorised=(0.88, 0.70)), margin=0.02)
    check = robustness.memorisation_check(table, tolerance=0.05)
    assert check.loc[0, "unequal"] and np.isclose(check.loc[0, "memorised_d1consis"], 0.88)


def test_design_is_checked_before_any_run():
    with pytest.raises(ConfigError, match="`arms`"):
        robustness.check_design(["default", "nope"], [[1, 2], [3, 4]], 0.02)
    with pytest.raises(ConfigError, match="`worlds`"):
        robustness.check_design(["default"], [[1, 2]], 0.02)
    with pytest.raises(ConfigError, match="`worlds`"):
        robustness.check_design(["default"], [[1, 2], [1, 2]], 0.02)
    with pytest.raises(ConfigError, match="`margin`"):
        robustness.check_design(["default"], [[1, 2], [3, 4]], 0)
    design = robustness.plan(["default", "untied"], [[1, 2], [3, 4]], {"n_people": 100}, "pre")
    assert list(design["batch"]) == [
        "pre__default__world-1-2",
        "pre__default__world-3-4",
        "pre__untied__world-1-2",
        "pre__untied__world-3-4",
    ]
    assert design.loc[2, "params"] == {"n_people": 100, "tie_embeddings": False, "people_seed": 1, "stage0_seed": 2}
    with pytest.raises(ConfigError, match="`n_people`"):
        robustness.plan(["default"], [[1, 2], [3, 4]], {"n_people": 3})


def _try_batch(root, name: str, fixed: dict, d1: float, complete=(True, True)):
    """A batch folder as `python -m iml_nb batch` leaves it: batch.json and one run folder of 01 (two Stage-1 seeds)."""
    import json

    from iml_nb.core import results
    from iml_nb.core.results import metric_rows, metrics_frame

    batch = root / name
    rows = []
    for seed, jitter in ((0, -0.01), (1, 0.01)):
        rows += metric_rows({"qd1consis": {"em": 0.5}, "qd2incons": {"em": 0.3}}, seed, 0, 1, 15)
        rows += metric_rows(
            {
                "d1consis": {"em": d1 + jitter},
                "d2consis": {"em": 0.13},
                "no_qd_baseline": {"em": 0.125},
                "ent_assoc_d1consis": {"em": 0.1},
                "ent_assoc_d2consis": {"em": 0.1},
                "train_defs_d1consis": {"em": 1.0},
                "train_defs_d2consis": {"em": 1.0},
                "align_d1consis": {"cos": 0.4, "cos_other": 0.1},
                "align_d2consis": {"cos": 0.3, "cos_other": 0.1},
                "align_no_qd_baseline": {"cos": 0.1, "cos_other": 0.1},
            },
            seed,
            0,
            2,
            10,
        )
    for i, done in enumerate(complete):
        folder = batch / f"seed={i}"
        if done:
            results.finalize_run(folder, {}, metrics_frame(rows), {})
        else:
            results.write_run(folder, {}, metrics_frame(rows))
    runs = [{"folder": f"seed={i}", "status": "complete" if done else "failed"} for i, done in enumerate(complete)]
    (batch / "batch.json").write_text(json.dumps({"fixed": {"n_seeds": 2, "people_seed": 0, "stage0_seed": 0, **fixed}, "runs": runs}))
    return batch


@pytest.mark.slow
def test_tries_pool_seeds_per_try_and_leave_incomplete_runs_out(tmp_path):
    from iml_nb.analysis import report

    diag = tmp_path / "diagnostics"
    untied = _try_batch(diag, "tie_tries__untied", {"tie_embeddings": False}, d1=0.13, complete=(True, False))
    pieces = _try_batch(diag, "tie_tries__untied_alias_tokens_3", {"tie_embeddings": False, "alias_tokens": 3}, d1=0.33)
    table = robustness.tries([untied, pieces]).set_index(["try", "outcome"])
    assert np.isclose(table.loc[("untied_alias_tokens_3", "internalized_d1"), "mean"], 0.205)
    assert table.loc[("untied_alias_tokens_3", "qa_gap"), "n_seeds"] == 4  # two complete runs of two seeds
    assert table.loc[("untied", "qa_gap"), "n_seeds"] == 2  # the incomplete run is left out
    assert np.isclose(table.loc[("untied", "align_d1"), "mean"], 0.3) and np.isclose(table.loc[("untied", "align_none"), "mean"], 0.0)
    md = report.tries_section(tmp_path)
    assert "| untied_alias_tokens_3 | tie_embeddings false, alias_tokens 3 | +0.205 [" in md
    assert "--name tie_tries__untied -p n_seeds 2 -p people_seed 0 -p stage0_seed 0 -p tie_embeddings false`" in md
    assert report.tries_section(tmp_path / "nothing") == ""
