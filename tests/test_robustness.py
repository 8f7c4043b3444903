"""The pre-registered rules of 10_robustness on constructed outcomes: an effect, a null that is equivalent to zero, an inconclusive
one, Holm over the primary family, unequal memorisation, and the design checks."""

import numpy as np
import pandas as pd
import pytest

from iml_nb import robustness
from iml_nb.config import ConfigError


def per_seed(gaps_by_arm: dict, memorised: tuple = (0.9, 0.9)) -> pd.DataFrame:
    """{arm: [per-world QA gap]} -> per-seed outcomes (4 seeds per world, +-0.001 around the world's value)."""
    rows = []
    for arm, gaps in gaps_by_arm.items():
        for w, g in enumerate(gaps):
            for s, jitter in enumerate((-0.001, 0.001, -0.0005, 0.0005)):
                rows.append({"arm": arm, "world": f"{w}/{w}", "seed": 7000 + s, "qa_gap": g + jitter, "entity_gap": g / 2 + jitter,
                             "stage1_effect": 0.3, "internalized_d1": 0.1, "internalized_d2": 0.05,
                             "memorised_d1consis": memorised[0], "memorised_d2consis": memorised[1]})
    return pd.DataFrame(rows)


def test_rules_on_an_effect_a_null_and_noise():
    frame = per_seed({"default": [0.06, 0.07, 0.05, 0.08, 0.065], "untied": [0.001, -0.002, 0.0, 0.002, -0.001],
                      "fresh_aliases": [0.1, -0.08, 0.05, -0.06, 0.02]})
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
    assert list(design["batch"]) == ["pre__default__world-1-2", "pre__default__world-3-4", "pre__untied__world-1-2",
                                     "pre__untied__world-3-4"]
    assert design.loc[2, "params"] == {"n_people": 100, "tie_embeddings": False, "people_seed": 1, "stage0_seed": 2}
    with pytest.raises(ConfigError, match="`n_people`"):
        robustness.plan(["default"], [[1, 2], [3, 4]], {"n_people": 3})
