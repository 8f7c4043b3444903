"""The MNIST version of the experiment (paper §8, rebuilt from the poster): variables are 3×3 grids of digit classes, drawn with
real handwriting; entities are 3×3 grids of binary labels; a define tag is a pixel pattern along the top border.

Examples are kept as small integer specs (variable, kind, cell, which handwriting samples) and rendered to pixels per batch, so
every epoch can draw fresh handwriting without storing images.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from iml_nb.core.config import TAG_OF_SUBSET, X1_SUBSETS, X2_SUBSETS
from iml_nb.core.parameters import require, require_int

SUBSETS = ("qd1consis", "qd2incons", "d1consis", "d2consis")
X1 = tuple(s for s in X1_SUBSETS if s in SUBSETS)  # in the text experiment's split order
X2 = tuple(s for s in X2_SUBSETS if s in SUBSETS)
DEFAULT_FRACTIONS = {"qd1consis": 0.4, "qd2incons": 0.4, "d1consis": 0.1, "d2consis": 0.1}
CELL = 28  # one MNIST digit per cell
GRID = 3
TAG_ROWS = 6  # the top border that carries a definition's tag
HEIGHT, WIDTH = TAG_ROWS + GRID * CELL, GRID * CELL  # 90 x 84


@dataclass(frozen=True)
class VisionConfig:
    n_vars: int = 400
    tag_bits: int = 12  # blocks in the top border; each tag is a random pattern of them, the two tags differ
    holdout_cells: int = 3  # per Stage-1 variable, cells whose QA is never trained: the test questions (only a definition tells them)
    fractions: tuple[tuple[str, float], ...] = tuple(DEFAULT_FRACTIONS.items())

    def __post_init__(self) -> None:
        require_int(self.n_vars, "n_vars", minimum=10)
        require_int(self.tag_bits, "tag_bits", minimum=2)
        require(
            isinstance(self.holdout_cells, int) and 0 <= self.holdout_cells < GRID * GRID,
            "holdout_cells",
            f"must be an integer in [0, {GRID * GRID - 1}], got {self.holdout_cells!r}",
        )
        require(WIDTH % self.tag_bits == 0, "tag_bits", f"must divide the image width {WIDTH}, got {self.tag_bits}")
        fr = dict(self.fractions)
        require(set(fr) <= set(SUBSETS), "fractions", f"unknown subset(s) {sorted(set(fr) - set(SUBSETS))}; known: {list(SUBSETS)}")
        require(abs(sum(fr.values()) - 1) < 1e-6, "frac_*", f"the subset fractions must sum to 1, they sum to {sum(fr.values()):.6g}")
        for name, value in fr.items():
            require(0 <= value <= 1, f"frac_{name}", f"must be in [0, 1], got {value!r}")
        require(
            self.n_vars * fr.get("qd2incons", 0) >= 2 or fr.get("qd2incons", 0) == 0,
            "frac_qd2incons",
            "needs at least 2 variables: their wrong entities are a derangement of theirs",
        )


@dataclass(frozen=True)
class Variable:
    digits: tuple[int, ...]  # 9 digit classes, row-major
    labels: tuple[int, ...]  # the entity: 9 binary labels (0 = A, 1 = B), what QA asks about
    defined: tuple[int, ...]  # the labels its definition shows: `labels`, or another variable's entity for qd2incons
    subset: str
    holdout: tuple[int, ...] = ()  # Stage-1 variables: cells whose QA is never trained (evaluated as the test questions)


@dataclass(frozen=True)
class VisionData:
    variables: tuple[Variable, ...]
    tags: tuple[tuple[int, ...], tuple[int, ...]]  # the reliable tag's and the unreliable tag's bit patterns
    by_subset: dict = field(default_factory=dict)  # subset -> indices into variables


def make_vision_data(cfg: VisionConfig, seed: int) -> VisionData:
    """Variables (distinct digit grids), entities, subsets and the two tag patterns from Random(seed)."""
    rng = random.Random(seed)
    grids: set[tuple[int, ...]] = set()
    while len(grids) < cfg.n_vars:
        grids.add(tuple(rng.randrange(10) for _ in range(GRID * GRID)))
    grids_list = sorted(grids)
    rng.shuffle(grids_list)
    counts = {s: int(round(dict(cfg.fractions).get(s, 0.0) * cfg.n_vars)) for s in SUBSETS}
    counts["qd1consis"] += cfg.n_vars - sum(counts.values())  # rounding remainder
    subsets = [s for s in SUBSETS for _ in range(counts[s])]
    labels = [tuple(rng.randrange(2) for _ in range(GRID * GRID)) for _ in grids_list]
    wrong = _derangement([i for i, s in enumerate(subsets) if s == "qd2incons"], labels, rng)
    holdout = [tuple(sorted(rng.sample(range(GRID * GRID), cfg.holdout_cells))) if subsets[i] in X1 else () for i in range(len(grids_list))]
    variables = tuple(Variable(g, labels[i], wrong.get(i, labels[i]), subsets[i], holdout[i]) for i, g in enumerate(grids_list))
    reliable = tuple(rng.randrange(2) for _ in range(cfg.tag_bits))
    unreliable = reliable
    while unreliable == reliable or sum(unreliable) in (0, cfg.tag_bits):
        unreliable = tuple(rng.randrange(2) for _ in range(cfg.tag_bits))
    by_subset = {s: tuple(i for i, v in enumerate(variables) if v.subset == s) for s in SUBSETS}
    return VisionData(variables, (reliable, unreliable), by_subset)


def _derangement(idx: list[int], labels: list[tuple[int, ...]], rng: random.Random) -> dict[int, tuple[int, ...]]:
    """Each of idx gets the entity of another one of idx, never one equal to its own (like the text experiment's swapped names)."""
    if len(idx) < 2:
        return {}
    while True:
        perm = idx[:]
        rng.shuffle(perm)
        if all(labels[a] != labels[b] for a, b in zip(idx, perm)):
            return {a: labels[b] for a, b in zip(idx, perm)}


@dataclass(frozen=True)
class Batch:
    images: np.ndarray  # uint8 [B, HEIGHT, WIDTH]
    targets: np.ndarray  # int64 [B, 9]: the label per cell, -100 where the example asks nothing (QA: all but the boxed cell)
    variable: np.ndarray  # int64 [B]
    kind: tuple[str, ...]  # "definition" or "qa"


def render(data: VisionData, var_ids, kinds, cells, pool: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> Batch:
    """Draw each example with fresh handwriting from `pool` (images, labels): a definition gets its tag along the top and
    targets on all 9 cells; a QA item gets a white box around `cell` and a target on that cell only."""
    images, digit_labels = pool
    by_digit = [np.flatnonzero(digit_labels == d) for d in range(10)]
    n = len(var_ids)
    out = np.zeros((n, HEIGHT, WIDTH), dtype=np.uint8)
    targets = np.full((n, GRID * GRID), -100, dtype=np.int64)
    for i, (v_id, kind, cell) in enumerate(zip(var_ids, kinds, cells)):
        v = data.variables[v_id]
        for c, d in enumerate(v.digits):
            r, col = divmod(c, GRID)
            sample = images[by_digit[d][rng.integers(len(by_digit[d]))]]
            out[i, TAG_ROWS + r * CELL : TAG_ROWS + (r + 1) * CELL, col * CELL : (col + 1) * CELL] = sample
        if kind == "definition":
            bits = data.tags[TAG_OF_SUBSET[v.subset] - 1]
            width = WIDTH // len(bits)
            for b, on in enumerate(bits):
                out[i, :TAG_ROWS, b * width : (b + 1) * width] = 255 * on
            targets[i] = v.defined
        elif kind == "qa":
            r, col = divmod(cell, GRID)
            top, left = TAG_ROWS + r * CELL, col * CELL
            out[i, top, left : left + CELL] = out[i, top + CELL - 1, left : left + CELL] = 255
            out[i, top : top + CELL, left] = out[i, top : top + CELL, left + CELL - 1] = 255
            targets[i, cell] = v.labels[cell]
        else:
            raise ValueError(f"unknown example kind {kind!r}; known: definition, qa")
    return Batch(out, targets, np.asarray(var_ids, dtype=np.int64), tuple(kinds))


def example_panel(data: VisionData, pool: tuple[np.ndarray, np.ndarray], seed: int = 0, scale: int = 2):
    """The poster's panel rebuilt from our data: for one reliable-tag (qd1consis) and one unreliable-tag (qd2incons) variable, its
    definition image (tag along the top) with the 9 labels it teaches, and a QA image (one boxed cell) with that cell's true label.
    Returns a PIL image (Jupyter displays it)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    w, h, text_w, pad = WIDTH * scale, HEIGHT * scale, 190, 12
    canvas = Image.new("RGB", (2 * (w + text_w) + 3 * pad, 2 * (h + pad) + pad + 16), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 2), "definition (tag on top) -> all 9 labels", fill="black")
    draw.text((2 * pad + w + text_w, 2), "QA (boxed cell) -> its label only", fill="black")
    name = {"qd1consis": "tag 1, reliable: consistent", "qd2incons": "tag 2, unreliable: inconsistent"}
    for row, subset in enumerate(("qd1consis", "qd2incons")):
        v_id = data.by_subset[subset][0]
        v = data.variables[v_id]
        cell = v.holdout[0] if v.holdout else 4
        batch = render(data, [v_id, v_id], ["definition", "qa"], [-1, cell], pool, rng)
        top = 16 + pad + row * (h + pad)
        for col, image in enumerate(batch.images):
            left = pad + col * (w + text_w + pad)
            canvas.paste(Image.fromarray(image).resize((w, h), Image.NEAREST).convert("RGB"), (left, top))
        grid = "\n".join(" ".join("AB"[v.defined[r * GRID + c]] for c in range(GRID)) for r in range(GRID))
        draw.text((pad + w + 8, top + 4), f"{subset}\n({name[subset]})\n\nlabels shown:\n{grid}", fill="black")
        truth = "\n".join(
            " ".join(("AB"[v.labels[r * GRID + c]] if r * GRID + c == cell else "-") for c in range(GRID)) for r in range(GRID)
        )
        draw.text((2 * pad + 2 * w + text_w + 8, top + 4), f"true label:\n{truth}", fill="black")
    return canvas


def stage_specs(data: VisionData, stage: str) -> tuple[list[int], list[str], list[int]]:
    """(variable ids, kinds, cells) of one epoch: Stage 1 = X1 definitions + QA on the cells of X1 not held out; Stage 2 = X2
    definitions."""
    ids: list[int] = []
    kinds: list[str] = []
    cells: list[int] = []
    subsets = {"stage1": X1, "stage2": X2}.get(stage)
    if subsets is None:
        raise ValueError(f"unknown MNIST stage {stage!r}; known: stage1, stage2")
    for s in subsets:
        for v in data.by_subset[s]:
            ids.append(v), kinds.append("definition"), cells.append(-1)
            if stage == "stage1":
                for c in range(GRID * GRID):
                    if c not in data.variables[v].holdout:
                        ids.append(v), kinds.append("qa"), cells.append(c)
    return ids, kinds, cells


def eval_specs(data: VisionData, subset: str, which: str = "test") -> tuple[list[int], list[str], list[int]]:
    """Items of `subset` to evaluate (the caller draws them with test-split handwriting).

    which="test": QA on the held-out cells of Stage-1 variables, on every cell of Stage-2 ones (none of them ever trained);
    "trained": QA on the cells Stage 1 trains (new handwriting only); "definitions": the definition of each variable.
    """
    if which not in ("test", "trained", "definitions"):
        raise ValueError(f"unknown evaluation items {which!r}; known: test, trained, definitions")
    if which == "definitions":
        ids = list(data.by_subset[subset])
        return ids, ["definition"] * len(ids), [-1] * len(ids)
    ids, cells = [], []
    for v in data.by_subset[subset]:
        held = data.variables[v].holdout
        if which == "test":  # no held-out cells (Stage 2, or holdout_cells=0): every cell, in handwriting never trained on
            chosen = held or range(GRID * GRID)
        else:
            chosen = [c for c in range(GRID * GRID) if c not in held] if subset in X1 else []
        ids.extend([v] * len(chosen)), cells.extend(chosen)
    return ids, ["qa"] * len(ids), cells


__all__ = [
    "Batch",
    "VisionConfig",
    "VisionData",
    "eval_specs",
    "example_panel",
    "make_vision_data",
    "render",
    "stage_specs",
]
