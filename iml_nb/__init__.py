"""iml_nb: the helper package behind the iml-notebooks (Krasheninnikov et al., ICML 2024, implicit meta-learning)."""

from iml_nb.core.env import configure as _configure

_configure()  # before anything imports transformers or datasets: offline, caches inside the project

__version__ = "0.1.0"
