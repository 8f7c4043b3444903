"""The benchmark's pieces (the figures themselves are printed by `python -m benchmarks.bench`, never asserted on): the FLOP count, the
Trainer baseline that trains exactly as our loop does, the reference-style evaluation, and the CLI's checks before measuring."""

import math

import pytest
import torch

from benchmarks import bench
from iml_nb.lm.encode import IGNORE, encode
from iml_nb.lm.evaluate import EvalSuite
from iml_nb.lm.train import train_stage
from iml_nb.people_qa import stage0
from iml_nb.people_qa.config import build_config
from iml_nb.people_qa.define import make_define_data
from iml_nb.people_qa.people import load_people


@pytest.fixture(scope="module")
def tiny():
    cfg = build_config(n_people=40, model="pythia-tiny", stage1_epochs=2, n_seeds=1)
    people = load_people(cfg)
    model, tokenizer = stage0.base_model(cfg, people)
    draw = make_define_data(people, cfg.data, 0, 0)
    return cfg, model, tokenizer, draw


@pytest.mark.slow
def test_model_flops_count_the_head_only_at_targets(tiny):
    cfg, model, tokenizer, draw = tiny
    data = encode(draw.train["stage1"], tokenizer, "answer")
    d, vocab = model.config.hidden_size, model.config.vocab_size
    blocks = sum(p.numel() for name, p in model.named_parameters() if ".layers." in name or "final_layer_norm" in name)
    expected = 6 * blocks * int(data.lengths.sum()) + 6 * d * vocab * int((data.targets != IGNORE).sum())
    assert bench.model_flops(model, data) == expected  # tied: the embedding matrix counts once, as the head, at targets


def test_same_batches_are_the_batches_of_our_loop():
    batches = bench._SameBatches(10, 4, seed=3)
    generator = torch.Generator().manual_seed(3)
    for _ in range(2):  # two epochs: one permutation each from one generator
        order = torch.randperm(10, generator=generator).tolist()
        assert list(batches) == [order[0:4], order[4:8], order[8:10]]
    assert len(batches) == 3


@pytest.mark.slow
def test_trainer_baseline_trains_as_our_loop(tiny):
    cfg, model, tokenizer, draw = tiny
    data = encode(draw.train["stage1"], tokenizer, cfg.train.loss_on)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    ours = train_stage(model, data, cfg.train, 2, seed=5)
    after_ours = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    theirs = bench.trainer_stage(model, data, cfg.train, 2, seed=5)
    assert len(theirs) == 2 and all(math.isclose(a, b, rel_tol=1e-4) for a, b in zip(ours, theirs)), (ours, theirs)
    assert all(torch.allclose(after_ours[k], v, atol=1e-4) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_reference_style_evaluation_scores_as_ours(tiny):
    cfg, model, tokenizer, draw = tiny
    suite = EvalSuite({k: v for k, v in draw.eval_sets.items() if k in ("qd1consis", "d1consis", "ent_assoc_d1consis")})
    ours = suite.run(model, tokenizer, "generate", 64, 8)
    theirs = bench.reference_eval(suite, model, tokenizer, "generate", 64, 8)
    assert ours.keys() == theirs.keys() and all(abs(ours[k]["em"] - theirs[k]["em"]) < 1e-6 for k in ours)


def test_bench_checks_its_options_before_measuring(monkeypatch, capsys):
    monkeypatch.setattr(bench, "run_all", lambda *a, **k: pytest.fail("nothing may be measured"))
    assert bench.main(["--sizes", "pythia-huge"]) == 1
    assert "--sizes" in capsys.readouterr().err
    assert bench.main(["-p", "n_people", "5"]) == 1
    assert "`n_people`" in capsys.readouterr().err
    monkeypatch.setattr(bench, "pretrained_fine_tuning", lambda *a, **k: pytest.fail("nothing may be measured"))
    assert bench.main(["--pretrained", "0,-8"]) == 1
    assert "--pretrained" in capsys.readouterr().err


@pytest.mark.slow
def test_fast_vs_generate_agrees_and_times_the_untrained_network(tmp_path):
    cfg = build_config(n_people=40, model="pythia-tiny", stage0_epochs=3, stage1_epochs=2, n_seeds=1, cache_dir=str(tmp_path))
    f = bench.fast_vs_generate(cfg)
    assert f["sets"] > 0 and f["sets_identical"] == f["sets"] and f["sets_identical_pipeline"] == f["sets"]
    assert all(f[k] > 0 for k in ("fast_s", "generate_s", "pipeline_s", "untrained_fast_s", "untrained_generate_s"))
