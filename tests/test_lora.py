"""LoRA for the define stages (peft): inside a stage only the adapters train; at its end they are merged, leaving a plain model
whose every weight trains again, with the embeddings untouched; rank 0 is full fine-tuning; runs with a rank cache apart."""

import pytest
import torch

from iml_nb.core.parameters import ConfigError
from iml_nb.lm import lora
from iml_nb.people_qa.config import build_config
from iml_nb.people_qa.people import load_people
from iml_nb.people_qa.stage0 import base_model, shared_stages_key, stage0_key


@pytest.fixture(scope="module")
def tiny():
    cfg = build_config(n_people=20, model="pythia-tiny")
    model, _ = base_model(cfg, load_people(cfg))
    return model


def test_adapters_train_alone_then_merge_into_a_plain_model(tiny):
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    ids = torch.randint(0, 50, (4, 8))
    with lora.adapters(tiny, 4) as model:
        assert model is tiny and 0 < lora.trainable_share(tiny) < 0.1
        assert all("lora_" in name for name, p in tiny.named_parameters() if p.requires_grad)
        optimizer = torch.optim.AdamW([p for p in tiny.parameters() if p.requires_grad], lr=1e-2)
        for _ in range(3):
            tiny(ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    after = tiny.state_dict()
    assert set(after) == set(before) and lora.trainable_share(tiny) == 1.0  # no adapter left; every weight trains again
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any("attention" in k for k in changed) and not any("embed" in k for k in changed)


def test_rank_zero_is_full_fine_tuning(tiny):
    with lora.adapters(tiny, 0) as model:
        assert model is tiny and lora.trainable_share(tiny) == 1.0


def test_lora_rank_is_checked_and_keys_the_define_stages_only():
    with pytest.raises(ConfigError, match="lora_rank"):
        build_config(lora_rank=-1)
    full, low = build_config(n_people=20, model="pythia-tiny"), build_config(n_people=20, model="pythia-tiny", lora_rank=8)
    assert stage0_key(full) == stage0_key(low)  # Stage 0 never uses adapters: one cached Stage 0 serves both
    assert shared_stages_key(full, 0, "s0") != shared_stages_key(low, 0, "s0")
    sparse = build_config(n_people=20, model="pythia-tiny", eval_every=2)  # the cached rows.csv holds fewer epochs
    assert shared_stages_key(full, 0, "s0") != shared_stages_key(sparse, 0, "s0")
