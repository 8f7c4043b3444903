"""Batch runner for the §5-6 ablations: one papermill run per grid point x seed, in parallel processes, resumable."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import itertools
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from iml_nb.core.parallel import exit_with_parent
from iml_nb.core.results import atomic_write_json, is_complete, new_run_id, to_jsonable
from iml_nb.runs import runner
from iml_nb.runs import slurm as slurm_jobs
from iml_nb.runs.grid import grid_axes, plan_runs
from iml_nb.runs.slurm import SlurmOptions

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "IML_NB_THREADS")
BACKENDS = ("local", "slurm")


def _execute(notebook: Path, params: dict, run_dir: Path, threads: int, environ: dict | None, progress: bool = True) -> dict:
    """One run, in a worker process or a SLURM job: never raises for a failed notebook, so one failure does not stop the batch.
    With `progress` its training progress lines go to stderr, labelled with its folder (the terminal, or the SLURM job's log)."""
    # The kernel inherits this process's environment: locally the caller's as it is now (the fork server holds the one of its
    # start), with K runs of cpu/K threads each, which fill the cores without oversubscribing them; in a SLURM job its own
    # (environ None: it holds the job's CUDA_VISIBLE_DEVICES), with the job's CPUs as threads.
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    os.environ.update({var: str(threads) for var in THREAD_VARS})
    start = time.monotonic()
    try:
        runner.execute_into(notebook, params, run_dir, progress="lines" if progress else "off")
        error = None if is_complete(run_dir) else "the notebook finished without writing summary.json"
    except Exception as exc:  # the first line names the failing cell and the exception (runner.NotebookRunError)
        error = (str(exc).splitlines() or [type(exc).__name__])[0]
    return {"status": "failed" if error else "complete", "error": error, "duration_s": round(time.monotonic() - start, 1)}


def _check_resumable(batch_json: Path, notebook: Path, axes: dict, fixed: dict) -> dict:
    """The batch recorded in batch_json ({} if none), after checking a rerun may reuse its run folders."""
    # Run folders are named by grid values only: reusing them is sound only for the same notebook, axes and fixed values.
    if not batch_json.is_file():
        return {}
    old = json.loads(batch_json.read_text())
    differs = [
        what
        for what, before, now in (
            ("notebook", Path(old["notebook"]).name, notebook.name),
            ("grid axes", old["axes"], list(axes)),
            ("fixed parameters", old["fixed"], to_jsonable(fixed)),
        )
        if before != now
    ]
    if differs:
        raise ValueError(
            f"{batch_json.parent} holds a batch with other {' and '.join(differs)} "
            f"({old['notebook']}, axes {old['axes']}, fixed {old['fixed']}): give another --name"
        )
    return old


def summary_table(batch: dict) -> pd.DataFrame:
    """One row per run: run folder name, grid values, status, duration_s, error."""
    slurm_columns = ("job_id", "log") if batch.get("backend") == "slurm" else ()
    return pd.DataFrame(
        [
            {
                "run": r["folder"],
                **r["params"],
                "status": r["status"],
                "duration_s": r["duration_s"],
                "error": r["error"],
                **{c: r.get(c) for c in slurm_columns},
            }
            for r in batch["runs"]
        ]
    )


def _checked(notebook, grid: dict, seeds, fixed, jobs: int, backend: str, slurm):
    """Every option of a batch, checked before anything runs: (notebook path, grid axes, fixed parameters, SLURM options)."""
    notebook = runner.resolve_notebook(notebook)
    fixed = dict(fixed or {})
    axes = grid_axes(grid, seeds)
    if backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {list(BACKENDS)}, got {backend!r}")
    if backend == "slurm":
        slurm = slurm or SlurmOptions()
        if not isinstance(slurm, SlurmOptions):
            raise ValueError(f"slurm must be a SlurmOptions, got {type(slurm).__name__}")
        slurm_jobs.check_available()
    elif slurm is not None:
        raise ValueError("SLURM options (--partition, --gpus-per-run, ...) need --backend slurm")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    both = sorted(set(axes) & set(fixed))
    if both:
        raise ValueError(f"parameters {both} are both varied and fixed; give each once")
    declared = runner.declared_parameters(notebook)
    if seeds is not None and "seed" not in declared:
        raise ValueError(f"--seeds needs a `seed` parameter, and {notebook.name} declares none")
    runner.check_parameters(notebook, {**fixed, **{axis: values[0] for axis, values in axes.items()}})
    if "n_jobs" in declared and "n_jobs" not in fixed and "n_jobs" not in axes:
        fixed["n_jobs"] = 1  # the batch's processes are the parallelism; a run forking its own workers would oversubscribe
    return notebook, axes, fixed, slurm


def _written_over_s(folder: Path) -> float | None:
    """Seconds from the first to the last write of any file in a run folder: a killed run's time, to within one epoch's progress."""
    times = [f.stat().st_mtime for f in folder.rglob("*") if f.is_file()]
    return round(max(times) - min(times), 1) if times else None


def _records(batch_dir: Path, runs: list, recorded: dict, backend: str) -> list[dict]:
    """One record per run: complete ones skipped, ones a dead controller left in SLURM re-attached, incomplete ones moved aside."""
    records = []
    # A skipped run keeps the duration its earlier execution recorded: rerunning a batch must not erase what it measured.
    before = {r["folder"]: r for r in recorded.get("runs", [])}
    for folder, params in runs:
        record = {"folder": folder, "params": params, "status": "pending", "error": None, "duration_s": None, "moved_aside": None}
        run_dir = batch_dir / folder
        earlier = before.get(folder, {})
        job_id = earlier.get("job_id")
        # Attempts redone after a failure stay on record: their time was spent, and their error is part of the run's story.
        record["earlier_attempts"] = earlier.get("earlier_attempts", [])
        if is_complete(run_dir):
            record.update(
                status="skipped", duration_s=earlier.get("duration_s"), **{k: earlier[k] for k in ("job_id", "log") if earlier.get(k)}
            )  # which SLURM job made it, if one did
        elif backend == "slurm" and slurm_jobs.is_active(batch_dir, job_id):
            # Queued or running from an earlier submission (its controller died): wait for it, never submit it twice.
            record.update(status="submitted", job_id=job_id, log=before[folder].get("log"), attached=True)
        elif run_dir.exists():  # killed or failed before: keep what it produced, out of the way of the rerun
            record["moved_aside"] = f"{folder}.failed-{new_run_id()}"
            run_dir.rename(batch_dir / record["moved_aside"])
            if earlier:
                attempt = {k: earlier.get(k) for k in ("status", "error", "duration_s")}
                if attempt["duration_s"] is None:  # killed: it ran at least from its first file to its last write
                    attempt["written_over_s"] = _written_over_s(batch_dir / record["moved_aside"])
                record["earlier_attempts"] = record["earlier_attempts"] + [{**attempt, "moved_aside": record["moved_aside"]}]
        records.append(record)
    return records


def run_batch(
    notebook: str | os.PathLike,
    grid: dict[str, list],
    seeds: int | None = None,
    fixed: dict | None = None,
    jobs: int = 1,
    out: str | os.PathLike = "outputs",
    name: str | None = None,
    progress: bool = True,
    backend: str = "local",
    slurm: SlurmOptions | None = None,
) -> pd.DataFrame:
    """Execute `notebook` once per grid point (x seed) into <out>/<name>/<run name>/ and return the summary table.

    Runs already complete are skipped; an existing incomplete folder (a killed or failed run) is moved aside to
    <run name>.failed-<run id> and redone. <out>/<name>/batch.json records the batch and every run's status,
    rewritten atomically after each run. A failed run is recorded with its error and the others go on.
    The default name is <notebook stem>__<axis>-<axis>; the table's attrs["batch_json"] is that file.

    backend "local" runs `jobs` notebooks at a time in processes on this machine; "slurm" submits every run as a task of one
    job array (`slurm` says how) and waits for them. A SLURM run still queued or running when an earlier controller died is
    re-attached to, not submitted again.

    `progress`: a bar over the runs and, on stderr, each running run's training progress lines labelled with its folder; SLURM
    jobs write those lines to their logs either way.
    """
    notebook, axes, fixed, slurm = _checked(notebook, grid, seeds, fixed, jobs, backend, slurm)

    batch_dir = (Path(out) / (name or f"{notebook.stem}__{'-'.join(axes)}")).resolve()
    batch_json = batch_dir / "batch.json"
    runs = plan_runs(axes)
    recorded = _check_resumable(batch_json, notebook, axes, fixed)
    threads = slurm.cpus_per_run if backend == "slurm" else max(1, (os.cpu_count() or 1) // jobs)
    # "axes" keeps the grid's order, which names the run folders: batch.json is written with sorted keys.
    batch = {
        "notebook": str(notebook),
        "axes": list(axes),
        "grid": axes,
        "fixed": fixed,
        "backend": backend,
        "jobs": jobs if backend == "local" else None,
        "threads_per_run": threads,
        "slurm": dataclasses.asdict(slurm) if backend == "slurm" else None,
        "runs": _records(batch_dir, runs, recorded, backend),
    }
    atomic_write_json(batch_json, batch)

    skipped = sum(r["status"] == "skipped" for r in batch["runs"])
    bar = tqdm(total=len(runs), initial=skipped, desc=batch_dir.name, unit="run", position=0, disable=not progress)

    def finish(record: dict, result: dict) -> None:
        record.update(result)
        atomic_write_json(batch_json, batch)
        bar.set_postfix_str(f"{record['folder']}: {record['status']}")
        bar.update()

    try:
        if backend == "local":
            _run_local(notebook, fixed, batch_dir, batch, threads, jobs, finish, progress)
        else:
            _run_slurm(notebook, fixed, batch_dir, batch, batch_json, slurm, finish)
    finally:
        bar.close()
    table = summary_table(batch)
    table.attrs["batch_json"] = str(batch_json)
    return table


def _run_local(notebook: Path, fixed: dict, batch_dir: Path, batch: dict, threads: int, jobs: int, finish, progress: bool) -> None:
    todo = iter([r for r in batch["runs"] if r["status"] == "pending"])
    # Not forked from this process, which may hold threads (tqdm's monitor, a notebook's zmq); a fork server that has
    # imported papermill once hands each worker out in milliseconds instead of a 3-4 s fresh import per worker.
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["iml_nb.runs.batch", "papermill"])
    with cf.ProcessPoolExecutor(jobs, mp_context=context, initializer=exit_with_parent) as pool:

        def submit(records) -> dict:
            return {
                pool.submit(_execute, notebook, {**fixed, **r["params"]}, batch_dir / r["folder"], threads, dict(os.environ), progress): r
                for r in records
            }

        # At most `jobs` runs handed out at a time, so after Ctrl-C no queued run starts in a worker.
        running = submit(itertools.islice(todo, jobs))
        try:
            while running:
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    record = running.pop(future)
                    try:
                        result = future.result()
                    except Exception as exc:  # the worker process itself died (killed, out of memory)
                        result = dict(status="failed", error=f"worker process died: {type(exc).__name__}: {exc}")
                    finish(record, result)
                    running.update(submit(itertools.islice(todo, 1)))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def _run_slurm(notebook: Path, fixed: dict, batch_dir: Path, batch: dict, batch_json: Path, options: SlurmOptions, finish) -> None:
    todo = [r for r in batch["runs"] if r["status"] == "pending"]
    if todo:
        calls = [(_execute, notebook, {**fixed, **r["params"]}, batch_dir / r["folder"], options.cpus_per_run, None) for r in todo]
        for record, job in zip(todo, slurm_jobs.submit(batch_dir, options, batch_dir.name, calls)):
            record.update(status="submitted", job_id=job.job_id, log=slurm_jobs.log_path(job))
        atomic_write_json(batch_json, batch)  # the job ids, before any waiting: a controller killed now loses nothing
    waiting = {r["folder"]: slurm_jobs.job_for(batch_dir, r["job_id"]) for r in batch["runs"] if r["status"] == "submitted"}
    by_folder = {r["folder"]: r for r in batch["runs"]}
    slurm_jobs.wait(waiting, lambda folder, result: finish(by_folder[folder], result), options.poll_s)
