"""MNIST-IML data invariants: tag only on definitions, a box on exactly one cell of QA items, labels as designed."""

import numpy as np
import pytest

from iml_nb.core.parameters import ConfigError
from iml_nb.vision.data import CELL, GRID, TAG_ROWS, VisionConfig, eval_specs, make_vision_data, render, stage_specs

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
        border = np.concatenate(
            [
                image[top, left : left + CELL],
                image[top + CELL - 1, left : left + CELL],
                image[top : top + CELL, left],
                image[top : top + CELL, left + CELL - 1],
            ]
        )
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
            assert strip.any() and (strip[0, :: CELL * GRID // len(tag)] == 255 * np.array(tag)).all()
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


@pytest.mark.slow
def test_loss_and_accuracy_count_only_supervised_cells_and_the_one_loop_trains_the_convnet():
    import torch

    from iml_nb.core.config import TrainConfig
    from iml_nb.lm.train import train_stage
    from iml_nb.vision.model import ConvNet, ImageSet, accuracy, image_loss

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
    losses = train_stage(model, few, TrainConfig(stage0_epochs=0, stage_epochs=(40,), lr=5e-3, batch_size=12), 40, 0, loss_fn=image_loss)
    assert losses[-1] < 0.5 * losses[0]  # 12 fixed images are memorised


def test_held_out_cells_are_never_trained_and_are_what_stage_1_is_tested_on():
    data = make_vision_data(CFG, seed=0)
    trained = {(v, c) for v, k, c in zip(*stage_specs(data, "stage1")) if k == "qa"}
    for subset in ("qd1consis", "qd2incons"):
        for v in data.by_subset[subset]:
            held = data.variables[v].holdout
            assert len(held) == CFG.holdout_cells and not {(v, c) for c in held} & trained
            assert {(v, c) for c in range(9) if c not in held} <= trained
        test = set(zip(*eval_specs(data, subset, "test")[::2]))
        assert test == {(v, c) for v in data.by_subset[subset] for c in data.variables[v].holdout}
        assert set(zip(*eval_specs(data, subset, "trained")[::2])) <= trained
    for subset in ("d1consis", "d2consis"):  # Stage-2 variables: every cell is a test question, none is trained
        assert len(eval_specs(data, subset, "test")[0]) == 9 * len(data.by_subset[subset])
        assert eval_specs(data, subset, "trained")[0] == []
    everything = make_vision_data(VisionConfig(n_vars=60, holdout_cells=0), seed=0)
    assert len(eval_specs(everything, "qd1consis", "test")[0]) == 9 * len(everything.by_subset["qd1consis"])


def test_cell_net_reads_the_cells_row_major_and_its_trunk_classifies_single_digits():
    import torch

    from iml_nb.vision.model import CellNet, split_cells

    images = torch.zeros(2, TAG_ROWS + 3 * CELL, 3 * CELL)
    for c in range(9):
        r, col = divmod(c, 3)
        images[:, TAG_ROWS + r * CELL : TAG_ROWS + (r + 1) * CELL, col * CELL : (col + 1) * CELL] = c + 1
    cells = split_cells(images)
    assert cells.shape == (2, 9, CELL, CELL) and all((cells[:, c] == c + 1).all() for c in range(9))
    net = CellNet(width=4, hidden=8)
    assert net(images.to(torch.uint8)).shape == (2, 9, 2) and net.digit_logits(cells[:, 0].to(torch.uint8)).shape == (2, 10)


@pytest.mark.slow
def test_vision_config_names_bad_parameters_before_any_compute():
    from iml_nb.vision.experiment import PARAMETERS

    cfg = PARAMETERS.build(n_vars=50, pretrain_epochs=0, stage1_epochs=2, stage2_epochs=3, lr=0.01, n_seeds=2, arch="plain")
    assert (cfg.data.n_vars, cfg.train.stage0_epochs, cfg.train.stage_epochs, cfg.train.lr, cfg.run.n_seeds, cfg.net.arch) == (
        50,
        0,
        (2, 3),
        0.01,
        2,
        "plain",
    )
    assert PARAMETERS.build().train.stage0_epochs == 1
    for bad, name in [
        ({"holdout_cells": 9}, "holdout_cells"),
        ({"arch": "resnet"}, "arch"),
        ({"width": 5}, "width"),
        ({"arch": "plain"}, "pretrain_epochs"),
        ({"frac_d1consis": 0.5}, "frac_"),
        ({"device": "tpu"}, "device"),
        ({"stage2_epochs": 0}, "stage2_epochs"),
        ({"n_seeds": 0}, "n_seeds"),
    ]:
        with pytest.raises(ConfigError, match=f"`{name}"):
            PARAMETERS.build(**bad)
    with pytest.raises(ConfigError, match="unknown parameter"):
        PARAMETERS.build(n_people=3)
    assert {"n_vars", "holdout_cells", "arch", "pretrain_epochs", "stage1_epochs", "device", "output_dir"} <= PARAMETERS.names()


def test_notebook_parameters_are_the_config_parameters():
    import papermill as pm

    from iml_nb.core.env import project_path
    from iml_nb.vision.experiment import PARAMETERS

    declared = set(pm.inspect_notebook(str(project_path("notebooks/05_mnist.ipynb"))))
    assert declared == PARAMETERS.names()


def test_notebook_defaults_are_the_config_defaults():
    import papermill as pm

    from iml_nb.core.env import project_path
    from iml_nb.vision.experiment import PARAMETERS

    declared = pm.inspect_notebook(str(project_path("notebooks/05_mnist.ipynb")))
    defaults = {name: eval(p["default"]) for name, p in declared.items()}  # literals from the parameters cell
    assert PARAMETERS.build(**defaults) == PARAMETERS.build()
