"""Invalid parameters fail at config construction with a message naming the parameter."""

import dataclasses
import json

import pytest

from iml_nb.core.parameters import ConfigError
from iml_nb.people_qa import config, stage0
from iml_nb.people_qa.config import build_config


@pytest.mark.slow
def test_defaults_build():
    cfg = build_config()
    assert cfg.stages == ("stage1", "stage2") and cfg.train.stage_epochs == (15, 10)
    assert abs(sum(cfg.data.fraction.values()) - 1) < 1e-9


@pytest.mark.parametrize(
    "params, name",
    [
        (dict(frac_qd1consis=0.5), "frac_*"),
        (dict(n_people=-5), "n_people"),
        (dict(n_people=0), "n_people"),
        (dict(word_order="tvx"), "word_order"),
        (dict(alias_tokens=0), "alias_tokens"),
        (dict(alias_tokens=5), "alias_tokens"),
        (dict(model="pythia-huge"), "model"),
        (dict(stage_plan="four_stage"), "stage_plan"),
        (dict(batch_size=0), "batch_size"),
        (dict(lr=-1.0), "lr"),
        (dict(n_seeds=0), "n_seeds"),
        (dict(eval_mode="beam"), "eval_mode"),
        (dict(frac_qd1consis=-0.1, frac_q=0.45), "frac_qd1consis"),
        (dict(replay_frac=1.5), "replay_frac"),
        (dict(stage1_epochs=0), "stage1_epochs"),
        (dict(n_people=20, frac_qd2incons=0.05, frac_qd1consis=0.45), "frac_qd2incons"),
        (dict(ea_train="yes"), "ea_train"),
        (dict(n_people=2.5), "n_people"),
        (dict(device="tpu"), "device"),
        (dict(device=0), "device"),
    ],
)
def test_invalid_values_name_the_parameter(params, name):
    with pytest.raises(ConfigError, match=f"`{name.replace('*', '[*]')}`"):
        build_config(**params)


def test_unknown_parameter_is_listed():
    with pytest.raises(ConfigError, match="n_peple"):
        build_config(n_peple=10)


def test_config_is_frozen():
    cfg = build_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.data.n_people = 5  # type: ignore[misc]


def test_three_stage_epochs():
    cfg = build_config(stage_plan="three_stage", stage3_epochs=4)
    assert cfg.train.stage_epochs == (20, 20, 4)


def test_alpha_splits_each_tag_between_consistent_and_inconsistent():
    fr = build_config(alpha=0.8).data.fraction
    assert fr["qd1consis"] == pytest.approx(0.2) and fr["qd1incons"] == pytest.approx(0.05)
    assert fr["qd2incons"] == pytest.approx(0.2) and fr["qd2consis"] == pytest.approx(0.05)
    assert build_config(alpha=1.0).data.fraction == build_config().data.fraction
    with pytest.raises(ConfigError, match="`alpha`"):
        build_config(alpha=1.5)


def test_a_cuda_device_on_a_machine_without_one_fails_before_compute(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="`device`.*no CUDA device"):
        build_config(device="cuda")
    assert build_config(device="auto").run.device == "auto"  # auto falls back to the CPU


def test_cpu_device_keeps_the_cache_keys_of_runs_made_before_the_parameter_existed():

    cfg, explicit = build_config(), build_config(device="cpu")
    assert stage0.shared_stages_key(cfg, 0, "stage0-x") == stage0.shared_stages_key(explicit, 0, "stage0-x")


def test_from_dict_inverts_to_dict():
    cfg = build_config(n_people=200, alpha=0.75, word_order="vte", stage_plan="one_stage", stage1_epochs=4, lr=2e-3)
    assert config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # through JSON, as config.json stores it


def test_alpha_is_applied_however_the_config_is_built():
    from iml_nb.people_qa.config import DataConfig, from_dict

    direct = DataConfig(alpha=0.75)
    built = build_config(alpha=0.75)
    assert direct.fraction == built.data.fraction
    assert direct.fraction["qd1consis"] == 0.75 * 0.25 and direct.fraction["qd1incons"] == 0.25 * 0.25
    assert from_dict(built.to_dict()) == built  # applying twice changes nothing
    assert DataConfig().fraction == DataConfig(alpha=1.0).fraction


def test_building_a_config_imports_neither_torch_nor_transformers():
    import subprocess
    import sys

    code = (
        "import sys; from iml_nb.people_qa.config import build_config; build_config(model='pythia-base', alpha=0.75); "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_matched_steps_scale_each_define_stages_epochs_with_the_batch_size():
    at = {b: build_config(stage_plan="one_stage", stage1_epochs=20, batch_size=b, steps_batch_size=16) for b in (16, 64, 100)}
    assert [at[b].train.epochs(1) for b in (16, 64, 100)] == [20, 80, 125]  # 20 x b / 16, rounded up
    assert build_config(batch_size=64).train.epochs(2) == 10  # 0: the stage's own epochs
    with pytest.raises(ConfigError, match="`steps_batch_size`"):
        build_config(steps_batch_size=-1)
    # a define-stage setting: Stage 0's cache key ignores it, and at 0 the later stages' keys are those of before it existed
    assert stage0.stage0_key(at[16]) == stage0.stage0_key(at[64]) == stage0.stage0_key(build_config(stage_plan="one_stage"))
    two = {b: build_config(batch_size=64, steps_batch_size=b) for b in (0, 16)}
    assert stage0.shared_stages_key(two[0], 0, "x") != stage0.shared_stages_key(two[16], 0, "x")  # Stage 1 then trains longer


def test_a_stage0_target_changes_stage0s_cache_key_only_when_set():
    plain, target = build_config(), build_config(stage0_target_em=0.95)
    assert stage0.stage0_key(plain) != stage0.stage0_key(target)
