"""iml_nb: the helper package behind the iml-notebooks (Krasheninnikov et al., ICML 2024, implicit meta-learning)."""

__version__ = "0.1.0"
