"""Run folders under outputs/: atomic writes, metrics CSV, environment record, completeness marker (STYLE: Results)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from iml_nb.core.env import PROJECT_ROOT, project_path

COMPLETE_MARKER = "summary.json"  # written last (mark_complete): a run folder is complete iff it exists
_DTYPES = {"seed": "Int64", "seed_stage2": "Int64", "stage": "int64", "epoch": "int64", "subset": str, "metric": str, "value": "float64"}

# Read the umask once: temp files are created 0600, and a result file should get the usual permissions.
_UMASK = os.umask(0)
os.umask(_UMASK)


METRIC_COLUMNS = ["seed", "seed_stage2", "stage", "epoch", "subset", "metric", "value"]  # the result contract: one tidy row per value


def metrics_frame(rows: list[dict]) -> pd.DataFrame:
    """Tidy rows as the metrics frame every experiment returns: METRIC_COLUMNS, nullable integer seeds."""
    return pd.DataFrame(rows, columns=METRIC_COLUMNS).astype({"seed": "Int64", "seed_stage2": "Int64"})


def metric_rows(results: dict, seed, seed_stage2, stage: int, epoch: int) -> list[dict]:
    """Tidy rows (METRIC_COLUMNS) from {subset: {metric: value}} at one (seed, seed_stage2, stage, epoch)."""
    return [
        dict(seed=seed, seed_stage2=seed_stage2, stage=stage, epoch=epoch, subset=name, metric=m, value=v)
        for name, metrics in results.items()
        for m, v in metrics.items()
    ]


def train_rows(loss: float, steps: int, seed, seed_stage2, stage: int, epoch: int) -> list[dict]:
    """Subset "train": the epoch's mean training loss and the stage's optimizer steps so far (checks.loss_fell reads both)."""
    return metric_rows({"train": {"loss": loss, "steps": steps}}, seed, seed_stage2, stage, epoch)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` so a reader sees either the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory as the target, so os.replace is a rename within one filesystem (atomic on POSIX).
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomic UTF-8 text write (see atomic_write_bytes); newlines are written as given."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_folder(folder: str | os.PathLike, write) -> None:
    """Call write(tmp) on a temporary sibling folder, then rename it to `folder`: a killed writer never leaves a folder that looks
    complete, and a writer that raises leaves nothing behind. If another process finished the same folder first, theirs is kept."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide the folder from other users of a shared project folder
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.replace(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def file_digest(path: str | os.PathLike) -> str:
    """The first 16 hex digits of a file's SHA-256: names what a cache entry was made from."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def to_jsonable(obj):
    """Plain JSON values: NaN/inf/NA -> None, numpy -> Python, dataclasses -> dicts, sequences -> lists, paths -> str."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset, np.ndarray, pd.Series)):
        items = sorted(obj) if isinstance(obj, (set, frozenset)) else list(obj)
        return [to_jsonable(v) for v in items]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    """Atomic JSON (indent 2, sorted keys); NaN and inf become null because strict JSON has no NaN."""
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_metrics(path: str | os.PathLike, metrics: pd.DataFrame) -> Path:
    """Atomic CSV of the tidy metrics frame, canonical columns first (extra columns kept after them)."""
    missing = [c for c in METRIC_COLUMNS if c not in metrics.columns]
    if missing:
        raise ValueError(f"metrics frame lacks columns {missing}; expected {METRIC_COLUMNS}")
    extra = [c for c in metrics.columns if c not in METRIC_COLUMNS]
    # Full-precision floats (pandas writes repr), so read_metrics gives back exactly what was written.
    return atomic_write_text(path, metrics[METRIC_COLUMNS + extra].to_csv(index=False, lineterminator="\n"))


def read_metrics(path: str | os.PathLike) -> pd.DataFrame:
    """Read a metrics CSV with its dtypes: Int64 seeds (<NA> where absent), int stage/epoch, string subset/metric."""
    # Only the seed columns may be empty; "NA"/"null" must not be guessed as missing in subset names.
    df = pd.read_csv(
        path,
        keep_default_na=False,
        na_values={"seed": [""], "seed_stage2": [""]},
        dtype={k: v for k, v in _DTYPES.items() if k in ("seed", "seed_stage2", "subset", "metric")},
    )
    missing = [c for c in METRIC_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks metric columns {missing}")
    return df.astype({k: v for k, v in _DTYPES.items()})


def _package_version(name: str) -> str | None:
    # Distribution metadata, so recording a version never imports torch or transformers.
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _torch_record() -> dict:
    """Device and thread count of the torch this process used; None for both if it never imported torch.

    Not importing torch here keeps a stats-only notebook from paying seconds of import for a device it did not use.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return {"device": None, "torch_threads": None, "cpu_capability": None}
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    # The vector ISA torch's kernels ran with (env.configure pins AVX2): AVX-512 sums in another order and gives other numbers.
    return {"device": device, "torch_threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def environment_record() -> dict:
    """What produced a run: Python, platform, CPUs, package versions, git commit and dirtiness, device, UTC time."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain") if commit else None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": {
            name: _package_version(name) for name in ("torch", "transformers", "tokenizers", "pandas", "numpy", "altair", "papermill")
        },
        "git_commit": commit,
        # Untracked, non-ignored files count as dirty: a new module can change a result as much as an edit.
        "git_dirty": None if status is None else bool(status),
        **_torch_record(),
        "timestamp_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def new_run_id() -> str:
    """<UTC YYYYmmdd-HHMMSS>-<4 hex>: sorts by time; the hex tells apart runs started in the same second."""
    # Not an experimental random draw, so it is deliberately not seeded.
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def new_run_dir(root: str | os.PathLike, name: str) -> Path:
    """Create and return a fresh run folder root/name/<run id>."""
    run_dir = Path(root) / name / new_run_id()
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir


def run_dir_for(output_dir: str, notebook: str, root: str | os.PathLike = "outputs") -> Path:
    """The folder a notebook writes into: `output_dir` when papermill/the runner passes one, else a fresh run folder."""
    if output_dir:
        path = project_path(output_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return new_run_dir(project_path(root), notebook)


def write_run(run_dir: str | os.PathLike, config, metrics: pd.DataFrame) -> None:
    """Write config.json, metrics.csv and environment.json; the folder is not complete until mark_complete.

    `config` is a dict or a (frozen) dataclass. A summary.json left by an earlier execution into the same folder is removed
    first, so a rewrite interrupted halfway does not look complete.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / COMPLETE_MARKER).unlink(missing_ok=True)
    atomic_write_json(run_dir / "config.json", config)
    write_metrics(run_dir / "metrics.csv", metrics)
    atomic_write_json(run_dir / "environment.json", environment_record())


def mark_complete(run_dir: str | os.PathLike, summary: Mapping) -> None:
    """Write summary.json, the completeness marker: every notebook calls this in its last code cell, after its figures and
    sanity checks, so a run killed or failed anywhere before has no summary.json and `batch` redoes it. Returns nothing, so a
    notebook cell that ends with it shows no machine-specific path for nbval to compare."""
    atomic_write_json(Path(run_dir) / COMPLETE_MARKER, summary)


def finalize_run(run_dir: str | os.PathLike, config, metrics: pd.DataFrame, summary: Mapping) -> Path:
    """write_run then mark_complete, for code that has nothing to write in between."""
    write_run(run_dir, config, metrics)
    mark_complete(run_dir, summary)
    return Path(run_dir)


def is_complete(run_dir: str | os.PathLike) -> bool:
    """True iff the run got to its last write, summary.json (mark_complete)."""
    return (Path(run_dir) / COMPLETE_MARKER).is_file()
