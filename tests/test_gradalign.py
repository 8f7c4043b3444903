"""Gradient alignment: definitions and questions paired by alias, the sketch, settings named before compute."""

import dataclasses

import pytest
import torch

from iml_nb.core.parameters import ConfigError
from iml_nb.mechanisms import gradalign
from iml_nb.people_qa.config import build_config
from iml_nb.people_qa.define import make_define_data
from iml_nb.people_qa.people import load_people


def _data():
    cfg = build_config(n_people=200, stage_plan="one_stage", stage1_epochs=1)
    return make_define_data(load_people(cfg), cfg.data, 0, 0)


def test_pairs_follow_the_alias_even_when_aliases_have_different_numbers_of_questions():
    data = _data()
    # Drop questions unevenly and reverse the order, so pairing by position or sort order would go wrong.
    kept = {s: tuple(ex for i, ex in enumerate(reversed(data.eval_sets[s])) if i % 5) for s in gradalign.SUBSETS}
    data = dataclasses.replace(data, eval_sets={**data.eval_sets, **kept})
    pairs = gradalign.pairs_by_alias(data, "full")
    counts = set()
    for subset, by_alias in pairs.items():
        assert by_alias
        for alias, (definition, questions) in by_alias.items():
            assert definition.kind == "definition" and definition.subset == subset and definition.alias == alias
            assert questions and all(q.alias == alias and q.entity == definition.entity and q.kind == "qa" for q in questions)
            counts.add(len(questions))
        expected = {ex.alias for ex in kept[subset]}
        assert set(by_alias) == expected
    assert len(counts) > 1  # the uneven drop really gave aliases different numbers of questions


def test_sketch_keeps_cosines_roughly_and_dim_0_is_the_identity():
    model = torch.nn.Linear(300, 100)
    torch.manual_seed(0)
    a = torch.randn(30100)
    b = 0.6 * a + 0.8 * torch.randn(30100)
    exact = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    sketch = gradalign.Sketch(model, 4096, seed=1)
    approx = float(torch.nn.functional.cosine_similarity(sketch(a), sketch(b), dim=0))
    assert sketch(a).shape == (4096,) and abs(approx - exact) < 0.05
    assert torch.equal(gradalign.Sketch(model, 0)(a), a)


def test_settings_named_before_any_compute():
    configs = gradalign.gradalign_configs({"n_people": 200}, [16, 64], 5, 0)
    assert [(c.data.stage_plan, c.train.batch_size) for c in configs] == [("one_stage", 16), ("one_stage", 64)]
    for args, name in [
        (([], 5, 0), "batch_sizes"),
        (([0], 5, 0), "batch_sizes"),
        (([16], 0, 0), "measure_every"),
        (([16], 5, -1), "project_dim"),
    ]:
        with pytest.raises(ConfigError, match=f"`{name}`"):
            gradalign.gradalign_configs({"n_people": 200}, *args)
    with pytest.raises(ConfigError, match="`stage_plan`"):
        gradalign.gradalign_configs({"stage_plan": "two_stage"}, [16], 5, 0)
