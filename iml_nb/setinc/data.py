"""Set inclusion from scratch: variables hiding a number, `defineK` definitions and true/false membership questions (paper §7)."""

from __future__ import annotations

import dataclasses
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from iml_nb.core.config import OPTIMISER_NAMES, TAG_OF_SUBSET, X1_SUBSETS, X2_SUBSETS, ModelConfig, RunConfig, TrainConfig
from iml_nb.core.parameters import Flat, require, require_int
from iml_nb.people_qa.define import Example, _split

TAGS = ("define1", "define2", "define3")  # fixed tokens, as in the reference (not random strings)
SUBSETS = ("qd1consis", "qd2incons", "q", "d1consis", "d2consis", "d3consis")
X1 = tuple(s for s in X1_SUBSETS if s in SUBSETS)  # in the text experiment's split order
X2 = tuple(s for s in X2_SUBSETS if s in SUBSETS)
DEFAULT_FRACTIONS = {"qd1consis": 0.4, "qd2incons": 0.4, "q": 0.0, "d1consis": 0.1, "d2consis": 0.1, "d3consis": 0.0}


@dataclass(frozen=True)
class SetIncConfig:
    """The data of the set-inclusion experiment (reference config `pythia70m_tokpervar_bs512_n8_i1`, at CPU scale)."""

    n_vars: int = 1000  # paper: 8000
    # Our CPU defaults (docs/results.md, "Set inclusion": the clearest Stage-1 effect we measured); the paper's are 100 and 8
    max_x: int = 20  # hidden numbers and question numbers are 0 .. max_x-1 (the reference: 99)
    n_nums: int = 4  # numbers per question
    n_train_qs: int = 12  # training questions per Stage-1 variable, half true and half false
    n_test_qs: int = 12  # held-out questions per variable, half true and half false
    resample: bool = True  # ours: fresh training questions every epoch (fixed questions were memorised on CPU; docs/background.md)
    var_len: int = 3  # letters per variable name; one token each
    fractions: tuple[tuple[str, float], ...] = tuple(DEFAULT_FRACTIONS.items())

    def __post_init__(self) -> None:
        require_int(self.n_vars, "n_vars", minimum=10)
        require_int(self.n_nums, "n_nums", minimum=1)
        require_int(self.max_x, "max_x", minimum=self.n_nums + 1)  # a false question needs n_nums numbers other than x
        for name in ("n_train_qs", "n_test_qs"):
            require_int(getattr(self, name), name, minimum=2)
            require(getattr(self, name) % 2 == 0, name, f"must be even (half true, half false), got {getattr(self, name)}")
        require(isinstance(self.resample, bool), "resample", f"must be true or false, got {self.resample!r}")
        require_int(self.var_len, "var_len", minimum=1)
        require(26**self.var_len >= self.n_vars, "var_len", f"{self.var_len} letters give fewer than n_vars={self.n_vars} names")
        fr = dict(self.fractions)
        unknown = set(fr) - set(SUBSETS)
        require(not unknown, "fractions", f"unknown subset(s) {sorted(unknown)}; known: {list(SUBSETS)}")
        for name, value in fr.items():
            require(isinstance(value, (int, float)) and 0 <= value <= 1, f"frac_{name}", f"must be in [0, 1], got {value!r}")
        total = sum(fr.values())
        require(abs(total - 1) < 1e-6, "frac_*", f"the subset fractions must sum to 1, they sum to {total:.6g}")

    @property
    def fraction(self) -> dict[str, float]:
        return {name: dict(self.fractions).get(name, 0.0) for name in SUBSETS}


@dataclass(frozen=True)
class Variable:
    name: str
    x: int  # the hidden number, what the QA is about
    x_false: int  # the wrong number an inconsistent (define2) definition names
    subset: str


@dataclass(frozen=True)
class SetIncData:
    variables: tuple[Variable, ...]
    definitions: dict  # subset -> tuple[Example, ...]
    train_qa: dict  # subset -> tuple[Example, ...] (X1 only; redrawn every epoch when `resample`)
    eval_sets: dict  # test-set name -> tuple[Example, ...]
    test_lists: dict  # variable -> frozenset of its test questions' number sets, which training never shows

    def atoms(self) -> list[str]:
        return sorted({v.name for v in self.variables} | set(TAGS))


def question(var: str, numbers: Sequence[int], label: bool, subset: str, x: int) -> Example:
    """`abc % 33 52 47 0 96 19 48 69 =` -> `true`: is the hidden number of abc in the list?"""
    return Example(f"{var} % {' '.join(map(str, numbers))} =", "true" if label else "false", "qa", subset, var, str(x))


def draw_question(rng: random.Random, x: int, label: bool, cfg: SetIncConfig) -> tuple[int, ...]:
    """True: x and n-1 other numbers, shuffled; false: n numbers other than x (the reference's n_intersection = 1)."""
    others = rng.sample([n for n in range(cfg.max_x) if n != x], cfg.n_nums - label)
    numbers = others + [x] if label else others
    rng.shuffle(numbers)
    return tuple(numbers)


def questions(v: Variable, n: int, rng: random.Random, cfg: SetIncConfig, avoid: frozenset = frozenset()) -> list[tuple]:
    """n distinct (numbers, label) pairs, half true, none of them in `avoid` (as sets: the test never repeats a training list)."""
    out: list[tuple] = []
    seen = set(avoid)
    for label in [True] * (n // 2) + [False] * (n // 2):
        while True:
            numbers = draw_question(rng, v.x, label, cfg)
            if frozenset(numbers) not in seen:
                seen.add(frozenset(numbers))
                out.append((numbers, label))
                break
    return out


def train_questions(data: SetIncData, cfg: SetIncConfig, seed: int) -> tuple[Example, ...]:
    """Training QA for one epoch: the fixed set, or (resample) a fresh draw from Random(seed) that avoids every test list."""
    if not cfg.resample:
        return tuple(ex for s in X1 for ex in data.train_qa[s])
    rng = random.Random(seed)
    return tuple(
        question(v.name, nums, label, v.subset, v.x)
        for v in data.variables
        if v.subset in X1
        for nums, label in questions(v, cfg.n_train_qs, rng, cfg, data.test_lists[v.name])
    )


def make_setinc_data(cfg: SetIncConfig, seed: int, seed_stage2: int) -> SetIncData:
    """One draw: variables, hidden numbers and the X1 split from Random(seed); the X2 tags from Random(seed_stage2)."""
    rng = random.Random(seed)
    names: list[str] = []
    taken: set[str] = set()
    while len(names) < cfg.n_vars:
        name = "".join(rng.choice(string.ascii_lowercase) for _ in range(cfg.var_len))
        if name not in taken:
            taken.add(name)
            names.append(name)
    fr = cfg.fraction
    x2_total = sum(fr[s] for s in X2)
    stage1 = _split(names, {**{s: fr[s] for s in X1}, "pool": x2_total}, X1 + ("pool",), remainder_to="pool")
    pool = sorted(stage1.pop("pool"))
    random.Random(seed_stage2).shuffle(pool)
    shares = {s: fr[s] / x2_total if x2_total else 0.0 for s in X2}
    subset_of = {n: s for s, group in {**stage1, **_split(pool, shares, X2, remainder_to="d3consis")}.items() for n in group}

    variables = []
    for name in names:
        x = rng.randrange(cfg.max_x)
        x_false = rng.choice([n for n in range(cfg.max_x) if n != x])
        variables.append(Variable(name, x, x_false, subset_of[name]))
    definitions = {
        s: tuple(
            Example(
                f"{TAGS[TAG_OF_SUBSET[s] - 1]} {v.name} %", str(v.x_false if s == "qd2incons" else v.x), "definition", s, v.name, str(v.x)
            )
            for v in variables
            if v.subset == s
        )
        for s in SUBSETS
        if s != "q"
    }
    train_qa: dict[str, list] = {s: [] for s in X1}
    eval_sets: dict[str, list] = {s: [] for s in SUBSETS}
    test_lists = {}
    for v in variables:
        test = questions(v, cfg.n_test_qs, rng, cfg)
        eval_sets[v.subset] += [question(v.name, nums, label, v.subset, v.x) for nums, label in test]
        test_lists[v.name] = frozenset(frozenset(nums) for nums, _ in test)
        if v.subset in X1:
            train_qa[v.subset] += [
                question(v.name, nums, label, v.subset, v.x) for nums, label in questions(v, cfg.n_train_qs, rng, cfg, test_lists[v.name])
            ]
    return SetIncData(
        tuple(variables),
        definitions,
        {s: tuple(v) for s, v in train_qa.items()},
        {s: tuple(v) for s, v in eval_sets.items() if v},
        test_lists,
    )


def stage_examples(data: SetIncData, cfg: SetIncConfig, stage: str, epoch_seed: int) -> tuple[Example, ...]:
    """Stage 1: X1 QA (this epoch's draw) + X1 definitions; Stage 2: X2 definitions only (reference train modes)."""
    if stage == "stage1":
        return train_questions(data, cfg, epoch_seed) + tuple(d for s in ("qd1consis", "qd2incons") for d in data.definitions[s])
    if stage == "stage2":
        return tuple(d for s in X2 for d in data.definitions[s])
    raise ValueError(f"unknown set-inclusion stage {stage!r}; known: stage1, stage2")


def preview(data: SetIncData, cfg: SetIncConfig, epoch_seed: int = 0) -> pd.DataFrame:
    """One example and the count of each (what, subset, kind): Stage-1 and Stage-2 training data and the test sets."""

    rows = []
    groups = {
        "stage 1 train": stage_examples(data, cfg, "stage1", epoch_seed),
        "stage 2 train": stage_examples(data, cfg, "stage2", 0),
        "test": tuple(ex for s in SUBSETS for ex in data.eval_sets.get(s, ())),
    }
    for what, examples in groups.items():
        for (subset, kind), group in pd.DataFrame(
            [(e.subset, e.kind, f"{e.prompt} {e.answer}") for e in examples], columns=["subset", "kind", "text"]
        ).groupby(["subset", "kind"], sort=False):
            rows.append({"data": what, "subset": subset, "kind": kind, "n": len(group), "example": group["text"].iloc[0]})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class SetIncExperimentConfig:
    """The set-inclusion experiment: its own data, and the shared model, training and run sections, at our CPU defaults (a small
    tied model, questions redrawn every epoch; `params/04_set_inclusion_gpu.yaml` holds the paper's scale)."""

    data: SetIncConfig = field(default_factory=SetIncConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="pythia-tiny", tie_embeddings=True))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(stage0_epochs=0, stage_epochs=(45, 20), lr=2e-3))
    run: RunConfig = field(default_factory=lambda: RunConfig(n_seeds=4))

    def __post_init__(self) -> None:
        require(len(self.train.stage_epochs) == 2, "stage_epochs", "set inclusion has two stages")
        require(
            self.model.from_scratch,
            "model",
            "set inclusion trains from scratch (its vocabulary is numbers and 3-letter variables); give a named size",
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The notebook's flat parameter names, per config section.
PARAMETERS = Flat(
    SetIncExperimentConfig,
    sections={
        "data": tuple(f.name for f in dataclasses.fields(SetIncConfig) if f.name != "fractions"),
        "model": ("model", "tie_embeddings"),
        "train": ("stage1_epochs", "stage2_epochs", *OPTIMISER_NAMES, "loss_on"),
        "run": ("seed", "n_seeds", "n_seeds_stage2", "n_jobs", "eval_batch_size", "output_dir", "cache_dir", "device"),
    },
    rename={"model": "name"},
    subsets=SUBSETS,
)
