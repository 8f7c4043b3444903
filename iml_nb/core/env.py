"""Process set-up shared by notebooks, workers and tests: offline Hugging Face, caches inside the project, quiet libraries."""

from __future__ import annotations

import os
import platform
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # iml_nb/core/env.py -> the repository


def configure() -> None:
    """Idempotent; `setdefault` so a user who really wants the hub (e.g. a GPU box) can export HF_HUB_OFFLINE=0."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("HF_HOME", str(PROJECT_ROOT / ".cache" / "huggingface"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # forked/spawned workers would otherwise warn and deadlock-guard
    if platform.machine().lower() in ("x86_64", "amd64"):
        # The same numbers on every x86 machine: on a CPU with AVX-512, torch's own kernels and oneDNN's convolutions pick it and
        # sum in another order (measured: the 05_mnist test-size Stage-1 gap read +0.271 with AVX-512, +0.236 with AVX2, and the
        # AVX2 value again with both pins). Both are read when torch loads, so they hold wherever iml_nb is imported first.
        os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
        os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")


def quiet_transformers() -> None:
    """Weight-loading bars and resize notices drown the notebooks' own progress bars."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def project_path(path: str | os.PathLike) -> Path:
    """Relative paths (outputs/, caches) mean the project's, whatever folder the kernel started in (notebooks/ in JupyterLab)."""
    p = Path(path)
    return p if p.is_absolute() else PROJECT_ROOT / p


PROGRESS_LOG = "IML_NB_PROGRESS_LOG"  # set by `python -m iml_nb run` for the kernel: a file progress lines are appended to


def log_progress(message: str) -> None:
    """Append one progress line where `python -m iml_nb run` tails it to the terminal (a notebook's own bars live in the kernel,
    out of the terminal's sight); a no-op anywhere else."""
    path = os.environ.get(PROGRESS_LOG)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(message.replace("\n", " ") + "\n")
