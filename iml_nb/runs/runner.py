"""Execute a parameterised notebook with papermill into its own run folder under outputs/ (STYLE: Notebooks, Results)."""

from __future__ import annotations

import json
import os
import platform
import re
import time
from pathlib import Path

import yaml

from iml_nb.core.env import PROGRESS_LOG, PROJECT_ROOT
from iml_nb.core.parameters import reject_unknown
from iml_nb.core.results import atomic_write_json, is_complete, new_run_id

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
RUNNER_PARAMETERS = ("output_dir",)  # set by run_notebook itself, never by the caller

# PyYAML follows YAML 1.1, which reads "1e-4" (no dot) as a string; learning rates are written that way.
_BARE_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
_COUNTING = re.compile(r"(.+?): (\d+)/(\d+)\b")  # a progress line that counts: "<what>: k/n (…)"


class NotebookRunError(RuntimeError):
    """The notebook raised; the executed notebook with the traceback is in `run_dir`."""

    def __init__(self, message: str, run_dir: Path):
        super().__init__(message)
        self.run_dir = run_dir


def parse_value(text: str):
    """A CLI value as papermill's -p/-y would type it: YAML ("0.5" -> 0.5, "true" -> True, "[1,2]" -> [1, 2])."""
    value = yaml.safe_load(text)
    if isinstance(value, str) and _BARE_EXPONENT.fullmatch(value.strip()):
        return float(value)
    return value


def read_parameters_file(path: str | os.PathLike) -> dict:
    """A parameters file (YAML, name: value), as papermill's -f reads it; an empty file is no parameters."""
    loaded = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a parameters file must hold a mapping of name: value")
    return loaded


def resolve_notebook(notebook: str | os.PathLike) -> Path:
    """A path to an .ipynb, or a stem such as "01_main_two_stage" looked up under notebooks/."""
    given = Path(notebook)
    candidates = [given, given.with_name(given.name + ".ipynb"), NOTEBOOKS_DIR / given, NOTEBOOKS_DIR / (given.name + ".ipynb")]
    for path in candidates:
        if path.is_file() and path.suffix == ".ipynb":
            return path.resolve()
    known = sorted(p.stem for p in NOTEBOOKS_DIR.glob("*.ipynb"))
    raise FileNotFoundError(f"no notebook {str(notebook)!r}; notebooks under {NOTEBOOKS_DIR}: {known}")


def declared_parameters(notebook: str | os.PathLike) -> dict:
    """Name -> papermill's record (inferred type, default, help) for the notebook's `parameters` cell."""
    import papermill as pm  # imported here so `python -m iml_nb --help` stays quick

    try:
        return pm.inspect_notebook(str(notebook))
    except ValueError as exc:  # papermill's words for a notebook saved without kernelspec metadata
        raise ValueError(
            f"cannot read the parameters of {Path(notebook).name}: {exc} "
            "(save it from Jupyter with the Python 3 kernel so it records metadata.kernelspec)"
        ) from exc


def check_parameters(notebook: str | os.PathLike, parameters: dict) -> None:
    """Raise ValueError for names the notebook does not declare; papermill itself would only warn and go on."""
    declared = declared_parameters(notebook)
    for name in RUNNER_PARAMETERS:
        if name not in declared:
            raise ValueError(f"{Path(notebook).name} has no `{name}` parameter; run_notebook needs it to place results")
    reserved = sorted(set(parameters) & set(RUNNER_PARAMETERS))
    if reserved:
        raise ValueError(f"parameters {reserved} are set by the runner; choose the folder with outputs_root/run_id")
    # The check each notebook's first cell makes under plain papermill; output_dir is the runner's, so not listed as valid here.
    reject_unknown(parameters, set(declared) - set(RUNNER_PARAMETERS), Path(notebook).name)


def run_notebook(
    notebook: str | os.PathLike, parameters: dict | None = None, outputs_root: str | os.PathLike = "outputs", run_id: str | None = None
) -> Path:
    """Execute `notebook` into outputs_root/<stem>/<run id>/<notebook name> and return that run folder.

    The notebook gets `parameters` plus `output_dir` (the run folder, absolute) and writes its results there.
    Parameters are checked before anything runs. The kernel starts in the repository root, so `import iml_nb`
    works without installing the package and relative paths mean the same as on the command line.
    """
    notebook = resolve_notebook(notebook)
    parameters = dict(parameters or {})
    check_parameters(notebook, parameters)

    run_dir = (Path(outputs_root) / notebook.stem / (run_id or new_run_id())).resolve()
    return execute_into(notebook, parameters, run_dir)


class ProgressTail:
    """While a notebook runs, print the progress lines its kernel appends to `path` (env.log_progress) to stderr, at most one
    every `every` seconds (the newest), so a terminal shows training move, not only papermill's cell counter. A line that counts
    ("<what>: k/n (…)") gets an ETA for <what> from the rate since it was first seen; `label` (a batch's run folder) prefixes each
    line, so runs side by side stay apart."""

    def __init__(self, path: Path, every: float = 5.0, stream=None, label: str = ""):
        import sys
        import threading

        self.path, self.every, self.stream, self.label = path, every, stream or sys.stderr, label
        self._first: dict[str, tuple[float, int]] = {}  # <what> -> (when, k) of its first line
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        offset, shown = 0, ""
        while not self._stop.wait(self.every):
            shown = self._show(offset, shown)
            offset = self.path.stat().st_size if self.path.exists() else 0
        self._show(offset, shown)

    def _show(self, offset: int, shown: str) -> str:
        if not self.path.exists():
            return shown
        with open(self.path, encoding="utf-8") as f:
            f.seek(offset)
            lines = f.read().splitlines()
        if lines and lines[-1] != shown:
            prefix = f"{self.label}: " if self.label else ""
            print(f"  {prefix}{lines[-1]}{self.eta(lines[-1])}", file=self.stream, flush=True)
            return lines[-1]
        return shown

    def eta(self, line: str, now: float | None = None) -> str:
        """What to append to a counting line: " · ETA <time>" once its count has moved since first seen, else nothing."""
        match = _COUNTING.match(line)
        if not match:
            return ""
        what, k, n = match[1], int(match[2]), int(match[3])
        now = time.monotonic() if now is None else now
        since, k0 = self._first.setdefault(what, (now, k))
        if k <= k0 or k >= n:
            return ""
        return f" · ETA {duration((now - since) / (k - k0) * (n - k))}"

    def __enter__(self):
        self.path.unlink(missing_ok=True)
        os.environ[PROGRESS_LOG] = str(self.path)  # the kernel papermill starts inherits it
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        os.environ.pop(PROGRESS_LOG, None)
        self._stop.set()
        self._thread.join()
        self.path.unlink(missing_ok=True)


EXECUTIONS = "executions.json"  # in each run folder: every execution of its notebook, with its wall time


class ExecutionLog:
    """Record one execution of a run's notebook in `<run>/executions.json`: when it started, on which CPU, and its wall time so
    far, rewritten every `every` seconds and at the end, so an execution killed between two writes still counts to within `every`.
    A run resumed from the seed cache adds an entry per execution; `wall_time` sums them: what the run cost, not what its last
    execution did."""

    def __init__(self, run_dir: Path, every: float = 60.0):
        import threading
        from datetime import UTC, datetime

        self.path, self.every = run_dir / EXECUTIONS, every
        self._entries = json.loads(self.path.read_text()) if self.path.exists() else []
        self._entry = {
            "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": 0.0,
            "outcome": "running",
            "machine": machine(),
        }
        self._start, self._stop = time.monotonic(), threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _write(self, outcome: str = "running") -> None:
        self._entry.update(seconds=round(time.monotonic() - self._start, 1), outcome=outcome)
        atomic_write_json(self.path, [*self._entries, self._entry])

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            self._write()

    def __enter__(self):
        self._write()
        self._thread.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._write("failed" if exc_type else "finished")


def machine() -> str:
    """The CPU an execution ran on, e.g. "AMD EPYC, 2 CPUs": a run resumed from the seed cache may have trained its seeds on
    several machines, and its environment.json names only the last."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:  # not Linux
        model = platform.processor()
    return f"{model or platform.machine()}, {os.cpu_count()} CPUs"


def executions(run_dir: str | os.PathLike) -> list[dict] | None:
    """The run's recorded executions (None for a run made before executions were recorded)."""
    path = Path(run_dir) / EXECUTIONS
    return json.loads(path.read_text()) if path.exists() else None


def wall_time(run_dir: str | os.PathLike) -> float | None:
    """Seconds the run's executions took in all (None for a run made before executions were recorded)."""
    recorded = executions(run_dir)
    return sum(e["seconds"] for e in recorded) if recorded is not None else None


def duration(seconds: float) -> str:
    """A duration (time left, time taken) in words a reader takes in at a glance: "40 s", "12 min", "1 h 05 min"."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


PROGRESS = ("bar", "lines", "off")


def execute_into(notebook: Path, parameters: dict, run_dir: Path, progress: str = "bar") -> Path:
    """Execute an already resolved and checked notebook into `run_dir` (run_notebook's last step; batch.py calls it per run).

    `progress`: "bar" (an interactive `run`) shows papermill's cell counter and the kernel's training progress lines on stderr;
    "lines" (a batch's run, in a worker or a SLURM job whose log is its stderr) only the lines, each labelled with the run folder;
    "off" nothing."""
    if progress not in PROGRESS:
        raise ValueError(f"`progress` must be one of {PROGRESS}, got {progress!r}")
    import contextlib

    import papermill as pm

    if is_complete(run_dir):
        raise FileExistsError(f"{run_dir} already holds a complete run; pick another run_id")
    run_dir.mkdir(parents=True, exist_ok=True)
    label = run_dir.name if progress == "lines" else ""
    tail = ProgressTail(run_dir / "progress.log", label=label) if progress != "off" else contextlib.nullcontext()
    try:
        with ExecutionLog(run_dir), tail:
            pm.execute_notebook(
                str(notebook),
                str(run_dir / notebook.name),
                parameters={**parameters, "output_dir": str(run_dir)},
                kernel_name="python3",
                cwd=str(PROJECT_ROOT),
                progress_bar=progress == "bar",
            )
    except pm.PapermillExecutionError as exc:
        raise NotebookRunError(
            f"{notebook.name} failed in cell {exc.exec_count} with {exc.ename}: {exc.evalue}\n"
            f"the executed notebook, with the traceback, is in {run_dir}",
            run_dir,
        ) from exc
    except Exception as exc:  # kernel died, timed out or never started: the folder may hold a partial notebook
        raise NotebookRunError(f"{notebook.name} did not finish ({type(exc).__name__}: {exc}); see {run_dir}", run_dir) from exc
    return run_dir
