"""The data as Hugging Face datasets: what `python -m iml_nb data` writes loads back with `datasets` and equals what the training
loop trains on (experiment.stage_training_examples) and evaluates on (the draw's test sets)."""

import subprocess
import sys

import pandas as pd
import pytest

from iml_nb.core.parameters import ConfigError
from iml_nb.people_qa import export
from iml_nb.people_qa.config import build_config
from iml_nb.people_qa.define import make_define_data, stage0_examples
from iml_nb.people_qa.experiment import stage_training_examples
from iml_nb.people_qa.people import load_people


@pytest.mark.slow
def test_written_splits_load_back_and_equal_what_training_sees(tmp_path):
    from datasets import load_dataset

    cfg = build_config(n_people=60, n_seeds=2, n_seeds_stage2=2, seed=3)
    folder = export.write(cfg, tmp_path / "data")
    loaded = load_dataset(str(folder))
    assert set(loaded) == set(export.frames(cfg)) and {"stage0", "train_stage1", "train_stage2", "test_d1consis"} <= set(loaded)
    people = load_people(cfg)
    facts = stage0_examples(people)
    stage2 = loaded["train_stage2"].to_pandas()
    for seed in (3, 4):
        for s2 in (0, 1):
            draw = make_define_data(people, cfg.data, seed, s2)
            want = [(ex.prompt, ex.answer) for ex in stage_training_examples(cfg, facts, draw, seed, 2, s2)]
            got = stage2[(stage2["seed"] == seed) & (stage2["seed_stage2"] == s2)]
            assert list(zip(got["prompt"], got["answer"])) == want
            test = loaded["test_d1consis"].to_pandas()
            test = test[(test["seed"] == seed) & (test["seed_stage2"] == s2)]
            assert list(test["answer"]) == [ex.answer for ex in draw.eval_sets["d1consis"]]
    stage1 = loaded["train_stage1"].to_pandas()
    assert (stage1["seed_stage2"] == export.SHARED).all()
    assert list(stage1[stage1["seed"] == 3]["prompt"]) == [
        ex.prompt for ex in stage_training_examples(cfg, facts, make_define_data(people, cfg.data, 3, 0), 3, 1, pd.NA)
    ]
    assert "test_d1consis" in (folder / "README.md").read_text()


@pytest.mark.slow
def test_data_command_checks_parameters_before_writing(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "iml_nb", "data", str(tmp_path / "d"), "-p", "n_peple", "50"], capture_output=True, text=True
    )
    assert out.returncode != 0 and "n_peple" in out.stderr and not (tmp_path / "d").exists()
    with pytest.raises(ConfigError, match="n_people"):
        build_config(n_people=3)


@pytest.mark.slow
def test_the_readme_training_example_runs_on_exported_data(tmp_path, monkeypatch):
    """The README's plain transformers loop, as written, on exported data, with a tiny from-scratch model saved as `MODEL`."""
    from pathlib import Path

    import torch

    from iml_nb.lm import model as models
    from iml_nb.people_qa.stage0 import base_model

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("<!-- training example: tests/test_export.py runs this block -->\n```python\n", 1)[1].split("```", 1)[0]
    cfg = build_config(n_people=20, n_seeds=1, model="pythia-tiny")
    export.write(cfg, tmp_path / "my_data")
    network, tokenizer = base_model(cfg, load_people(cfg))
    models.save(network, tokenizer, tmp_path / "model")
    before = {k: v.clone() for k, v in network.state_dict().items()}
    monkeypatch.chdir(tmp_path)
    scope = {"MODEL": str(tmp_path / "model"), "EPOCHS": 1}
    exec(compile(block, "README.md", "exec"), scope)
    trained = scope["model"].state_dict()
    assert any(not torch.equal(before[k], trained[k]) for k in before)  # it trained
    assert len(scope["split"]) > 0 and set(scope["split"]["seed_stage2"]) <= {export.SHARED, 0}
