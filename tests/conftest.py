"""Test-session set-up: configure the offline environment before any test module imports transformers or datasets."""

import os

import iml_nb  # noqa: F401  (sets HF_HUB_OFFLINE and friends, and keeps caches inside the project)


def pytest_configure(config):
    assert os.environ["HF_HUB_OFFLINE"] == "1", "tests never touch the network: unset HF_HUB_OFFLINE or set it to 1"
