"""Training-speed variants of the default model against a baseline in the same process (none won, so none is kept).

    python -m benchmarks.train_variants [base fused foreach compile compile_loss ...]   # 1 thread, one epoch each after a warm-up

Each variant trains a copy of the same fresh network on the default Stage-1 data; utilisation as in `python -m benchmarks.bench`.
"""

import copy
import os
import sys

import torch
import torch.nn.functional as F

from benchmarks.bench import matmul_peak, model_flops, stage1_training, timed_epochs
from iml_nb.core import env  # noqa: F401  (the AVX2 pin, as every run has it)
from iml_nb.lm import train
from iml_nb.lm.encode import IGNORE, target_logits

VARIANTS = ("base", "fused", "foreach", "compile", "compile_loss")


def adamw(**kwargs):
    def make(model, cfg):
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay, **kwargs)

    return make


def compiled_network(model):
    body = torch.compile(model.base_model, dynamic=True)

    def loss(m, data, idx):
        input_ids, targets = data.batch(idx)
        sel = targets != IGNORE
        return F.cross_entropy(
            model.get_output_embeddings()(body(input_ids=input_ids, use_cache=False).last_hidden_state[sel]), targets[sel]
        )

    return loss


def compiled_loss(model):
    whole = torch.compile(
        lambda input_ids, targets: F.cross_entropy(target_logits(model, input_ids, targets)[0], targets[targets != IGNORE]), dynamic=False
    )
    return lambda m, data, idx: whole(*data.batch(idx))


def main(names):
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {unknown}; choose from {VARIANTS}")
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    cfg, fresh, data = stage1_training(os.environ.get("MODEL", "pythia-small"))
    peak = matmul_peak(torch.get_num_threads())
    print(f"{cfg.model.name}, {torch.get_num_threads()} thread(s), matmul peak {peak / 1e9:.1f} GFLOP/s")
    optimisers = {"fused": adamw(fused=True), "foreach": adamw(foreach=True)}
    losses = {"compile": compiled_network, "compile_loss": compiled_loss}
    default_optimiser = train.make_optimizer
    for name in names:
        model = copy.deepcopy(fresh)
        train.make_optimizer = optimisers.get(name, default_optimiser)
        loss_fn = losses[name](model) if name in losses else None
        try:
            warm, seconds, epoch_loss = timed_epochs(model, data, cfg.train, 1, loss_fn)
        finally:
            train.make_optimizer = default_optimiser
        print(
            f"{name:13s} warm-up {warm:5.1f} s, epoch {seconds:5.2f} s, utilisation {model_flops(model, data) / seconds / peak:.3f},"
            f" loss {epoch_loss:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:] or ["base", "fused", "foreach", "compile", "base"])
