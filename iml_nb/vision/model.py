"""The MNIST experiment's networks, image tensors and losses (paper §8): a plain convnet on the whole image, or a conv trunk shared by
the nine cells (pretrainable on single digits); the shared training loop runs them through train_stage's loss_fn."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from iml_nb.vision.data import CELL, GRID, HEIGHT, TAG_ROWS, WIDTH, Batch


class ConvNet(torch.nn.Module):
    """A small convnet sized for a CPU: a stride-2 5×5 stem, two conv-ReLU-pool blocks, then a 9-cell × 2-class head.

    About 16 MFLOP per 90×84 image forward (a plain 3-block net at full resolution was ~110 MFLOP: ~50 s per epoch on one core).
    """

    def __init__(self, width: int = 16, hidden: int = 256):
        super().__init__()
        self.trunk = torch.nn.Sequential(
            torch.nn.Conv2d(1, width, 5, stride=2, padding=2),
            torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(width, 2 * width, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.trunk(torch.zeros(1, 1, HEIGHT, WIDTH)).shape[1]
        self.head = torch.nn.Sequential(torch.nn.Linear(flat, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, GRID * GRID * 2))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or float images [B, H, W] -> logits [B, 9, 2]."""
        x = images.float().unsqueeze(1) / 255.0
        return self.head(self.trunk(x)).view(-1, GRID * GRID, 2)


def split_cells(images: torch.Tensor) -> torch.Tensor:
    """Images [B, H, W] -> their 9 digit cells [B, 9, 28, 28], row-major (the tag strip dropped)."""
    cells = images[:, TAG_ROWS:, :].unfold(1, CELL, CELL).unfold(2, CELL, CELL)  # [B, 3, 3, 28, 28]
    return cells.reshape(images.shape[0], GRID * GRID, CELL, CELL)


class CellNet(torch.nn.Module):
    """A convnet that reads the 3×3 grid cell by cell: one small conv trunk shared by the 9 cells (and pretrainable on single
    digits, the vision stand-in for a pretrained model), a linear read of the tag strip, and an MLP from all of it to 9 × 2 labels.

    ~0.6 MFLOP per cell, ~6 MFLOP per image. The cell trunk also sees a QA box: it is drawn on the cell's own border pixels.
    """

    def __init__(self, width: int = 16, hidden: int = 512, features: int = 64):
        super().__init__()
        self.features = features
        self.cell = torch.nn.Sequential(
            torch.nn.Conv2d(1, width // 2, 5, stride=2, padding=2),
            torch.nn.ReLU(),
            torch.nn.Conv2d(width // 2, width, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
            torch.nn.Linear(width * 7 * 7, features),
            torch.nn.ReLU(),
        )
        self.digit_head = torch.nn.Linear(features, 10)  # used only by digit pretraining
        self.tag = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(TAG_ROWS * WIDTH, 32), torch.nn.ReLU())
        self.head = torch.nn.Sequential(
            torch.nn.Linear(GRID * GRID * features + 32, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, GRID * GRID * 2)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or float images [B, H, W] -> logits [B, 9, 2]."""
        x = images.float() / 255.0
        n = x.shape[0]
        per_cell = self.cell(split_cells(x).reshape(-1, 1, CELL, CELL)).view(n, GRID * GRID * self.features)
        return self.head(torch.cat([per_cell, self.tag(x[:, :TAG_ROWS, :])], dim=1)).view(-1, GRID * GRID, 2)

    def digit_logits(self, digits: torch.Tensor) -> torch.Tensor:
        """uint8 digits [B, 28, 28] -> logits [B, 10], through the shared cell trunk."""
        return self.digit_head(self.cell(digits.float().unsqueeze(1) / 255.0))


ARCHS = ("cells", "plain")


def build_net(arch: str, width: int, hidden: int) -> torch.nn.Module:
    if arch == "cells":
        return CellNet(width, hidden)
    if arch == "plain":
        return ConvNet(width, hidden)
    raise ValueError(f"unknown arch {arch!r}; known: {list(ARCHS)}")


@dataclass(frozen=True)
class ImageSet:
    """Rendered examples as tensors, with the `len`/`batch(idx)` interface train_stage expects."""

    images: torch.Tensor  # uint8 [n, H, W]
    targets: torch.Tensor  # long [n, 9], -100 where unsupervised

    @classmethod
    def of(cls, batch: Batch) -> ImageSet:
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


def digit_loss(model: CellNet, data: ImageSet, idx: torch.Tensor) -> torch.Tensor:
    """Digit classification through the cell trunk (pretraining; `data.targets` are digit classes)."""
    device = next(model.parameters()).device
    images, targets = (t.to(device) for t in data.batch(idx))
    return F.cross_entropy(model.digit_logits(images), targets)


def digit_accuracy(model: CellNet, data: ImageSet, batch_size: int = 2048) -> float:
    """Fraction of single digits (`data.targets` = classes) the cell trunk classifies right."""
    return accuracy(model, data, batch_size, forward=model.digit_logits)


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: ImageSet, batch_size: int = 1024, forward=None) -> float:
    """Fraction of supervised cells predicted right (for QA items: the boxed cell's label; chance 0.5).

    `forward` replaces model(images) (e.g. `model.digit_logits` for single digits, whose targets have no -100)."""
    model.eval()
    device = next(model.parameters()).device
    right = total = 0
    for start in range(0, len(data), batch_size):
        images, targets = (t.to(device) for t in data.batch(torch.arange(start, min(start + batch_size, len(data)))))
        mask = targets != -100
        right += int(((forward or model)(images).argmax(-1) == targets)[mask].sum())
        total += int(mask.sum())
    return right / total


__all__ = ["ARCHS", "CellNet", "ConvNet", "ImageSet", "accuracy", "build_net", "digit_accuracy", "digit_loss", "image_loss", "split_cells"]
