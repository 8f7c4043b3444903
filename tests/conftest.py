"""Test-session set-up: configure the offline environment before any test module imports transformers or datasets, and sort
tests into tiers (pyproject.toml lists the markers; docs/testing.md says which command runs which)."""

import os

import pytest

import iml_nb  # noqa: F401  (sets HF_HUB_OFFLINE and friends, and keeps caches inside the project)


def pytest_configure(config):
    assert os.environ["HF_HUB_OFFLINE"] == "1", "tests never touch the network: unset HF_HUB_OFFLINE or set it to 1"


def pytest_collection_modifyitems(config, items):
    """nbval's cells are the `notebook` tier; everything that is neither `slow` nor a notebook is the fast inner loop."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebook)
