"""Execute a parameterised notebook with papermill into its own run folder under outputs/ (STYLE: Notebooks, Results)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from iml_nb.env import PROJECT_ROOT
from iml_nb.parameters import reject_unknown
from iml_nb.results import is_complete, new_run_id

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
RUNNER_PARAMETERS = ("output_dir",)  # set by run_notebook itself, never by the caller

# PyYAML follows YAML 1.1, which reads "1e-4" (no dot) as a string; learning rates are written that way.
_BARE_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


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


def resolve_notebook(notebook: str | os.PathLike) -> Path:
    """A path to an .ipynb, or a stem such as "01_main_two_stage" looked up under notebooks/."""
    given = Path(notebook)
    candidates = [given, given.with_name(given.name + ".ipynb"),
                  NOTEBOOKS_DIR / given, NOTEBOOKS_DIR / (given.name + ".ipynb")]
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
        raise ValueError(f"cannot read the parameters of {Path(notebook).name}: {exc} "
                         "(save it from Jupyter with the Python 3 kernel so it records metadata.kernelspec)") from exc


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


def run_notebook(notebook: str | os.PathLike, parameters: dict | None = None,
                 outputs_root: str | os.PathLike = "outputs", run_id: str | None = None) -> Path:
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


def execute_into(notebook: Path, parameters: dict, run_dir: Path, progress_bar: bool = True) -> Path:
    """Execute an already resolved and checked notebook into `run_dir` (run_notebook's last step; batch.py calls it per run)."""
    import papermill as pm

    if is_complete(run_dir):
        raise FileExistsError(f"{run_dir} already holds a complete run; pick another run_id")
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(str(notebook), str(run_dir / notebook.name),
                            parameters={**parameters, "output_dir": str(run_dir)},
                            kernel_name="python3", cwd=str(PROJECT_ROOT), progress_bar=progress_bar)
    except pm.PapermillExecutionError as exc:
        raise NotebookRunError(
            f"{notebook.name} failed in cell {exc.exec_count} with {exc.ename}: {exc.evalue}\n"
            f"the executed notebook, with the traceback, is in {run_dir}", run_dir) from exc
    except Exception as exc:  # kernel died, timed out or never started: the folder may hold a partial notebook
        raise NotebookRunError(f"{notebook.name} did not finish ({type(exc).__name__}: {exc}); see {run_dir}",
                               run_dir) from exc
    return run_dir
