"""Integration tests with tiny models: fast EM equals greedy generation, the answer-only forward, the pretrained loading path."""

import shutil

import pandas as pd
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

from iml_nb.analysis import stats
from iml_nb.core.config import TrainConfig
from iml_nb.core.parameters import ConfigError
from iml_nb.lm import model as models_mod
from iml_nb.lm.encode import encode, target_logits
from iml_nb.lm.evaluate import EvalSuite, exact_match, f1, generate, normalize, teacher_forced_correct
from iml_nb.lm.train import train_stage
from iml_nb.people_qa.config import build_config
from iml_nb.people_qa.define import stage0_examples
from iml_nb.people_qa.experiment import run_experiment
from iml_nb.people_qa.people import synthetic_people
from iml_nb.people_qa.stage0 import base_model

PEOPLE = synthetic_people(60, seed=1)
FACTS = stage0_examples(PEOPLE)


@pytest.fixture(scope="module")
def trained():
    """A tiny from-scratch model that has half-learned the facts: some answers right, some wrong."""
    cfg = build_config(n_people=60, model="pythia-tiny")
    model, tokenizer = base_model(cfg, PEOPLE)
    train_stage(model, encode(FACTS, tokenizer), TrainConfig(batch_size=32, lr=3e-3), epochs=25, seed=0)
    return model, tokenizer


@pytest.mark.slow
def test_fast_exact_match_equals_greedy_generation(trained):
    model, tokenizer = trained
    fast = teacher_forced_correct(model, tokenizer, FACTS, batch_size=64)
    preds = generate(model, tokenizer, [ex.prompt for ex in FACTS], batch_size=64)
    slow = torch.tensor([exact_match(p, ex.answer) == 1.0 for p, ex in zip(preds, FACTS)])
    assert 0.1 < fast.float().mean() < 0.95, "the test needs both right and wrong answers to mean anything"
    assert torch.equal(fast, slow)


@pytest.mark.slow
def test_suite_modes_agree(trained):
    model, tokenizer = trained
    suite = EvalSuite({"a": FACTS[:100], "b": FACTS[50:200]})  # overlapping sets are scored once
    assert len(suite.items) == 200
    fast, gen = suite.run(model, tokenizer, "fast"), suite.run(model, tokenizer, "generate")
    assert fast["a"]["em"] == gen["a"]["em"] and fast["b"]["em"] == gen["b"]["em"]
    assert gen["a"]["f1"] >= gen["a"]["em"]


@pytest.mark.slow
def test_fast_and_generation_differ_only_at_near_ties_or_where_generation_is_lenient(trained, monkeypatch):
    """The exact condition under which the two EMs agree: both passes give the same logits up to float rounding, far below
    NEAR_TIE, so an item can only be scored differently where its top two logits at an answer position are within NEAR_TIE."""
    from iml_nb.lm import evaluate
    from iml_nb.lm.encode import prefix_ids

    model, tokenizer = trained
    prompts = [tokenizer(ex.prompt, add_special_tokens=False)["input_ids"] for ex in FACTS[:64]]
    width = max(len(p) for p in prompts)
    left = torch.full((len(prompts), width), tokenizer.pad_token_id)
    mask = torch.zeros_like(left)
    for i, ids in enumerate(prompts):
        left[i, width - len(ids) :], mask[i, width - len(ids) :] = torch.tensor(prefix_ids(tokenizer) + ids), 1
    with torch.no_grad():
        first_step = model.generate(
            input_ids=left,
            attention_mask=mask,
            max_new_tokens=1,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=tokenizer.pad_token_id,
        ).scores[0]
        forced = torch.stack([model(input_ids=torch.tensor([ids])).logits[0, -1] for ids in prompts])
    assert (first_step - forced).abs().max() < evaluate.NEAR_TIE / 4  # 3.8e-6 measured here: NEAR_TIE leaves a wide margin

    suite = EvalSuite({"a": FACTS[:100]})
    both = suite.run(model, tokenizer, "both")["a"]
    assert both["em_disagree"] == both["em_disagree_tie"] and abs(both["em"] - both["em_generate"]) <= both["em_disagree"] + 1e-9
    # A flipped item is booked as a near-tie flip only where its margin is below NEAR_TIE.
    real = evaluate.generate
    monkeypatch.setattr(evaluate, "generate", lambda *a, **k: ["nobody"] + real(*a, **k)[1:])
    forced_right = bool(teacher_forced_correct(model, tokenizer, suite.items[:1])[0])
    flipped = suite.run(model, tokenizer, "both")["a"]
    assert flipped["em_disagree"] == pytest.approx(both["em_disagree"] + (0.01 if forced_right else 0.0))
    monkeypatch.setattr(evaluate, "NEAR_TIE", float("inf"))
    assert suite.run(model, tokenizer, "both")["a"]["em_disagree_tie"] == flipped["em_disagree"]
    # Generation's normalisation forgives a leading ": ": every item teacher forcing gets wrong is then one only generation gets right.
    monkeypatch.setattr(evaluate, "NEAR_TIE", 1e-4)
    monkeypatch.setattr(evaluate, "generate", lambda model, tok, prompts, *a, **k: [": " + ex.answer for ex in suite.items])
    lenient = suite.run(model, tokenizer, "both")["a"]
    assert lenient["em_generate"] == 1.0 and lenient["em_disagree"] == pytest.approx(1 - lenient["em"])
    assert lenient["em_disagree_lenient"] + lenient["em_disagree_tie"] == pytest.approx(lenient["em_disagree"])


@pytest.mark.slow
def test_suite_encodes_once_per_tokenizer(trained, monkeypatch):
    model, tokenizer = trained
    suite = EvalSuite({"a": FACTS[:100], "b": FACTS[50:200]})
    calls = []
    real = __import__("iml_nb.lm.evaluate", fromlist=["encode"]).encode
    monkeypatch.setattr("iml_nb.lm.evaluate.encode", lambda *a, **k: calls.append(1) or real(*a, **k))
    first, again = suite.run(model, tokenizer, "fast"), suite.run(model, tokenizer, "fast")
    assert first == again and len(calls) == 1
    other = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer.backend_tokenizer, eos_token=tokenizer.eos_token, pad_token=tokenizer.pad_token
    )
    assert suite.run(model, other, "fast") == first and len(calls) == 2  # another tokenizer object: encoded again


@pytest.mark.slow
def test_answer_only_logits_match_full_forward(trained):
    model, tokenizer = trained
    data = encode(FACTS[:16], tokenizer, loss_on="answer")
    ids, tgt = data.batch(torch.arange(16))
    logits, sel = target_logits(model, ids, tgt)
    full = model(input_ids=ids).logits[sel]
    assert torch.allclose(logits, full, atol=1e-5)
    # answer targets: the answer token(s) then EOS, nothing from the prompt
    row = tgt[0][tgt[0] != -100].tolist()
    answer_ids = tokenizer(" " + FACTS[0].answer, add_special_tokens=False)["input_ids"]
    assert row[-1] == tokenizer.eos_token_id and len(row) == len(answer_ids) + 1


def test_loss_on_all_targets_every_next_token():
    cfg = build_config(n_people=60, model="pythia-tiny")
    _, tokenizer = base_model(cfg, PEOPLE)
    data = encode(FACTS[:4], tokenizer, loss_on="all")
    n = int(data.lengths[0])
    assert (data.targets[0, :n] != -100).all() and data.targets[0, n - 1] == tokenizer.eos_token_id
    assert (data.targets[0, n:] == -100).all()


def test_metrics():
    assert normalize("The  19 Century.") == "19 century"
    assert exact_match("19 century", "19 century") == 1.0 and exact_match("18 century", "19 century") == 0.0
    assert exact_match("France", "Spain;France") == 1.0
    assert f1("18 century", "19 century") == pytest.approx(0.5)


def _bpe_folder(tmp_path):
    """A local 'pretrained' folder like one from the hub: a byte-level BPE tokenizer and a tiny GPT-NeoX."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = [ex.prompt + " " + ex.answer for ex in FACTS]
    tok.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = GPTNeoXForCausalLM(
            GPTNeoXConfig(
                vocab_size=len(fast),
                hidden_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=64,
                eos_token_id=0,
                bos_token_id=0,
            )
        )
    models_mod.save(net, fast, tmp_path)
    return tmp_path


@pytest.mark.slow
def test_pretrained_folder_runs_the_main_experiment(tmp_path):
    folder = _bpe_folder(tmp_path / "tiny-pretrained")
    model, tokenizer = models_mod.load_pretrained(str(folder))
    assert tokenizer.pad_token_id == tokenizer.eos_token_id  # Pythia-style: no pad token, EOS pads
    cfg = build_config(
        model=str(folder),
        n_people=40,
        stage0_epochs=1,
        stage1_epochs=1,
        stage2_epochs=1,
        n_seeds=1,
        n_jobs=1,
        cache_dir=str(tmp_path / "cache"),
    )
    assert not cfg.model.from_scratch
    metrics, answers = run_experiment(cfg, progress=False)
    assert {"d1consis", "d2consis", "qd1consis", "stage0_facts"} <= set(metrics["subset"])
    assert set(metrics["stage"]) == {0, 1, 2} and len(answers) > 0


def test_pretrained_file_instead_of_folder_is_a_clear_error(tmp_path):
    f = tmp_path / "model.gguf"
    f.write_bytes(b"x")
    with pytest.raises(ValueError, match="gguf_file"):
        models_mod.load_pretrained(str(f))


@pytest.mark.slow
def test_experiment_is_deterministic_and_complete(tmp_path):
    cfg = build_config(
        n_people=60,
        model="pythia-tiny",
        stage0_epochs=2,
        stage1_epochs=2,
        stage2_epochs=1,
        n_seeds=2,
        n_seeds_stage2=2,
        n_jobs=1,
        cache_dir=str(tmp_path),
    )
    a, shown = run_experiment(cfg, progress=False)
    finished = sorted(tmp_path.glob("seed-*"))
    assert len(finished) == 2  # one finished result per Stage-1 seed
    b, shown_again = run_experiment(cfg, progress=False)  # every seed's result loaded, exactly as computed
    assert a.equals(b) and shown.equals(shown_again)
    for folder in [*finished, *tmp_path.glob("shared-*")]:
        shutil.rmtree(folder)
    c, _ = run_experiment(cfg, progress=False)  # Stages 1-2 trained again from the cached Stage 0
    assert a.equals(c)
    s2 = a[(a["stage"] == 2) & (a["subset"] == "d1consis") & (a["metric"] == "em")]
    assert sorted(s2["seed_stage2"].unique()) == [0, 1] and sorted(s2["seed"].unique()) == [0, 1]
    s1 = a[(a["stage"] == 1) & (a["subset"] == "qd1consis") & (a["metric"] == "em")]
    assert s1["seed_stage2"].isna().all() and len(s1) == 2 * 2  # seeds x epochs


@pytest.mark.slow
def test_a_finished_seed_is_reused_only_by_the_same_settings_and_code(tmp_path, monkeypatch):
    from iml_nb.people_qa import stage0

    common = dict(n_people=40, model="pythia-tiny", stage0_epochs=1, stage1_epochs=1, stage2_epochs=1, n_seeds=1)
    cfg = build_config(**common, n_jobs=1, cache_dir=str(tmp_path))
    run_experiment(cfg, progress=False)
    stage0_dir = str(next(tmp_path.glob("stage0-*")))
    folder = stage0.seed_result_dir(cfg, 0, stage0_dir)
    assert (folder / "rows.csv").exists() and (folder / "examples.json").exists()
    assert stage0.seed_result_dir(build_config(**common, cache_dir=str(tmp_path), n_jobs=2, output_dir="x"), 0, stage0_dir) == folder
    assert stage0.seed_result_dir(build_config(**common, n_jobs=1, cache_dir=str(tmp_path), eval_every=2), 0, stage0_dir) != folder
    assert stage0.seed_result_dir(cfg, 1, stage0_dir) != folder
    monkeypatch.setattr(stage0, "code_digest", lambda: "edited")
    assert stage0.seed_result_dir(cfg, 0, stage0_dir) != folder  # an edit to the computing code computes the seed again


def test_eval_every_scores_every_nth_epoch_and_each_stage_end(tmp_path):
    common = dict(n_people=60, model="pythia-tiny", stage0_epochs=1, stage1_epochs=3, stage2_epochs=2, n_seeds=1, n_jobs=1)
    sparse, _ = run_experiment(build_config(**common, eval_every=2, cache_dir=str(tmp_path)), progress=False)
    epochs = lambda metric: sorted(map(tuple, sparse.loc[sparse["metric"] == metric, ["stage", "epoch"]].drop_duplicates().values))  # noqa: E731
    assert [e for e in epochs("em") if e[0] >= 1] == [(1, 2), (1, 3), (2, 2)]
    assert [e for e in epochs("loss") if e[0] >= 1] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]
    with pytest.raises(ConfigError, match="eval_every"):
        build_config(**common, eval_every=0)


def test_per_question_views_add_rows_not_generation(tmp_path):
    common = dict(n_people=60, model="pythia-tiny", stage0_epochs=1, stage1_epochs=1, stage2_epochs=1, n_seeds=2, n_jobs=1)
    common["cache_dir"] = str(tmp_path)
    plain, _ = run_experiment(build_config(**common), progress=False)
    viewed, _ = run_experiment(build_config(**common, score_by_question=True), progress=False)
    views = viewed[viewed["subset"].str.contains(":")]
    assert {"d1consis:birth", "d2consis:nationality", "no_qd_baseline:gender"} <= set(views["subset"])
    assert sorted(views["stage"].unique()) == [1, 2]  # before and after Stage 2, for the gain
    assert viewed[~viewed["subset"].str.contains(":")].reset_index(drop=True).equals(plain)  # views change nothing else
    table = stats.gaps_by_question(viewed)
    assert len(table) == 6 and table["n_seeds"].eq(2).all()
    assert table["gap"].sub(table["d1consis"] - table["d2consis"]).abs().max() < 2e-3  # rounded to 3 decimals
    pooled = stats.gaps_by_question(viewed, pool=("nationality", "region"))
    assert pooled["question"].iloc[-1] == "nationality+region" and pooled.iloc[:-1].equals(table)
    both = table.set_index("question").loc[["nationality", "region"], ["d1consis", "d2consis"]].mean()
    assert (pooled.iloc[-1][["d1consis", "d2consis"]] - both).abs().max() < 2e-3
    with pytest.raises(ValueError, match="`pool`"):
        stats.gaps_by_question(viewed, pool=("nationality", "shoe size"))
    with pytest.raises(ValueError, match="score_by_question"):
        stats.gaps_by_question(plain)
    with pytest.raises(ConfigError, match="score_by_question"):
        build_config(**common, score_by_question="yes")


def test_unknown_pretrained_model_names_the_parameter(tmp_path):
    with pytest.raises(ValueError, match="parameter `model`"):
        models_mod.load_pretrained(str(tmp_path / "no-such-model"))


@pytest.mark.slow
def test_stage1_is_shared_by_runs_differing_only_in_stage2(tmp_path):
    common = dict(n_people=60, model="pythia-tiny", stage0_epochs=2, stage1_epochs=2, n_seeds=2, n_jobs=1, cache_dir=str(tmp_path))
    short, _ = run_experiment(build_config(**common, stage2_epochs=1), progress=False)
    shared = sorted(p.name for p in tmp_path.glob("shared-*"))
    assert len(shared) == 2  # one per Stage-1 seed
    long, _ = run_experiment(build_config(**common, stage2_epochs=2), progress=False)
    assert sorted(p.name for p in tmp_path.glob("shared-*")) == shared  # reused, not retrained
    s1 = lambda m: m[m["stage"] <= 1].reset_index(drop=True)  # noqa: E731
    assert s1(short).equals(s1(long))
    # Stage 2 starts from identical weights (the short run's epoch 1 is also its last: it adds generation metrics, left out here)
    first_epoch = lambda m: m[(m["stage"] == 2) & (m["epoch"] == 1) & m["metric"].isin(["em", "loss"])].reset_index(drop=True)  # noqa: E731
    assert first_epoch(short).equals(first_epoch(long))
    other, _ = run_experiment(build_config(**common, stage2_epochs=1, lr=2e-3), progress=False)
    assert len(list(tmp_path.glob("shared-*"))) == 4  # a Stage-1 setting changed: retrained


def test_alias_alignment_reads_where_an_alias_row_points():
    """An alias whose input row is set to its person's row has cosine 1 with it; other people stay near the chance level."""
    from iml_nb.mechanisms import alignment as mechanism
    from iml_nb.people_qa.define import make_define_data

    cfg = build_config(n_people=60, model="pythia-tiny")
    model, tokenizer = base_model(cfg, PEOPLE)
    data = make_define_data(PEOPLE, cfg.data, 0, 0)
    rows = model.get_input_embeddings().weight
    with torch.no_grad():
        for entity in data.subsets["d1consis"]:
            rows[tokenizer.convert_tokens_to_ids(data.alias_of[entity])] = rows[tokenizer.convert_tokens_to_ids(entity)]
    out = mechanism.alignment(model, tokenizer, data, ("d1consis", "d2consis", "qd2incons"))
    assert set(out) == {"align_d1consis", "align_d2consis", "align_qd2incons"}
    assert out["align_d1consis"]["cos"] > 0.99 and abs(out["align_d1consis"]["cos_other"]) < 0.3
    assert abs(out["align_d2consis"]["cos"]) < 0.3  # untouched random rows


def test_two_hop_check_asks_each_stage2_question_three_ways(tmp_path, monkeypatch):
    from iml_nb.core.env import PROGRESS_LOG
    from iml_nb.people_qa.define import make_define_data
    from iml_nb.people_qa.knowledge import TWO_HOP_WAYS, two_hop_check

    cfg = build_config(n_people=60, model="pythia-tiny")
    model, tokenizer = base_model(cfg, PEOPLE)
    draw = make_define_data(PEOPLE, cfg.data, 0, 0)
    monkeypatch.setenv(PROGRESS_LOG, str(tmp_path / "progress.log"))
    table = two_hop_check(model, tokenizer, draw, mode="fast")
    assert (tmp_path / "progress.log").read_text().startswith("two-hop check: ")  # `run` shows the terminal what is scored
    assert list(table.columns) == ["subset", "attribute", "questions", *TWO_HOP_WAYS]
    assert table.groupby("subset")["questions"].sum().to_dict() == {s: len(draw.eval_sets[s]) for s in ("d1consis", "d2consis")}
    assert table[list(TWO_HOP_WAYS)].stack().between(0, 1).all()
    with pytest.raises(ValueError, match="`subsets`"):
        two_hop_check(model, tokenizer, draw, subsets=("qd1consis",), mode="fast")


@pytest.mark.slow
def test_knowledge_check_scores_each_attribute_zero_shot_and_after_a_warmup(tmp_path, monkeypatch):
    """Every attribute scored on the people held out of the warm-up, zero-shot and after it, beside the majority answer's share."""
    from iml_nb.core.env import PROGRESS_LOG
    from iml_nb.people_qa.knowledge import knowledge_check

    cfg = build_config(n_people=60, model="pythia-tiny")
    model, tokenizer = base_model(cfg, PEOPLE)
    monkeypatch.setenv(PROGRESS_LOG, str(tmp_path / "progress.log"))
    table = knowledge_check(model, tokenizer, PEOPLE[20:], PEOPLE[:20], warmup_epochs=2, lr=3e-3, mode="fast")
    steps = [line.split(":")[1].split()[-1] for line in (tmp_path / "progress.log").read_text().splitlines()]
    assert steps == ["zero-shot", "epoch(s)", "warm-up"]  # each minutes-long phase announced to `run`'s terminal
    assert set(table["attribute"]) == {"gender", "birth", "death", "region", "occupation", "nationality"}
    assert (table["people"] == 40).all() and table[["zero_shot", "after_warmup", "majority"]].stack().between(0, 1).all()
    with pytest.raises(ValueError, match="warm-up people"):
        knowledge_check(model, tokenizer, PEOPLE[20:], PEOPLE[:21], mode="fast")


def test_the_pretrained_checks_are_cached_for_a_resumed_run(tmp_path, monkeypatch):
    """The second call with the same settings reads both tables back without loading a model; other warm-up settings recompute."""
    from iml_nb.people_qa import knowledge, stage0

    cfg = build_config(n_people=60, model="pythia-tiny", eval_mode="fast", cache_dir=str(tmp_path))
    known, two_hop = knowledge.checks(cfg, PEOPLE[20:], PEOPLE[:20], 1)
    assert set(known["attribute"]) >= {"birth", "nationality"} and set(two_hop["subset"]) == {"d1consis", "d2consis"}

    def no_model(*args):
        raise AssertionError("a cached check loaded a model")

    monkeypatch.setattr(stage0, "base_model", no_model)
    again = knowledge.checks(cfg, PEOPLE[20:], PEOPLE[:20], 1)
    pd.testing.assert_frame_equal(again[0], known)
    pd.testing.assert_frame_equal(again[1], two_hop)
    assert stage0.checks_dir(cfg, PEOPLE[:20], 2) != stage0.checks_dir(cfg, PEOPLE[:20], 1)
    assert stage0.checks_dir(cfg, PEOPLE[:19], 1) != stage0.checks_dir(cfg, PEOPLE[:20], 1)
    assert stage0.checks_dir(
        build_config(n_people=60, model="pythia-tiny", eval_mode="fast", cache_dir=str(tmp_path), seed=1), PEOPLE[:20], 1
    ) != stage0.checks_dir(cfg, PEOPLE[:20], 1)  # the two-hop check asks seed 0's draw


def test_a_stage_ends_early_when_its_epoch_callback_says_so():
    model = torch.nn.Linear(2, 1)
    data = [0] * 8

    def loss_fn(m, batch, idx):
        return m(torch.ones(len(idx), 2)).pow(2).mean()

    losses = train_stage(model, data, TrainConfig(batch_size=4), 10, 0, lambda epoch, loss, steps: epoch >= 3, loss_fn=loss_fn)
    assert len(losses) == 3


def test_a_stage_stopped_midway_resumes_to_the_same_weights(tmp_path):
    """Killed in its 4th epoch's evaluation and run again with the same checkpoint, a stage ends exactly where an uninterrupted
    one does: weights, losses and the caller's rows (optimiser, schedule and shuffling restored); the rows of the killed epoch
    are not kept twice."""
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    data = list(range(16))
    cfg = TrainConfig(batch_size=4, lr=0.05, schedule="linear", warmup_steps=2)

    def loss_fn(m, batch, idx):
        return (m(x[idx]).squeeze(-1) - y[idx]).pow(2).mean()

    def fresh():
        torch.manual_seed(0)
        return torch.nn.Linear(3, 1)

    whole, rows = fresh(), []
    expected = train_stage(whole, data, cfg, 6, 7, lambda epoch, loss, steps: rows.append((epoch, loss)), loss_fn=loss_fn)

    checkpoint, first_rows = tmp_path / "stage.resume.pt", []

    def killed_in_epoch_4(epoch, loss, steps):
        first_rows.append((epoch, loss))
        if epoch == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_stage(fresh(), data, cfg, 6, 7, killed_in_epoch_4, loss_fn=loss_fn, checkpoint=checkpoint, extra={"rows": first_rows})
    assert [epoch for epoch, _ in first_rows] == [1, 2, 3, 4] and checkpoint.exists()
    resumed, later_rows = fresh(), []
    losses = train_stage(
        resumed,
        data,
        cfg,
        6,
        7,
        lambda epoch, loss, steps: later_rows.append((epoch, loss)),
        loss_fn=loss_fn,
        checkpoint=checkpoint,
        extra={"rows": later_rows},
    )
    assert losses == expected and later_rows == rows
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))


@pytest.mark.slow
def test_a_stage0_killed_midway_resumes_and_equals_an_uninterrupted_one(tmp_path):
    """A real (tiny) Stage 0 stopped in its 3rd epoch: run again, it continues after the 2nd and saves the same weights and metrics
    as one never stopped, and leaves no resume file behind."""
    import pandas as pd

    from iml_nb.people_qa.stage0 import run_stage0

    people = synthetic_people(20, seed=0)

    def stop_in_epoch_3(suite, model, tokenizer, mode, batch_size, max_new_tokens=8):
        stop_in_epoch_3.calls += 1
        if stop_in_epoch_3.calls == 3:
            raise KeyboardInterrupt
        return EvalSuite.run(suite, model, tokenizer, mode, batch_size)

    def counted(suite, model, tokenizer, mode, batch_size, max_new_tokens=8):
        counted.calls += 1
        return EvalSuite.run(suite, model, tokenizer, mode, batch_size)

    stop_in_epoch_3.calls = 0
    outcomes = {}
    for name in ("whole", "resumed"):
        cfg = build_config(n_people=20, model="pythia-tiny", stage0_epochs=4, cache_dir=str(tmp_path / name))
        if name == "resumed":
            with pytest.raises(KeyboardInterrupt):
                run_stage0(cfg, people, progress=False, score=stop_in_epoch_3)
            assert len(list((tmp_path / name).glob("stage0-*.resume.pt"))) == 1
        counted.calls = 0
        folder, rows = run_stage0(cfg, people, progress=False, score=counted)
        assert counted.calls == {"whole": 4, "resumed": 2}[name]  # resumed: only epochs 3 and 4 trained and scored again
        assert not list((tmp_path / name).glob("*.resume.pt"))
        outcomes[name] = (models_mod.load_saved(folder)[0].state_dict(), rows)
    (whole, whole_rows), (resumed, resumed_rows) = outcomes["whole"], outcomes["resumed"]
    pd.testing.assert_frame_equal(whole_rows, resumed_rows)
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)


@pytest.mark.slow
def test_stage0_goes_on_until_its_facts_reach_the_target(tmp_path):
    """stage0_target_em: Stage 0 trains its epochs, then epoch by epoch until the facts' EM reaches the target (at most 4x)."""
    from iml_nb.people_qa.stage0 import run_stage0

    def fake_score(suite, model, tokenizer, mode, batch_size, max_new_tokens=8):
        fake_score.calls += 1
        return {"stage0_facts": {"em": 0.1 * fake_score.calls}}

    def fake_train(model, data, cfg, epochs, seed, on_epoch_end, checkpoint=None, extra=None):
        for epoch in range(1, epochs + 1):
            if on_epoch_end(epoch, 1.0, epoch):
                break

    for target, epochs in ((0.0, 2), (0.55, 6), (0.99, 8)):  # 0: its 2 epochs; 0.55 at the 6th; never: capped at 4 x 2
        fake_score.calls = 0
        cfg = build_config(
            n_people=20, model="pythia-tiny", stage0_epochs=2, stage0_target_em=target, cache_dir=str(tmp_path / str(target))
        )
        _, rows = run_stage0(cfg, synthetic_people(20, seed=0), progress=False, train=fake_train, score=fake_score)
        assert rows["epoch"].max() == epochs
    with pytest.raises(ConfigError, match="`stage0_target_em`"):
        build_config(stage0_epochs=0, stage0_target_em=0.9)
