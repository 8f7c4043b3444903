"""The report's verdict rules on constructed data: p from a stored interval equals scipy's t-test on the raw seeds, equivalence
needs evidence (a wide CI around 0 is not 'no effect'), slopes cluster by seed, Holm keeps NaN out of the family."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from iml_nb.analysis import stats, verdicts


def _record(values):
    return stats.mean_ci(values)


def test_p_from_a_stored_interval_is_the_t_test_on_the_seeds():
    seeds = [0.05, 0.08, 0.03, 0.07, 0.06]
    test = verdicts.from_interval(_record(seeds), "positive")
    assert math.isclose(test.p, st.ttest_1samp(seeds, 0.0).pvalue, rel_tol=1e-9)
    assert verdicts.from_interval(_record([0.1]), "positive") is None  # one seed: no interval, no test


def test_no_effect_needs_an_equivalence_test_not_a_ci_around_zero():
    tight = verdicts.from_interval(_record([0.004, -0.003, 0.001, -0.002, 0.0, 0.002]), "none")
    wide = verdicts.from_interval(_record([0.07, -0.08, 0.05, -0.06]), "none")
    effect = verdicts.from_interval(_record([0.10, 0.12, 0.11, 0.13]), "none")
    assert verdicts.verdict(tight, tight.p) == "agrees"  # TOST at ±0.03 rejects
    assert verdicts.verdict(wide, wide.p) == "inconclusive"  # contains 0, but could hide an effect of 0.05
    assert verdicts.verdict(effect, effect.p) == "disagrees"


def test_holm_adjusts_only_real_p_values_and_can_undo_a_raw_significance():
    adjusted = verdicts.holm([0.01, float("nan"), 0.04, 0.03])
    assert math.isnan(adjusted[1]) and adjusted[0] == 0.03 and adjusted[2] == 0.06
    test = verdicts.from_interval(_record([0.02, 0.05, 0.01, 0.04]), "positive")
    assert test.p < 0.05 and verdicts.verdict(test, 0.2) == "inconclusive"


@pytest.mark.slow
def test_slope_treats_seeds_as_clusters():
    rng = np.random.default_rng(0)
    rows = [
        {"seed": s, "x": x, "gap": 0.1 * x + offset + rng.normal(0, 0.005)}
        for s, offset in enumerate([0.02, -0.02, 0.01, -0.01])
        for x in (0.5, 0.75, 1.0)
    ]
    test = verdicts.slope(pd.DataFrame(rows), "x", "gap", "slope+")
    assert test.n == 4 and test.ci_low < 0.1 < test.ci_high and verdicts.verdict(test, test.p) == "agrees"
    flat = verdicts.slope(pd.DataFrame(rows).assign(gap=lambda f: f["gap"] - 0.1 * f["x"]), "x", "gap", "slope+")
    assert verdicts.verdict(flat, flat.p) == "inconclusive"


def test_pretrained_confirmation_follows_its_preregistered_rules(tmp_path):
    from iml_nb.analysis.claims import pretrained_confirmed

    def summary(qa, entity, memorised=(1.0, 1.0)):
        final = {f"train_defs_{s}": {"mean": m} for s, m in zip(("d1consis", "d2consis"), memorised)}
        return {"iml_gap_qa": _record(qa), "iml_gap_entity": _record(entity), "final_em": final}

    noise = [0.02, -0.03, 0.01, -0.01]
    effect = pretrained_confirmed(summary([0.10, 0.12, 0.11, 0.13], noise), tmp_path)
    assert effect.verdict == "agrees" and "Holm p" in effect.value and "TOST" in effect.rule
    assert pretrained_confirmed(summary([-0.10, -0.12, -0.11, -0.13], noise), tmp_path).verdict == "disagrees"
    wide = [0.06, -0.07, 0.05, -0.05]
    assert pretrained_confirmed(summary(wide, noise), tmp_path).verdict == "inconclusive"  # 0 inside a wide CI is no evidence
    null = pretrained_confirmed(summary([0.001, -0.002, 0.0, 0.001], noise), tmp_path)
    assert null.verdict == "disagrees"  # the equivalence test rejects a gap of the paper's size
    unequal = pretrained_confirmed(summary([0.10, 0.12, 0.11, 0.13], noise, memorised=(0.99, 0.80)), tmp_path)
    assert unequal.verdict == "inconclusive" and "unequal learning" in unequal.value


def test_pretrained_entity_confirmation_tests_the_entity_gap_alone(tmp_path):
    from iml_nb.analysis.claims import pretrained_entity_confirmed

    def summary(qa, entity, memorised=(1.0, 1.0)):
        final = {f"train_defs_{s}": {"mean": m} for s, m in zip(("d1consis", "d2consis"), memorised)}
        return {"iml_gap_qa": _record(qa), "iml_gap_entity": _record(entity), "final_em": final}

    noise, effect = [0.02, -0.03, 0.01, -0.01], [0.10, 0.12, 0.11, 0.13]
    found = pretrained_entity_confirmed(summary(noise, effect), tmp_path)
    assert found.verdict == "agrees" and found.value.startswith("entity +0.115") and "; QA " in found.value
    assert "t-test of entity gap" in found.rule and "Holm" not in found.value  # one test: nothing to adjust within the run
    wide = [0.06, -0.07, 0.05, -0.05]
    assert pretrained_entity_confirmed(summary(effect, wide), tmp_path).verdict == "inconclusive"  # a QA gap does not count
    assert pretrained_entity_confirmed(summary(noise, [0.001, -0.002, 0.0, 0.001]), tmp_path).verdict == "disagrees"
    assert pretrained_entity_confirmed(summary(noise, effect, memorised=(0.99, 0.8)), tmp_path).verdict == "inconclusive"


def test_two_preregistrations_of_one_notebook_read_their_own_runs(tmp_path, monkeypatch):
    import json

    import yaml

    from iml_nb.analysis import claims
    from iml_nb.core.env import project_path

    (tmp_path / "params").mkdir()
    for name, seed in (("11_pretrained_confirm.yaml", 10), ("11_pretrained_confirm_entity.yaml", 14)):
        (tmp_path / "params" / name).write_text(yaml.safe_dump({"people_seed": seed // 10, "seed": seed}))
    monkeypatch.setattr(claims, "project_path", lambda p: tmp_path / p)

    def run(run_id, params):
        folder = tmp_path / "outputs" / "11_pretrained" / run_id
        folder.mkdir(parents=True)
        papermill = {"parameters": {**params, "output_dir": str(folder)}}
        (folder / "11_pretrained.ipynb").write_text(json.dumps({"cells": [], "metadata": {"papermill": papermill}}))
        return folder

    first, second = run("confirm-1", {"people_seed": 1, "seed": 10}), run("confirm-entity-1", {"people_seed": 1, "seed": 14})
    explored = run("explore-9", {"people_seed": 1, "seed": 14})
    qa, entity = claims.registered("params/11_pretrained_confirm.yaml"), claims.registered("params/11_pretrained_confirm_entity.yaml")
    assert qa(first) and not qa(second) and entity(second) and not entity(first)
    assert not entity(explored)  # the same parameters, but not a pre-registered run's folder
    row = next(c for c in claims.CLAIMS if c.registration == "params/11_pretrained_confirm_entity.yaml")
    assert row.command().endswith("-f params/11_pretrained_confirm_entity.yaml --run-id confirm-entity-1")  # not confirm-1's folder
    assert row.command("confirm-entity-2").endswith("--run-id confirm-entity-2")  # a run that exists: the folder it went into
    assert project_path("params").is_dir()  # the real project's files are untouched


def test_word_order_confirmation_reads_only_equally_memorised_orders(tmp_path):
    """The pre-registered word-order rule: IML set (Holm-significant, positive, both tags memorised ≥ 0.95) = exactly tve and vte."""
    from iml_nb.analysis.claims import CONFIRM_MEMORISED, _entity_last

    effect, null = [0.10, 0.12, 0.11, 0.13, 0.09, 0.12, 0.10, 0.11], [0.02, -0.03, 0.01, -0.01, 0.0, 0.02, -0.02, 0.01]

    def verdict_of(gaps: dict, memorised: dict | None = None) -> tuple[str, str]:
        points = [
            {"word_order": o, "gap": "qa", **_record(v), "memorised_reliable": (memorised or {}).get(o, 0.99), "memorised_unreliable": 0.98}
            for o, v in gaps.items()
        ]
        judged = _entity_last(gate=CONFIRM_MEMORISED)({"axis": "word_order", "gaps": points}, tmp_path)
        adjusted = verdicts.holm([t.p for t in judged.tests])
        return judged.combine([verdicts.verdict(t, p) for t, p in zip(judged.tests, adjusted)]), judged.value

    paper = {"tve": effect, "vte": effect, "tev": null, "vet": null, "etv": null, "evt": null}
    assert verdict_of(paper)[0] == "agrees"
    assert verdict_of({**paper, "etv": effect})[0] == "disagrees"  # IML where the entity comes first
    assert verdict_of({**paper, "vte": null})[0] == "inconclusive"  # an entity-last order without IML
    unequal, value = verdict_of({**paper, "etv": effect}, memorised={"etv": 0.80})
    assert unequal == "agrees" and "etv" in value and "unequal learning" in value  # etv's gap is not read: unequal learning


@pytest.mark.slow
def test_batch_size_confirmation_needs_every_batch_size_converged(tmp_path):
    """The pre-registered batch-size rule: the slope read where each batch size first memorises both tags to 0.95; a batch size
    that never gets there keeps the test in the family and makes the row inconclusive."""
    from iml_nb.analysis.claims import CLAIMS

    claim = next(c for c in CLAIMS if c.notebook == "07_batch_size" and "07_batch_size_confirm" in c.claim)

    def judged(converges: dict) -> "object":
        rows = []
        for bs, ok in converges.items():
            for seed in range(4):
                for epoch in (1, 2, 3):
                    memorised = 0.99 if ok and epoch >= 2 else 0.5
                    ems = {
                        "train_defs_d1consis": memorised,
                        "train_defs_d2consis": memorised,
                        "d1consis": 0.3 - 0.01 * bs / 16 + 0.003 * seed,
                        "d2consis": 0.2,
                    }
                    rows += [
                        dict(seed=seed, seed_stage2=0, stage=1, epoch=epoch, subset=s, metric="em", value=v, batch_size=bs)
                        for s, v in ems.items()
                    ]
        pd.DataFrame(rows).to_csv(tmp_path / "metrics.csv", index=False)
        return claim.judge({"axis": "batch_size", "values": list(converges), "gaps": []}, tmp_path)

    converged = judged({16: True, 64: True, 256: True})
    assert converged.tests[0].predicts == "slope-" and converged.combine is None and "unequal" not in converged.value
    short = judged({16: False, 64: True, 256: True})
    assert len(short.tests) == 1 and short.combine(["agrees"]) == "inconclusive" and "unequal learning at 16" in short.value


@pytest.mark.slow
def test_model_size_confirmation_needs_every_size_to_know_its_facts(tmp_path):
    """The pre-registered model-size rule: read at memorisation as batch size's, and only if every size's Stage 0 ended knowing
    ≥ 0.95 of its facts; a size that did not keeps the test in the family and makes the row inconclusive."""
    from iml_nb.analysis.claims import CLAIMS

    claim = next(c for c in CLAIMS if c.notebook == "08_model_size" and "08_model_size_confirm" in c.claim)

    def judged(known: dict) -> "object":
        rows = []
        for i, (model, facts) in enumerate(known.items()):
            rows += [dict(stage=0, epoch=e, subset="stage0_facts", metric="em", value=facts - 0.1 * (2 - e), model=model) for e in (1, 2)]
            for seed in range(4):
                ems = {
                    "train_defs_d1consis": 0.99,
                    "train_defs_d2consis": 0.99,
                    "d1consis": 0.2 + 0.05 * i + 0.003 * seed * (i + 1) ** 2,
                    "d2consis": 0.2,
                }
                rows += [
                    dict(seed=seed, seed_stage2=0, stage=2, epoch=1, subset=s, metric="em", value=v, model=model) for s, v in ems.items()
                ]
        pd.DataFrame(rows).to_csv(tmp_path / "metrics.csv", index=False)
        return claim.judge({"axis": "model", "values": list(known), "gaps": []}, tmp_path)

    equal = judged({"pythia-tiny": 0.98, "pythia-small": 0.97})
    assert equal.tests[0].predicts == "slope+" and equal.combine is None and "pythia-small 0.97" in equal.value
    assert "every Stage 0 knows ≥ 0.95" in equal.rule
    short = judged({"pythia-tiny": 0.98, "pythia-small": 0.70})
    assert len(short.tests) == 1 and short.combine(["agrees"]) == "inconclusive" and "below 0.95 at pythia-small" in short.value


def test_natural_language_tags_are_read_over_both_orientations(tmp_path):
    """IML = half the sum of the two arms' per-seed gaps, the words' prior = half their difference; one arm alone is inconclusive."""
    from iml_nb.analysis import claims
    from iml_nb.core import results
    from iml_nb.core.results import metric_rows, metrics_frame

    def arm(run_id, tags, gaps):
        ems = [{"d1consis": {"em": 0.3 + g}, "d2consis": {"em": 0.3}} for g in gaps]
        rows = [r for seed, em in enumerate(ems) for r in metric_rows(em, seed, 0, 2, 10)]
        summary = {"iml_gap_qa": _record(gaps), "final_em": {"train_defs_d1consis": {"mean": 0.99}, "train_defs_d2consis": {"mean": 0.97}}}
        folder = tmp_path / "11_pretrained" / run_id
        results.finalize_run(folder, {"data": {"tags": tags}}, metrics_frame(rows), summary)
        return folder, summary

    named, summary = arm("a", "sources", [0.05, 0.07, 0.06, 0.08])
    judge = next(c.judge for c in claims.CLAIMS if c.notebook == "11_pretrained" and c.select and c.select(named))
    alone = judge(summary, named)
    assert alone.verdict == "inconclusive" and "sources_swapped" in alone.value and not alone.tests
    arm("b", "sources_swapped", [-0.03, -0.05, -0.02, -0.04])  # the sign flips: mostly the words' prior
    both = judge(summary, named)
    assert both.value.startswith("IML (half sum): +0.015 [") and "words' prior (half difference): +0.050 [" in both.value
    assert "paired over the 4 Stage-1 seeds both arms ran" in both.value
    assert "memorised 0.99 / 0.97" in both.value and "11_pretrained/b" in both.value
    assert math.isclose(both.tests[0].estimate, 0.015) and both.tests[0].predicts == "positive"
    arm("c", "sources_swapped", [-0.03, -0.05, -0.02])  # a newer swapped arm with fewer seeds: the pair reads the shared ones
    assert "paired over the 3 Stage-1 seeds both arms ran" in judge(summary, named).value
