"""Test-session set-up: configure the offline environment before any test module imports transformers or datasets, and sort
tests into tiers (pyproject.toml lists the markers; docs/testing.md says which command runs which)."""

import os
import shutil
from pathlib import Path

import pytest
import yaml

import iml_nb  # noqa: F401  (sets HF_HUB_OFFLINE and friends, and keeps caches inside the project)


def pytest_configure(config):
    assert os.environ["HF_HUB_OFFLINE"] == "1", "tests never touch the network: unset HF_HUB_OFFLINE or set it to 1"


def pytest_collection_modifyitems(config, items):
    """nbval's cells are the `notebook` tier; everything that is neither `slow` nor a notebook is the fast inner loop."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebook)
    for stem in {item.path.stem for item in items if item.path.suffix == ".ipynb"}:
        remove_stale_test_batches(stem)


def remove_stale_test_batches(stem: str, root: Path = Path(__file__).parent.parent) -> list[Path]:
    """Remove the test-size batches of notebook `stem` made before its tests/params file last changed.

    A test-size sweep resumes its batch folder, which refuses other fixed parameters; without this, editing tests/params (or
    pulling such an edit) would fail the notebook's nbval until someone deleted the folder by hand. make-style, by mtime.
    """
    params = root / "tests" / "params" / f"{stem}.yaml"
    if not params.is_file():
        return []
    values = yaml.safe_load(params.read_text()) or {}
    name = values.get("batch_name") or values.get("batch_prefix")
    if not name:
        return []
    stale = [
        folder
        for folder in sorted((root / "outputs" / "batches").glob(f"{name}*"))
        if (folder / "batch.json").is_file() and (folder / "batch.json").stat().st_mtime < params.stat().st_mtime
    ]
    for folder in stale:
        shutil.rmtree(folder)
    return stale
