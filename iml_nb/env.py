"""Process set-up shared by notebooks, workers and tests: offline Hugging Face, caches inside the project, quiet libraries."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def configure() -> None:
    """Idempotent; `setdefault` so a user who really wants the hub (e.g. a GPU box) can export HF_HUB_OFFLINE=0."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("HF_HOME", str(PROJECT_ROOT / ".cache" / "huggingface"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # forked/spawned workers would otherwise warn and deadlock-guard


def quiet_transformers() -> None:
    """Weight-loading bars and resize notices drown the notebooks' own progress bars."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def project_path(path: str | os.PathLike) -> Path:
    """Relative paths (outputs/, caches) mean the project's, whatever folder the kernel started in (notebooks/ in JupyterLab)."""
    p = Path(path)
    return p if p.is_absolute() else PROJECT_ROOT / p

