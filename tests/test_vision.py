"""MNIST-IML data invariants (issue 5): tag only on definitions, a box on exactly one cell of QA items, labels as designed."""

import numpy as np
import pytest

from iml_nb.config import ConfigError
from iml_nb.vision import (CELL, GRID, TAG_ROWS, VisionConfig, eval_specs, make_vision_data, render, stage_specs)

CFG = VisionConfig(n_vars=60)


def _pool():
    """A handful of fake digit images per class (the invariants do not need real handwriting); ink never touches a cell border."""
    rng = np.random.default_rng(0)
    images = np.zeros((50, 28, 28), dtype=np.uint8)
    images[:, 4:24, 4:24] = rng.integers(1, 200, size=(50, 20, 20))
    return images, np.arange(50) % 10


def _boxed_cells(image):
    cells = []
    for c in range(GRID * GRID):
        r, col = divmod(c, GRID)
        top, left = TAG_ROWS + r * CELL, col * CELL
        border = np.concatenate([image[top, left:left + CELL], image[top + CELL - 1, left:left + CELL],
                                 image[top:top + CELL, left], image[top:top + CELL, left + CELL - 1]])
        if (border == 255).all():
            cells.append(c)
    return cells


def test_tag_only_on_definitions_box_on_exactly_one_cell_of_qa_items():
    data = make_vision_data(CFG, seed=0)
    ids, kinds, cells = stage_specs(data, "stage1")
    batch = render(data, ids, kinds, cells, _pool(), np.random.default_rng(1))
    for image, kind, cell, target, v_id in zip(batch.images, batch.kind, cells, batch.targets, batch.variable):
        strip = image[:TAG_ROWS]
        if kind == "definition":
            tag = data.tags[0 if data.variables[v_id].subset == "qd1consis" else 1]
            assert strip.any() and (strip[0, ::CELL * GRID // len(tag)] == 255 * np.array(tag)).all()
            assert _boxed_cells(image) == [] and (target != -100).all()
        else:
            assert not strip.any() and _boxed_cells(image) == [cell]
            assert (target != -100).sum() == 1 and target[cell] == data.variables[v_id].labels[cell]
    assert data.tags[0] != data.tags[1]


def test_definitions_are_consistent_or_name_another_entity_as_designed():
    data = make_vision_data(CFG, seed=0)
    for v in data.variables:
        if v.subset == "qd2incons":
            assert v.defined != v.labels and v.defined in {w.labels for w in data.variables if w.subset == "qd2incons"}
        else:
            assert v.defined == v.labels
    ids, kinds, cells = stage_specs(data, "stage2")
    assert set(kinds) == {"definition"} and {data.variables[i].subset for i in ids} == {"d1consis", "d2consis"}
    stage1 = stage_specs(data, "stage1")[0]
    assert not set(stage1) & set(ids)  # Stage-2 variables are never seen in Stage 1


def test_fresh_handwriting_per_example_and_test_items_cover_every_cell():
    data = make_vision_data(CFG, seed=0)
    v = data.by_subset["d1consis"][0]
    batch = render(data, [v, v], ["qa", "qa"], [4, 4], _pool(), np.random.default_rng(0))
    assert not np.array_equal(batch.images[0], batch.images[1])  # same variable, different samples
    ids, kinds, cells = eval_specs(data, "d2consis")
    assert len(ids) == 9 * len(data.by_subset["d2consis"]) and sorted(set(cells)) == list(range(9))


def test_seeded_and_validated():
    assert make_vision_data(CFG, 3) == make_vision_data(CFG, 3) != make_vision_data(CFG, 4)
    with pytest.raises(ConfigError, match="`tag_bits`"):
        VisionConfig(tag_bits=5)
    with pytest.raises(ConfigError, match="`frac_"):
        VisionConfig(fractions=(("qd1consis", 0.5), ("qd2incons", 0.4)))


def test_loss_and_accuracy_count_only_supervised_cells_and_the_one_loop_trains_the_convnet():
    import torch

    from iml_nb.config import TrainConfig
    from iml_nb.train import train_stage
    from iml_nb.vision import ConvNet, ImageSet, accuracy, image_loss

    data = make_vision_data(CFG, seed=0)
    ids, kinds, cells = stage_specs(data, "stage1")
    images = ImageSet.of(render(data, ids[:40], kinds[:40], cells[:40], _pool(), np.random.default_rng(0)))
    torch.manual_seed(0)
    model = ConvNet(width=4, hidden=16)
    assert model(images.images[:3]).shape == (3, 9, 2)
    idx = torch.arange(len(images))
    logits = model(images.images).reshape(-1, 2)
    flat = images.targets.reshape(-1)
    keep = flat != -100
    assert torch.isclose(image_loss(model, images, idx), torch.nn.functional.cross_entropy(logits[keep], flat[keep]))
    predicted = model(images.images).argmax(-1)
    assert accuracy(model, images) == pytest.approx(float((predicted == images.targets)[images.targets != -100].float().mean()))
    few = ImageSet(images.images[:12], images.targets[:12])
    losses = train_stage(model, few, TrainConfig(stage0_epochs=0, stage_epochs=(40,), lr=5e-3, batch_size=12), 40, 0,
                         loss_fn=image_loss)
    assert losses[-1] < 0.5 * losses[0]  # 12 fixed images are memorised
