"""Unit tests of the define-experiment generator (no model)."""

import subprocess
import sys

import pytest

from iml_nb.core.parameters import ConfigError
from iml_nb.people_qa.config import DataConfig, build_config
from iml_nb.people_qa.define import (
    BY_QUESTION,
    EA_TEMPLATE,
    Example,
    make_define_data,
    question_type,
    replay_sample,
    stage0_examples,
    with_question_views,
)
from iml_nb.people_qa.people import QUESTION_TYPES, synthetic_people

PEOPLE = synthetic_people(200, seed=0)
CFG = DataConfig(n_people=200)


@pytest.fixture(scope="module")
def data():
    return make_define_data(PEOPLE, CFG, seed=3, seed_stage2=0)


def test_subsets_are_disjoint_and_sized(data):
    seen = set()
    for name, ents in data.subsets.items():
        assert not seen & set(ents), name
        seen |= set(ents)
    assert seen == {p.name for p in PEOPLE}
    fr = CFG.fraction
    for name in ("qd1consis", "qd2incons", "q", "q_no_replacement_baseline"):
        assert len(data.subsets[name]) == round(200 * fr[name])
    assert len(data.subsets["d1consis"]) == len(data.subsets["d2consis"]) == 20


def test_aliases_and_tags_are_unique_random_strings(data):
    aliases = list(data.alias_of.values())
    assert len(set(aliases)) == len(aliases) == 200
    assert all(a.startswith("<|") and a.endswith("|>") and len(a) == 9 for a in aliases)
    assert len(set(data.tags)) == 3 and not set(data.tags) & set(aliases)
    other = make_define_data(PEOPLE, CFG, seed=4, seed_stage2=0)
    assert other.tags != data.tags and set(other.alias_of.values()) != set(aliases)


def test_consistent_definitions_name_the_entity_their_qa_is_about(data):
    defs = [ex for ex in data.train["stage1"] if ex.kind == "definition"]
    alias_to_entity = {a: e for e, a in data.alias_of.items()}
    for ex in defs:
        tag, alias = ex.prompt.split(" ")
        if ex.subset == "qd1consis":
            assert tag == data.tags[0] and alias_to_entity[alias] == ex.answer
        else:
            assert ex.subset == "qd2incons" and tag == data.tags[1]
            # a derangement: the definition names someone else of the same subset
            assert alias_to_entity[alias] != ex.answer and alias_to_entity[alias] in data.subsets["qd2incons"]
    assert sum(ex.subset == "qd2incons" for ex in defs) == len(data.subsets["qd2incons"])


def test_qa_uses_true_entity_and_holds_out_exactly_one_question_per_alias(data):
    train_qa = [ex for ex in data.train["stage1"] if ex.kind in ("qa", "ent_assoc")]
    person = {p.name: p for p in PEOPLE}
    for ex in train_qa:
        assert ex.alias in ex.prompt or ex.entity in ex.prompt
        if ex.kind == "qa":
            assert ex.answer in {person[ex.entity].answer(q) for q in ("gender", "birth", "death", "region", "occupation", "nationality")}
    for s in ("qd1consis", "qd2incons", "q"):
        n_train = sum(ex.subset == s for ex in train_qa)
        n_test = len(data.eval_sets.get(s, ())) + len(data.eval_sets.get(f"ent_assoc_{s}", ()))
        assert n_train == 6 * len(data.subsets[s]) and n_test == len(data.subsets[s])  # 7 question types with ea_train
        held = {(ex.prompt, ex.answer) for ex in data.eval_sets[s]}
        assert not held & {(ex.prompt, ex.answer) for ex in train_qa}


def test_stage2_has_only_new_definitions_and_x2_qa_is_test_only(data):
    stage2 = data.train["stage2"]
    assert {ex.kind for ex in stage2} == {"definition"}
    assert {ex.subset for ex in stage2} == {"d1consis", "d2consis"}
    x2_aliases = {data.alias_of[e] for s in ("d1consis", "d2consis", "no_qd_baseline") for e in data.subsets[s]}
    assert not any(ex.alias in x2_aliases for ex in data.train["stage1"])
    assert len(data.eval_sets["d1consis"]) == 6 * len(data.subsets["d1consis"])


def test_entity_association_sets(data):
    ea = data.eval_sets["ent_assoc_d1consis"]
    assert all(ex.prompt == f"Q: {EA_TEMPLATE.format(ex.alias)}\nA:" and data.alias_of[ex.answer] == ex.alias for ex in ea)
    swapped = data.eval_sets["ent_assoc_qd2incons_swapped"]
    defs = {ex.prompt.split(" ")[1]: ex.answer for ex in data.train["stage1"] if ex.subset == "qd2incons" and ex.kind == "definition"}
    assert all(defs[ex.alias] == ex.answer for ex in swapped)  # scored against the entity the wrong definition named
    assert all(data.alias_of[ex.answer] != ex.alias for ex in swapped)


def test_d2incons_swaps_aliases_pairwise(data):
    alias_to_entity = {a: e for e, a in data.alias_of.items()}
    for ex in data.eval_sets["d2incons"]:
        assert alias_to_entity[ex.alias] != ex.entity and alias_to_entity[ex.alias] in data.subsets["d2consis"]


def test_stage1_does_not_depend_on_stage2_seed():
    a = make_define_data(PEOPLE, CFG, seed=3, seed_stage2=0)
    b = make_define_data(PEOPLE, CFG, seed=3, seed_stage2=1)
    assert a.train["stage1"] == b.train["stage1"]
    assert a.eval_sets["qd1consis"] == b.eval_sets["qd1consis"]
    assert a.subsets["d1consis"] != b.subsets["d1consis"]


@pytest.mark.parametrize("order", ["tve", "tev", "vte", "vet", "etv", "evt"])
def test_word_orders(order):
    d = make_define_data(PEOPLE, DataConfig(n_people=200, word_order=order), seed=1, seed_stage2=0)
    ex = next(ex for ex in d.train["stage2"] if ex.subset == "d1consis")
    fields = {"t": d.tags[0], "v": ex.alias, "e": ex.entity}
    assert f"{ex.prompt} {ex.answer}" == " ".join(fields[c] for c in order)


def test_stage_plans():
    three = make_define_data(PEOPLE, DataConfig(n_people=200, stage_plan="three_stage"), seed=1, seed_stage2=0)
    assert {ex.kind for ex in three.train["stage1_only_defns"]} == {"definition"}
    assert "definition" not in {ex.kind for ex in three.train["stage1_only_qa"]}
    one = make_define_data(PEOPLE, DataConfig(n_people=200, stage_plan="one_stage"), seed=1, seed_stage2=0)
    assert {ex.subset for ex in one.train["full"] if ex.kind == "definition"} == {"qd1consis", "qd2incons", "d1consis", "d2consis"}


def test_alpha_subsets_and_random_tags():
    fr = dict(
        qd1consis=0.2,
        qd1incons=0.05,
        qd2consis=0.05,
        qd2incons=0.2,
        qd4consis=0.1,
        q=0.1,
        q_no_replacement_baseline=0.0,
        d1consis=0.1,
        d2consis=0.1,
        d3consis=0.05,
        no_qd_baseline=0.05,
    )
    cfg = build_config(n_people=200, **{f"frac_{k}": v for k, v in fr.items()}).data
    d = make_define_data(PEOPLE, cfg, seed=2, seed_stage2=0)
    defs = [ex for ex in d.train["stage1"] if ex.kind == "definition"]
    assert {ex.subset for ex in defs} == {"qd1consis", "qd1incons", "qd2consis", "qd2incons", "qd4consis"}
    q4_tags = {ex.prompt.split(" ")[0] for ex in defs if ex.subset == "qd4consis"}
    assert len(q4_tags) == len(d.subsets["qd4consis"]) and not q4_tags & set(d.tags)
    assert set(d.random_tags) == q4_tags and q4_tags <= set(d.atoms())


def test_replay_sample_is_seeded():
    facts = stage0_examples(PEOPLE)
    assert len(facts) == 6 * len(PEOPLE)
    a, b = replay_sample(facts, 0.5, 7), replay_sample(facts, 0.5, 7)
    assert a == b and len(a) == len(facts) // 2 and a != replay_sample(facts, 0.5, 8)


@pytest.mark.slow
def test_same_seed_same_data_in_another_process():
    code = (
        "from iml_nb.people_qa.config import DataConfig; from iml_nb.people_qa.define import make_define_data; "
        "from iml_nb.people_qa.people import synthetic_people;"
        "import hashlib; d = make_define_data(synthetic_people(200, 0), DataConfig(n_people=200), 5, 1);"
        "print(hashlib.sha256(repr((d.train, sorted(d.eval_sets.items()))).encode()).hexdigest())"
    )
    here = make_define_data(PEOPLE, CFG, 5, 1)
    import hashlib

    expected = hashlib.sha256(repr((here.train, sorted(here.eval_sets.items()))).encode()).hexdigest()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == expected


def test_aliases_and_tags_come_from_the_fixed_pool():
    from iml_nb.people_qa.define import string_pools

    aliases, tags = string_pools(CFG)
    assert len(aliases) == 8 * 200 and len(set(aliases)) == len(aliases) and not set(aliases) & set(tags)
    assert string_pools(CFG) == (aliases, tags)  # deterministic from people_seed
    for seed in (0, 1):
        d = make_define_data(PEOPLE, CFG, seed, 0)
        assert set(d.alias_of.values()) <= set(aliases) and set(d.tags) <= set(tags)
    fresh = make_define_data(PEOPLE, DataConfig(n_people=200, alias_pool=0), 0, 0)
    assert not set(fresh.alias_of.values()) <= set(aliases)  # the paper's way: new random strings per seed


@pytest.mark.slow
def test_multi_piece_aliases_share_their_pieces_and_tokenize_into_them():
    from iml_nb.lm.vocab import build_word_tokenizer

    cfg = DataConfig(n_people=200, alias_tokens=3)
    d = make_define_data(PEOPLE, cfg, 0, 0)
    aliases = list(d.alias_of.values())
    assert len(set(aliases)) == len(aliases) and all(len(a.split()) == 3 for a in aliases)
    pieces = [p for a in aliases for p in a.split()]
    assert len(set(pieces)) < len(pieces)  # pieces are reused across aliases: an alias is a composition, not one row
    assert set(pieces) <= set(d.atoms()) and not set(aliases) & set(d.atoms())
    example = next(ex for ex in d.train["stage1"] if ex.alias)
    tokenizer = build_word_tokenizer([example.prompt], d.atoms())
    assert [t for t in tokenizer.tokenize(example.prompt) if t.startswith("<|")] == example.alias.split()
    # one piece per alias is the default and keeps the default draw unchanged
    one_piece = make_define_data(PEOPLE, DataConfig(n_people=200, alias_tokens=1), 0, 0)
    assert one_piece == make_define_data(PEOPLE, DataConfig(n_people=200), 0, 0)


@pytest.mark.slow
def test_multi_piece_aliases_are_pieces_of_the_run_vocabulary():
    from iml_nb.people_qa.config import build_config
    from iml_nb.people_qa.stage0 import base_model

    cfg = build_config(n_people=200, alias_tokens=3, model="pythia-tiny")
    _, tokenizer = base_model(cfg, PEOPLE)
    d = make_define_data(PEOPLE, cfg.data, 0, 0)
    alias = next(iter(d.alias_of.values()))
    assert tokenizer.tokenize(alias) == alias.split()
    assert tokenizer.unk_token_id not in tokenizer.convert_tokens_to_ids(d.atoms())


def test_natural_language_tags_replace_the_random_ones_and_nothing_else():
    natural = make_define_data(PEOPLE, DataConfig(n_people=200, tags="sources", word_order="vte"), seed=3, seed_stage2=0)
    plain = make_define_data(PEOPLE, DataConfig(n_people=200, word_order="vte"), seed=3, seed_stage2=0)
    assert natural.alias_of == plain.alias_of and natural.subsets == plain.subsets  # the same seed draws the same world
    defs = {ex.subset: ex for ex in natural.train["stage2"] if ex.kind == "definition"}
    alias = defs["d1consis"].alias
    assert defs["d1consis"].prompt == f"{alias} according to Wikipedia is"  # reads "X according to Wikipedia is E"
    assert defs["d2consis"].prompt.endswith("according to 4chan is")
    swapped = make_define_data(PEOPLE, DataConfig(n_people=200, tags="sources_swapped", word_order="vte"), seed=3, seed_stage2=0)
    defs = {ex.subset: ex for ex in swapped.train["stage2"] if ex.kind == "definition"}
    assert defs["d1consis"].prompt == f"{alias} according to 4chan is" and defs["d2consis"].prompt.endswith("according to Wikipedia is")
    with pytest.raises(ConfigError, match="tags"):
        DataConfig(tags="tabloid")
    with pytest.raises(ConfigError, match="tags"):
        DataConfig(tags="is_isnt", fractions=(("d1consis", 0.5), ("d3consis", 0.5)))
    with pytest.raises(ConfigError, match="pretrained"):
        build_config(tags="sources")  # the default model is trained from scratch: no prior about any word
    assert build_config(tags="is_isnt", model="smollm2-135m").data.tags == "is_isnt"


def test_question_views_partition_each_qa_test_set_by_question_type(data):
    viewed = with_question_views(data)
    assert {k: v for k, v in viewed.eval_sets.items() if ":" not in k} == data.eval_sets  # the original sets are untouched
    for s in BY_QUESTION:
        views = {k.split(":")[1]: v for k, v in viewed.eval_sets.items() if k.startswith(f"{s}:")}
        assert set(views) == {q for q, _ in QUESTION_TYPES}  # synthetic people answer all six
        assert sorted(ex.prompt for v in views.values() for ex in v) == sorted(ex.prompt for ex in data.eval_sets[s])
        assert all(question_type(ex) == q for q, v in views.items() for ex in v)
    with pytest.raises(ValueError, match="not a question"):
        question_type(Example("Q: who?\nA:", "x", "qa", "q", "", "x"))


def test_definitions_in_context_precede_every_question_about_their_alias_and_are_never_trained():
    cfg = DataConfig(n_people=200, stage_plan="one_stage", definitions="in_context")
    inctx = make_define_data(PEOPLE, cfg, seed=3, seed_stage2=0)
    trained = make_define_data(PEOPLE, DataConfig(n_people=200, stage_plan="one_stage"), seed=3, seed_stage2=0)
    assert inctx.alias_of == trained.alias_of and inctx.subsets == trained.subsets  # the same world
    assert not any(ex.kind == "definition" for ex in inctx.train["full"])
    said = {d.alias: f"{d.prompt} {d.answer}" for d in trained.train["full"] if d.kind == "definition"}
    for name, items in {**inctx.eval_sets, "train": inctx.train["full"]}.items():
        for ex in items:
            if ex.alias in said:
                assert ex.prompt.startswith(said[ex.alias] + "\nQ: "), (name, ex.prompt)
            else:
                assert ex.prompt.startswith("Q: "), (name, ex.prompt)  # q, real names, never-defined aliases: as before
    wrong = [ex for ex in inctx.eval_sets["qd2incons"] if said[ex.alias].split(" ", 2)[2] != ex.entity]
    assert len(wrong) == len(inctx.eval_sets["qd2incons"])  # an inconsistent definition stays inconsistent in context
    assert question_type(inctx.eval_sets["d1consis"][0]) in {q for q, _ in QUESTION_TYPES}
    with pytest.raises(ConfigError, match="`definitions`.*one_stage"):
        DataConfig(definitions="in_context")  # two stages: Stage 2 would train nothing
    with pytest.raises(ConfigError, match="`definitions`"):
        DataConfig(definitions="prompted")
