"""Same machine, same seed: identical metrics, for every experiment that trains. (Across machines only tolerances hold: the
notebook tests compare structure and counts, never numbers from trained weights; the main experiment's twin is in
test_model_eval.py.)"""

import pytest

from iml_nb.setinc import data as setinc
from iml_nb.setinc import experiment as setinc_experiment
from iml_nb.vision import experiment as vision_experiment


@pytest.mark.slow
def test_set_inclusion_is_deterministic():
    cfg = setinc.PARAMETERS.build(n_vars=40, stage1_epochs=2, stage2_epochs=2, n_seeds=1, n_jobs=1)
    first, again = setinc_experiment.run_experiment(cfg, progress=False), setinc_experiment.run_experiment(cfg, progress=False)
    assert len(first) > 0 and first.equals(again)


@pytest.mark.slow
def test_mnist_convnet_is_deterministic():
    cfg = vision_experiment.PARAMETERS.build(n_vars=30, pretrain_epochs=0, stage1_epochs=2, stage2_epochs=1, n_seeds=1, n_jobs=1)
    first, again = vision_experiment.run_experiment(cfg, progress=False), vision_experiment.run_experiment(cfg, progress=False)
    assert len(first) > 0 and first.equals(again)
