"""The main experiment's config: people, aliases, tags and stages (paper §2.2-2.6), and how a notebook's flat parameters fill it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iml_nb.core.config import OPTIMISER_NAMES, X1_SUBSETS, X2_SUBSETS, ModelConfig, RunConfig, TrainConfig
from iml_nb.core.parameters import Flat, require, require_int, require_number

WORD_ORDERS = ("tve", "tev", "vte", "vet", "etv", "evt")
# Tags a reader (and a pretrained model) already has a prior about, in place of random strings: (Define-dot, Define-bar). Both pairs
# are the reference's natural-language variants ("X according to wikipedia is E" / "... 4chan ...", "X stands for E" / "X is
# definitely not E"), written to read naturally in the vte order. "random": fresh random strings per seed (the paper's main design).
TAG_STYLES = {
    "random": None,
    "sources": ("according to Wikipedia is", "according to 4chan is"),
    "is_isnt": ("stands for", "is definitely not"),
    # The same words on the other tags: the control that tells IML from the model's prior about the words. IML predicts Define-dot
    # internalized more in both orientations; a prior alone, the gap's sign flipping with the words.
    "sources_swapped": ("according to 4chan is", "according to Wikipedia is"),
    "is_isnt_swapped": ("is definitely not", "stands for"),
}
# Where the definitions reach the model: "trained" as examples of their own (the paper's design), or "in_context": each definition
# written before every question about its alias, train and test alike, and never trained alone (the paper's in-context comparison).
DEFINITIONS = ("trained", "in_context")
STAGE_PLANS = {
    # name -> the define-experiment stages trained after the optional Stage 0 (docs/background.md)
    "one_stage": ("full",),
    "two_stage": ("stage1", "stage2"),
    "three_stage": ("stage1_only_defns", "stage1_only_qa", "stage2"),
}
# Default epochs per define stage of each plan (paper: 20 then 10; 20/20/10; 20). Our CPU two-stage default trains Stage 1 for 15:
# Stage-1 QA had plateaued by then (qd1consis EM .507 at 15 vs .491 at 20, 2 seeds), and it keeps the main run under 15 minutes.
PLAN_EPOCHS = {"one_stage": (20,), "two_stage": TrainConfig.stage_epochs, "three_stage": (20, 20, 10)}
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
    tags: str = "random"  # the tags' words: "random" strings, or natural-language ones (TAG_STYLES) for a pretrained model
    definitions: str = "trained"  # "trained" (paper) or "in_context" (DEFINITIONS)

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
        require(self.tags in TAG_STYLES, "tags", f"must be one of {tuple(TAG_STYLES)}, got {self.tags!r}")
        require(
            self.tags == "random" or self.fraction["d3consis"] == 0,
            "tags",
            f"{self.tags!r} names two tags; the third tag's subset needs tags: random (or frac_d3consis: 0)",
        )
        require(self.word_order in WORD_ORDERS, "word_order", f"must be one of {WORD_ORDERS}, got {self.word_order!r}")
        require(self.stage_plan in STAGE_PLANS, "stage_plan", f"must be one of {tuple(STAGE_PLANS)}, got {self.stage_plan!r}")
        require(self.definitions in DEFINITIONS, "definitions", f"must be one of {DEFINITIONS}, got {self.definitions!r}")
        require(
            self.definitions == "trained" or self.stage_plan == "one_stage",
            "definitions",
            f"'in_context' needs stage_plan: one_stage (the paper's); under {self.stage_plan!r} a stage of definitions alone would "
            "train on nothing",
        )
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
        require(
            self.data.tags == "random" or not self.model.from_scratch,
            "tags",
            f"{self.data.tags!r} tags are words a pretrained model has a prior about; a from-scratch model has none (use a pretrained "
            "`model` or tags: random)",
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


def grid(params: dict[str, Any], axis: str, values: Any, name: str | None = None) -> list[ExperimentConfig]:
    """One main-experiment config per value of `axis` (the rest `params`), every one built and checked now, before any compute.

    The one way sweeps, probes and gradient alignment declare their points; `name` is the notebook parameter holding `values`."""
    name = name or axis
    require(isinstance(values, (list, tuple)) and len(values) > 0, name, f"must be a non-empty list, got {values!r}")
    return [build_config(**{**params, axis: value}) for value in values]


def _check(params: dict) -> None:
    """The stage plan (its epochs' defaults depend on it) and the people source (a missing file fails before any compute)."""
    plan = params.get("stage_plan", DataConfig.stage_plan)
    require(plan in STAGE_PLANS, "stage_plan", f"must be one of {tuple(STAGE_PLANS)}, got {plan!r}")
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


# The notebooks' flat parameter names, per config section (stage<i>_epochs beyond the plan's stages are ignored).
PARAMETERS = Flat(
    ExperimentConfig,
    sections={
        "data": (
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
            "tags",
            "definitions",
        ),
        "model": ("model", "tie_embeddings", "gguf_file", "lora_rank"),
        "train": (
            "stage0_epochs",
            "stage1_epochs",
            "stage2_epochs",
            "stage3_epochs",
            "stage0_batch_size",
            *OPTIMISER_NAMES,
            "loss_on",
            "steps_batch_size",
            "stage0_target_em",
        ),
        "run": (
            "seed",
            "n_seeds",
            "n_seeds_stage2",
            "stage0_seed",
            "n_jobs",
            "eval_mode",
            "eval_every",
            "score_by_question",
            "eval_batch_size",
            "max_new_tokens",
            "output_dir",
            "cache_dir",
            "device",
        ),
    },
    rename={"model": "name"},
    subsets=FRACTION_NAMES,
    stage_epochs=lambda params: PLAN_EPOCHS[params.get("stage_plan", DataConfig.stage_plan)],
    check=_check,
)


def build_config(**params: Any) -> ExperimentConfig:
    """The frozen main-experiment config from a notebook's flat parameters; unknown or invalid names fail here, before any compute."""
    return PARAMETERS.build(**params)
