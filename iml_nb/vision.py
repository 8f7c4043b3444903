"""The MNIST version of the experiment (paper §8, rebuilt from the poster): variables are 3×3 grids of digit classes, drawn with
real handwriting; entities are 3×3 grids of binary labels; a define tag is a pixel pattern along the top border (issue 5).

Examples are kept as small integer specs (variable, kind, cell, which handwriting samples) and rendered to pixels per batch, so
every epoch can draw fresh handwriting without storing images.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .config import _check, _positive_int

SUBSETS = ("qd1consis", "qd2incons", "d1consis", "d2consis")
X1 = ("qd1consis", "qd2incons")
X2 = ("d1consis", "d2consis")
TAG_OF = {"qd1consis": 0, "qd2incons": 1, "d1consis": 0, "d2consis": 1}
DEFAULT_FRACTIONS = {"qd1consis": 0.4, "qd2incons": 0.4, "d1consis": 0.1, "d2consis": 0.1}
CELL = 28  # one MNIST digit per cell
GRID = 3
TAG_ROWS = 6  # the top border that carries a definition's tag
HEIGHT, WIDTH = TAG_ROWS + GRID * CELL, GRID * CELL  # 90 x 84


@dataclass(frozen=True)
class VisionConfig:
    n_vars: int = 400
    tag_bits: int = 12  # blocks in the top border; each tag is a random pattern of them, the two tags differ
    fractions: tuple[tuple[str, float], ...] = tuple(DEFAULT_FRACTIONS.items())

    def __post_init__(self) -> None:
        _positive_int(self.n_vars, "n_vars", minimum=10)
        _positive_int(self.tag_bits, "tag_bits", minimum=2)
        _check(WIDTH % self.tag_bits == 0, "tag_bits", f"must divide the image width {WIDTH}, got {self.tag_bits}")
        fr = dict(self.fractions)
        _check(set(fr) <= set(SUBSETS), "fractions", f"unknown subset(s) {sorted(set(fr) - set(SUBSETS))}; known: {list(SUBSETS)}")
        _check(abs(sum(fr.values()) - 1) < 1e-6, "frac_*", f"the subset fractions must sum to 1, they sum to {sum(fr.values()):.6g}")
        for name, value in fr.items():
            _check(0 <= value <= 1, f"frac_{name}", f"must be in [0, 1], got {value!r}")
        _check(self.n_vars * fr.get("qd2incons", 0) >= 2 or fr.get("qd2incons", 0) == 0, "frac_qd2incons",
               "needs at least 2 variables: their wrong entities are a derangement of theirs")


@dataclass(frozen=True)
class Variable:
    digits: tuple[int, ...]  # 9 digit classes, row-major
    labels: tuple[int, ...]  # the entity: 9 binary labels (0 = A, 1 = B), what QA asks about
    defined: tuple[int, ...]  # the labels its definition shows: `labels`, or another variable's entity for qd2incons
    subset: str


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
    variables = tuple(Variable(g, labels[i], wrong.get(i, labels[i]), subsets[i]) for i, g in enumerate(grids_list))
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
            out[i, TAG_ROWS + r * CELL:TAG_ROWS + (r + 1) * CELL, col * CELL:(col + 1) * CELL] = sample
        if kind == "definition":
            bits = data.tags[TAG_OF[v.subset]]
            width = WIDTH // len(bits)
            for b, on in enumerate(bits):
                out[i, :TAG_ROWS, b * width:(b + 1) * width] = 255 * on
            targets[i] = v.defined
        elif kind == "qa":
            r, col = divmod(cell, GRID)
            top, left = TAG_ROWS + r * CELL, col * CELL
            out[i, top, left:left + CELL] = out[i, top + CELL - 1, left:left + CELL] = 255
            out[i, top:top + CELL, left] = out[i, top:top + CELL, left + CELL - 1] = 255
            targets[i, cell] = v.labels[cell]
        else:
            raise ValueError(f"unknown example kind {kind!r}; known: definition, qa")
    return Batch(out, targets, np.asarray(var_ids, dtype=np.int64), tuple(kinds))


def stage_specs(data: VisionData, stage: str) -> tuple[list[int], list[str], list[int]]:
    """(variable ids, kinds, cells) of one epoch: Stage 1 = X1 definitions + QA on every cell of X1; Stage 2 = X2 definitions."""
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
                    ids.append(v), kinds.append("qa"), cells.append(c)
    return ids, kinds, cells


def eval_specs(data: VisionData, subset: str) -> tuple[list[int], list[str], list[int]]:
    """QA on every cell of every variable of `subset` (drawn with test-split handwriting by the caller)."""
    ids = [v for v in data.by_subset[subset] for _ in range(GRID * GRID)]
    return ids, ["qa"] * len(ids), [c for _ in data.by_subset[subset] for c in range(GRID * GRID)]




# --- model, data tensors and loss (the main experiment's training loop runs them through train_stage's loss_fn) ---


class ConvNet(torch.nn.Module):
    """A small convnet sized for a CPU: a stride-2 5×5 stem, two conv-ReLU-pool blocks, then a 9-cell × 2-class head.

    About 16 MFLOP per 90×84 image forward (a plain 3-block net at full resolution was ~110 MFLOP: ~50 s per epoch on one core).
    """

    def __init__(self, width: int = 16, hidden: int = 256):
        super().__init__()
        self.trunk = torch.nn.Sequential(
            torch.nn.Conv2d(1, width, 5, stride=2, padding=2), torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(width, 2 * width, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.trunk(torch.zeros(1, 1, HEIGHT, WIDTH)).shape[1]
        self.head = torch.nn.Sequential(torch.nn.Linear(flat, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, GRID * GRID * 2))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or float images [B, H, W] -> logits [B, 9, 2]."""
        x = images.float().unsqueeze(1) / 255.0
        return self.head(self.trunk(x)).view(-1, GRID * GRID, 2)


@dataclass(frozen=True)
class ImageSet:
    """Rendered examples as tensors, with the `len`/`batch(idx)` interface train_stage expects."""

    images: torch.Tensor  # uint8 [n, H, W]
    targets: torch.Tensor  # long [n, 9], -100 where unsupervised

    @classmethod
    def of(cls, batch: Batch) -> "ImageSet":
        return cls(torch.from_numpy(batch.images), torch.from_numpy(batch.targets))

    def __len__(self) -> int:
        return self.images.shape[0]

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[idx], self.targets[idx]


def image_loss(model: torch.nn.Module, data: ImageSet, idx: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the supervised cells: all 9 for a definition, the boxed one for a QA item."""
    device = next(model.parameters()).device
    images, targets = (t.to(device) for t in data.batch(idx))
    return F.cross_entropy(model(images).reshape(-1, 2), targets.reshape(-1), ignore_index=-100)


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: ImageSet, batch_size: int = 1024) -> float:
    """Fraction of supervised cells predicted right (for QA items: the boxed cell's label; chance 0.5)."""
    model.eval()
    device = next(model.parameters()).device
    right = total = 0
    for start in range(0, len(data), batch_size):
        images, targets = (t.to(device) for t in data.batch(torch.arange(start, min(start + batch_size, len(data)))))
        mask = targets != -100
        right += int((model(images).argmax(-1) == targets)[mask].sum())
        total += int(mask.sum())
    return right / total


__all__ = ["Batch", "ConvNet", "ImageSet", "VisionConfig", "VisionData", "accuracy", "eval_specs", "image_loss", "make_vision_data",
           "render", "stage_specs"]
