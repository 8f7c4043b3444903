"""SLURM backend of the batch runner: every run of a batch becomes one task of a submitit job array, executing the
notebook with papermill into the same run folder a local batch writes, so `report` and resume work unchanged.

Job ids are written to batch.json as soon as SLURM accepts the array; a batch resubmitted after its controller died re-attaches to
the jobs still queued or running instead of submitting them again, collects the ones that finished meanwhile, and submits only the
rest. A job that ends without a result (failed, timed out, preempted, cancelled, node failure) becomes a failed run that names its
SLURM state and log file.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from pathlib import Path

# sacct states after which a job produces nothing more. PREEMPTED counts as final: with PreemptMode=REQUEUE SLURM shows the
# job as REQUEUED/PENDING instead, so a job left PREEMPTED was cancelled by the preemption (submitit would wait on it forever).
TERMINAL = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "TIMEOUT"}
SUBMITIT_FOLDER = "slurm/%j"  # under the batch folder: submitit's pickles and the jobs' logs, one folder per job (array task)


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    """How each run is requested from SLURM; every field is checked here and named by its command-line option."""

    partition: str = ""  # "" = the cluster's default partition
    gpus_per_run: int = 0  # --gpus-per-node of each job
    cpus_per_run: int = 2  # --cpus-per-task; also the run's torch/OpenMP threads
    time_min: int = 60  # --time, minutes: a run still going then is killed (TIMEOUT) and recorded as failed
    mem_gb: float = 0.0  # --mem per job; 0 = the partition's default
    max_parallel: int = 0  # --array=...%N: at most N runs at once; 0 = as many as SLURM grants
    sbatch_args: tuple[tuple[str, str], ...] = ()  # more sbatch options, ("qos", "high") -> --qos=high
    setup: tuple[str, ...] = ()  # shell lines run before each job (module load ..., source venv/bin/activate)
    poll_s: float = 5.0  # seconds between checks of the queue while waiting

    def __post_init__(self):
        def need(ok: bool, option: str, what: str, value) -> None:
            if not ok:  # named as the command line and a sweep notebook's slurm_options spell it
                field = {"--sbatch-arg": "sbatch_args"}.get(option, option.lstrip("-").replace("-", "_"))
                raise ValueError(f"{option} ({field}) must be {what}, got {value!r}")

        for option, value, low in (
            ("--gpus-per-run", self.gpus_per_run, 0),
            ("--cpus-per-run", self.cpus_per_run, 1),
            ("--time-min", self.time_min, 1),
            ("--max-parallel", self.max_parallel, 0),
        ):
            need(isinstance(value, int) and not isinstance(value, bool) and value >= low, option, f"an integer >= {low}", value)
        need(isinstance(self.partition, str) and " " not in self.partition, "--partition", "a partition name", self.partition)
        need(isinstance(self.mem_gb, (int, float)) and self.mem_gb >= 0, "--mem-gb", "a number >= 0", self.mem_gb)
        need(isinstance(self.poll_s, (int, float)) and self.poll_s > 0, "--poll-s", "a number > 0", self.poll_s)
        for key, _ in self.sbatch_args:
            need(
                bool(key) and not key.startswith("-") and "=" not in key,
                "--sbatch-arg",
                "KEY=VALUE with KEY an sbatch option without its dashes (qos=high)",
                key,
            )


def options_from(backend: str, slurm: dict) -> SlurmOptions | None:
    """A sweep notebook's `backend` and `slurm` parameters (a dict of SlurmOptions fields) checked: None for the local backend."""
    fields = {f.name for f in dataclasses.fields(SlurmOptions)}
    if not isinstance(slurm, dict) or set(slurm) - fields:
        raise ValueError(f"parameter `slurm_options` must be a dict with keys among {sorted(fields)}, got {slurm!r}")
    if backend == "local":
        if slurm:
            raise ValueError(f'parameter `slurm_options` ({sorted(slurm)}) applies only with backend = "slurm"')
        return None
    if backend != "slurm":
        raise ValueError(f'parameter `backend` must be "local" or "slurm", got {backend!r}')
    values = dict(slurm)
    if "sbatch_args" in values:  # a notebook writes them as a dict: {"qos": "high"}
        values["sbatch_args"] = tuple(dict(values["sbatch_args"]).items())
    if "setup" in values:
        values["setup"] = tuple(values["setup"])
    return SlurmOptions(**values)


def check_available() -> None:
    """Fail before anything is submitted when this machine cannot talk to SLURM."""
    missing = [c for c in ("sbatch", "sacct", "scancel") if shutil.which(c) is None]
    if missing:
        raise ValueError(
            f"--backend slurm needs SLURM's commands on PATH, missing {missing}: run the batch on a login node "
            "of the cluster, or use --backend local"
        )


def _executor(batch_dir: Path, options: SlurmOptions, job_name: str):
    import submitit

    executor = submitit.SlurmExecutor(folder=batch_dir / SUBMITIT_FOLDER, max_num_timeout=0)
    params = dict(
        job_name=job_name,
        time=options.time_min,
        cpus_per_task=options.cpus_per_run,
        nodes=1,
        ntasks_per_node=1,
        additional_parameters=dict(options.sbatch_args),
        setup=list(options.setup),
        stderr_to_stdout=True,
    )
    if options.partition:
        params["partition"] = options.partition
    if options.gpus_per_run:
        params["gpus_per_node"] = options.gpus_per_run
    if options.mem_gb:
        params["mem"] = f"{int(round(options.mem_gb * 1024))}M"
    if options.max_parallel:
        params["array_parallelism"] = options.max_parallel
    executor.update_parameters(**params)
    return executor


def submit(batch_dir: Path, options: SlurmOptions, job_name: str, calls: list[tuple]) -> list:
    """Submit fn(*args) for every (fn, *args) in `calls` as one job array; the submitit jobs, in order."""
    executor = _executor(batch_dir, options, job_name)
    with executor.batch():
        jobs = [executor.submit(fn, *args) for fn, *args in calls]
    return jobs


def job_for(batch_dir: Path, job_id: str):
    """The submitit job of an earlier submission, from its id (the pickles and logs are in the batch folder)."""
    import submitit

    return submitit.SlurmJob(folder=batch_dir / SUBMITIT_FOLDER, job_id=job_id)


def log_path(job) -> str:
    return str(job.paths.stdout)


def state(job) -> str:
    """SLURM's state of the job from the last queue check ("CANCELLED by 0" -> "CANCELLED"; "UNKNOWN" before the first)."""
    return (job.watcher.get_state(job.job_id, mode="cache").split() or ["UNKNOWN"])[0]


def refresh(jobs: list) -> None:
    """One sacct call for all jobs (submitit's watcher), instead of one per job."""
    if jobs:
        for job in jobs:
            job.watcher.register_job(job.job_id)
        job.watcher.update()


def finished(job) -> bool:
    return job.paths.result_pickle.exists() or state(job) in TERMINAL


def is_active(batch_dir: Path, job_id: str | None) -> bool:
    """Whether a recorded job may still produce its result: queued, running, requeued (so it must not be submitted again)."""
    if not job_id:
        return False
    job = job_for(batch_dir, job_id)
    if job.paths.result_pickle.exists():
        return True  # finished with a result: re-attach to collect it
    refresh([job])
    return state(job) not in TERMINAL | {"UNKNOWN"} or _in_queue(job_id)


def _in_queue(job_id: str) -> bool:
    # sacct may not list a job submitted a moment ago; squeue asks the controller (and fails while it is down).
    try:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and bool(out.stdout.strip())


def outcome(job, grace_s: float = 10.0) -> dict:
    """status/error of a finished job: the run's own record when the job returned one, else a failure naming state and log."""
    from submitit.core.utils import pickle_load

    # Read the result pickle directly: submitit's job.result() waits while it deems the job unfinished, forever for PREEMPTED.
    deadline = time.monotonic() + grace_s  # a shared filesystem may show the pickle a little after sacct says COMPLETED
    while not job.paths.result_pickle.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    if not job.paths.result_pickle.exists():
        return {"status": "failed", "error": f"SLURM job {job.job_id} ended {state(job)} without a result; log: {log_path(job)}"}
    kind, value = pickle_load(job.paths.result_pickle)
    if kind == "success":
        if value.get("status") == "failed":  # the notebook failed, or submitit's timeout signal stopped it: say where to look
            value = {**value, "error": f"{value['error']} [SLURM job {job.job_id}: {state(job)}; log: {log_path(job)}]"}
        return value
    # The job's Python raised outside the notebook (an import, the disk): the trace's last line says what.
    last = [line for line in str(value).splitlines() if line.strip()][-1:] or ["?"]
    return {"status": "failed", "error": f"SLURM job {job.job_id} raised {last[0]}; log: {log_path(job)}"}


def wait(jobs: dict, on_done, poll_s: float) -> None:
    """Call on_done(key, outcome) for every {key: job} as it finishes; checks the queue every poll_s seconds."""
    pending = dict(jobs)
    while pending:
        refresh(list(pending.values()))
        for key, job in list(pending.items()):
            if finished(job):
                on_done(key, outcome(job))
                del pending[key]
        if pending:
            time.sleep(poll_s)


__all__ = [
    "SlurmOptions",
    "TERMINAL",
    "check_available",
    "options_from",
    "finished",
    "is_active",
    "job_for",
    "log_path",
    "outcome",
    "refresh",
    "state",
    "submit",
    "wait",
]
