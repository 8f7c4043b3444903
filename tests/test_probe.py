"""Linear probes: folds grouped by alias, balanced classes, positions that line up, chance where inputs are identical."""

import numpy as np
import pytest

from iml_nb.mechanisms import probe
from iml_nb.people_qa.config import build_config
from iml_nb.people_qa.define import make_define_data
from iml_nb.people_qa.people import load_people


def test_grouped_folds_never_put_one_alias_in_train_and_test():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), rng.integers(1, 5, size=40))  # aliases with different numbers of rows
    labels = (groups % 2).astype(int)
    folds = probe.grouped_folds(labels, groups, n_folds=5)
    assert len(folds) == 5
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested) == list(range(len(groups)))  # every row tested exactly once
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert set(labels[test]) == {0, 1}
    with pytest.raises(ValueError, match="n_folds"):
        probe.grouped_folds(labels[:6], groups[:6], n_folds=5)


def test_probe_inputs_are_balanced_one_question_per_alias_from_the_right_subsets():
    cfg = build_config(n_people=200)
    data = make_define_data(load_people(cfg), cfg.data, 0, 0)
    for name, (neg, pos) in probe.PROBES.items():
        inputs = probe.probe_inputs(data, name)
        counts = inputs["label"].value_counts()
        assert counts[0] == counts[1] and inputs["alias"].is_unique
        assert set(inputs.loc[inputs.label == 0, "subset"]) <= set(neg) and set(inputs.loc[inputs.label == 1, "subset"]) <= set(pos)
        assert all(t == f"Q: What is the name of {a}?\nA:" for t, a in zip(inputs["text"], inputs["alias"]))
    with pytest.raises(ValueError, match="unknown probe"):
        probe.probe_inputs(data, "colour")


@pytest.mark.slow
def test_hidden_states_line_positions_up_and_a_probe_is_at_chance_where_inputs_are_identical():
    import torch

    from iml_nb.lm.model import build_scratch_model
    from iml_nb.lm.vocab import build_word_tokenizer

    aliases = [f"<|a{i}|>" for i in range(40)]
    texts = [f"Q: What is the name of {a}?\nA:" for a in aliases] + ["Q: What is the full name of <|a0|>?\nA:"]
    tokenizer = build_word_tokenizer(texts, aliases)
    torch.manual_seed(0)
    model = build_scratch_model("pythia-tiny", tokenizer, True, 0).eval()
    states, tokens, kept = probe.hidden_states(model, tokenizer, texts, batch_size=16)
    assert kept.tolist() == [True] * 40 + [False]  # the longer question is dropped so positions line up
    assert states.shape[:3] == (40, model.config.num_hidden_layers + 1, len(tokens)) and tokens[0] == "Q"
    labels = np.arange(40) % 2
    grid = probe.probe_grid(states, labels, np.arange(40), tokens, n_folds=4)
    before_alias = grid[grid["position"] < tokens.index("<|a0|>")]
    assert (before_alias["accuracy"] <= 0.5).all()  # identical inputs there: nothing to decode
    assert len(grid) == states.shape[1] * states.shape[2]


def test_probe_settings_are_checked_by_name_before_any_compute():
    from iml_nb.core.parameters import ConfigError

    assert [c.data.word_order for c in probe.probe_configs({"n_people": 200}, ["tve", "vte"], ["tag"], 0.01, 5)] == ["tve", "vte"]
    for args, name in [
        ((["tve", "xyz"], ["tag"], 0.01, 5), "word_order"),
        (([], ["tag"], 0.01, 5), "word_orders"),
        ((["tve"], ["colour"], 0.01, 5), "probes"),
        ((["tve"], ["tag"], 0.0, 5), "probe_C"),
        ((["tve"], ["tag"], 0.01, 1), "n_folds"),
    ]:
        with pytest.raises(ConfigError, match=f"`{name}`"):
            probe.probe_configs({"n_people": 200}, *args)
