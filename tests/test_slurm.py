"""The SLURM backend of the batch runner.

Without SLURM: every option is checked and named before anything is submitted. With a real single-node SLURM (slurm_cluster.py,
marked `slurm`): a batch of the main experiment through sbatch gives the same metrics as the same batch run locally; a notebook
error, a cancelled job and a timed-out job are failed runs naming their log; and a batch whose controller dies mid-way (the batch
process and slurmctld, both SIGKILLed) completes when resubmitted, every run executed exactly once.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from slurm_cluster import Cluster, Unavailable
from test_batch import executions, no_execution, summaries, tiny_notebook  # noqa: F401  (no_execution is a fixture)
from test_runner import venv_kernel  # noqa: F401  (fixture)

from iml_nb import __main__ as cli
from iml_nb.runs import batch, slurm

ROOT = Path(__file__).resolve().parent.parent
REQUIRE = os.environ.get("IML_NB_REQUIRE_SLURM") == "1"  # .ci/run sets it: there a SLURM that cannot start fails, never skips


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("slurm"), cpus=4)
    try:
        c.start()
    except Unavailable as exc:
        c.stop()
        (pytest.fail if REQUIRE else pytest.skip)(f"SLURM could not be started here: {exc}")
    patch = pytest.MonkeyPatch()
    patch.setenv("SLURM_CONF", c.env["SLURM_CONF"])  # for sbatch/sacct/squeue called by the runner and its subprocesses
    yield c
    patch.undo()
    c.stop()


def _cli_batch(nb: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "iml_nb", "batch", str(nb), "--out", str(out), "--backend", "slurm", "--poll-s", "0.5", *args]


def _wait(what: str, check, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


# -- without SLURM -----------------------------------------------------------------------------------------------------------


def test_options_are_checked_and_named_by_their_flag():
    for kwargs, flag in (
        (dict(cpus_per_run=0), "--cpus-per-run"),
        (dict(time_min=0), "--time-min"),
        (dict(gpus_per_run=-1), "--gpus-per-run"),
        (dict(max_parallel=1.5), "--max-parallel"),
        (dict(mem_gb=-1), "--mem-gb"),
        (dict(partition="a b"), "--partition"),
        (dict(sbatch_args=(("--qos", "x"),)), "--sbatch-arg"),
        (dict(poll_s=0), "--poll-s"),
    ):
        with pytest.raises(ValueError, match=flag):
            slurm.SlurmOptions(**kwargs)


def test_sweep_notebook_parameters_become_options_or_a_named_error():
    assert slurm.options_from("local", {}) is None
    options = slurm.options_from(
        "slurm", {"partition": "gpu", "gpus_per_run": 1, "sbatch_args": {"qos": "high"}, "setup": ["module load cuda"]}
    )
    assert options == slurm.SlurmOptions(partition="gpu", gpus_per_run=1, sbatch_args=(("qos", "high"),), setup=("module load cuda",))
    for backend, given, message in (
        ("local", {"partition": "gpu"}, "applies only with backend"),
        ("slurm", {"gpus": 1}, "`slurm_options` must be a dict with keys among"),
        ("cluster", {}, "`backend` must be"),
        ("slurm", {"time_min": 0}, "--time-min"),
    ):
        with pytest.raises(ValueError, match=message):
            slurm.options_from(backend, given)


def test_cli_refuses_misplaced_or_bad_slurm_options_before_anything_runs(tmp_path, no_execution, capsys):  # noqa: F811
    nb, out = tiny_notebook(tmp_path), tmp_path / "out"
    cases = [
        (["--partition", "gpu"], "--partition apply only with --backend slurm"),
        (["--backend", "slurm", "--jobs", "2"], "--jobs is for --backend local"),
        (["--backend", "slurm", "--sbatch-arg", "qos"], "--sbatch-arg 'qos': expected KEY=VALUE"),
        (["--backend", "slurm", "--time-min", "0"], "--time-min (time_min) must be an integer >= 1"),
    ]
    for args, message in cases:
        assert cli.main(["batch", str(nb), "--grid", "x=1,2", "--out", str(out), *args]) == 1
        assert message in capsys.readouterr().err
    assert not out.exists()


def test_slurm_backend_needs_the_slurm_commands(tmp_path, monkeypatch, no_execution, capsys):  # noqa: F811
    monkeypatch.setattr(slurm.shutil, "which", lambda name: None)
    nb, out = tiny_notebook(tmp_path), tmp_path / "out"
    assert cli.main(["batch", str(nb), "--grid", "x=1", "--out", str(out), "--backend", "slurm"]) == 1
    assert "--backend slurm needs SLURM's commands on PATH" in capsys.readouterr().err
    assert not out.exists()


def test_a_job_that_left_no_result_is_a_failed_run_naming_state_and_log(tmp_path):
    class Watcher:
        def get_state(self, job_id, mode):
            return "TIMEOUT"

    paths = SimpleNamespace(result_pickle=tmp_path / "7_0_result.pkl", stdout=tmp_path / "7_0_log.out")
    job = SimpleNamespace(job_id="7", paths=paths, watcher=Watcher())
    assert slurm.finished(job)
    assert slurm.outcome(job, grace_s=0) == {
        "status": "failed",
        "error": f"SLURM job 7 ended TIMEOUT without a result; log: {paths.stdout}",
    }


# -- a real SLURM --------------------------------------------------------------------------------------------------------------

MAIN_TINY = {
    "n_people": 100,
    "model": "pythia-tiny",
    "stage0_epochs": 2,
    "stage1_epochs": 2,
    "stage2_epochs": 2,
    "n_seeds": 1,
    "n_seeds_stage2": 1,
    "n_jobs": 1,
}


@pytest.mark.slurm
def test_main_experiment_batch_on_slurm_equals_the_local_batch(tmp_path, cluster, venv_kernel):  # noqa: F811
    grid = {"seed": [0, 1]}
    tables = {}
    for backend in ("local", "slurm"):  # each with its own Stage-0 cache, so each trains everything itself
        fixed = {**MAIN_TINY, "cache_dir": str(tmp_path / f"cache-{backend}")}
        options = slurm.SlurmOptions(cpus_per_run=1, poll_s=0.5) if backend == "slurm" else None
        tables[backend] = batch.run_batch(
            "01_main_two_stage", grid, fixed=fixed, jobs=2, out=tmp_path / backend, name="b", progress=False, backend=backend, slurm=options
        )  # 1 thread per run on both
        assert list(tables[backend].status) == ["complete", "complete"], tables[backend].to_dict("records")
    slurm_table = tables["slurm"]
    assert slurm_table["job_id"].str.fullmatch(r"\d+_\d").all() and all(Path(p).exists() for p in slurm_table["log"])
    for run in ("seed=0", "seed=1"):
        local, remote = (pd.read_csv(tmp_path / b / "b" / run / "metrics.csv") for b in ("local", "slurm"))
        assert len(local) > 50 and local["metric"].eq("em").any()
        pd.testing.assert_frame_equal(local, remote)
        s_local, s_remote = (json.loads((tmp_path / b / "b" / run / "summary.json").read_text()) for b in ("local", "slurm"))
        assert s_local == s_remote
    record = json.loads((tmp_path / "slurm" / "b" / "batch.json").read_text())
    assert record["backend"] == "slurm" and record["slurm"]["cpus_per_run"] == 1
    again = batch.run_batch(
        "01_main_two_stage",
        grid,
        fixed={**MAIN_TINY, "cache_dir": str(tmp_path / "cache-slurm")},
        out=tmp_path / "slurm",
        name="b",
        progress=False,
        backend="slurm",
        slurm=slurm.SlurmOptions(cpus_per_run=1),
    )
    assert list(again.status) == ["skipped", "skipped"] and list(again.job_id) == list(slurm_table.job_id)  # who made them, kept


@pytest.mark.slurm
def test_notebook_error_killed_job_and_timeout_are_failed_runs_with_their_log(tmp_path, cluster, venv_kernel):  # noqa: F811
    nb, log = tiny_notebook(tmp_path), tmp_path / "log.txt"
    out = tmp_path / "out"

    def start(name: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            _cli_batch(nb, out, *args, "-p", "log", str(log), "--cpus-per-run", "1", "--name", name),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    procs = {
        "error": start("error", "--grid", "x=1,2", "-p", "fail_on", "2"),  # three batches at once
        "killed": start("killed", "--grid", "x=3", "-p", "sleep_s", "600"),
        # 3 minutes: submitit asks for its signal 90 s before the limit and SLURM may send it up to 60 s early; with less, it can
        # arrive before the job's Python has installed its handler, and the job dies of the signal instead of stopping cleanly.
        "timeout": start("timeout", "--grid", "x=4", "-p", "sleep_s", "600", "--time-min", "3"),
    }
    # SIGKILL the x=3 job once its notebook runs, as a node failure or an OOM kill would: nothing in it can write a result.
    _wait("x=3 to run", lambda: "3 0" in executions(log))
    job_id = json.loads((out / "killed" / "batch.json").read_text())["runs"][0]["job_id"]
    subprocess.run(["scancel", "--signal=KILL", "--full", job_id], check=True, env=cluster.env)
    runs = {}
    for name, proc in procs.items():
        proc.communicate(timeout=300)
        assert proc.returncode == 1, name
        runs[name] = json.loads((out / name / "batch.json").read_text())["runs"]
    assert [r["status"] for r in runs["error"]] == ["complete", "failed"]
    assert "ValueError: x is 2" in runs["error"][1]["error"]
    [killed], [timeout] = runs["killed"], runs["timeout"]
    # Whether the job's Python outlives the kill long enough to record the dead kernel depends on how SLURM tracks processes.
    assert killed["status"] == "failed" and re.search(r"\b(CANCELLED|FAILED)\b", killed["error"]), killed
    # submitit signals a job 90 s before its limit; the run stops and says why
    assert timeout["status"] == "failed" and "timed-out" in timeout["error"], timeout
    for run in (runs["error"][1], killed, timeout):
        assert run["log"] in run["error"] and Path(run["log"]).exists() and run["job_id"] in run["error"]
    assert set(summaries(out / "error")) == {"x=1"}  # nothing that failed looks complete
    assert not summaries(out / "killed") and not summaries(out / "timeout")


@pytest.mark.slurm
def test_killed_controller_then_resubmitted_batch_completes_without_duplicates(tmp_path, cluster, venv_kernel):  # noqa: F811
    nb, log, out = tiny_notebook(tmp_path), tmp_path / "log.txt", tmp_path / "out"
    argv = _cli_batch(nb, out, "--grid", "x=1,2,3,4,5", "-p", "sleep_s", "10", "-p", "log", str(log), "--cpus-per-run", "1", "--name", "k")
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    batch_json = out / "k" / "batch.json"
    # Wait until every run is submitted and some notebooks are running (4 CPUs: x=5 is still queued), then kill both controllers.
    _wait(
        "the runs to start",
        lambda: (
            batch_json.exists() and all(r.get("job_id") for r in json.loads(batch_json.read_text())["runs"]) and len(executions(log)) >= 2
        ),
    )
    submitted = {r["folder"]: r["job_id"] for r in json.loads(batch_json.read_text())["runs"]}
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    cluster.kill_controller()
    time.sleep(2)
    cluster.start_controller()
    second = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    runs = json.loads(batch_json.read_text())["runs"]
    # A run whose job finished while no controller watched is found complete ("skipped"); the others are attached to, not resubmitted.
    assert {r["status"] for r in runs} <= {"complete", "skipped"}
    assert {r["folder"]: r["job_id"] for r in runs} == submitted  # nothing submitted twice
    assert all(r.get("attached") for r in runs if r["status"] == "complete") and not any(r.get("moved_aside") for r in runs)
    assert executions(log) == ["1 0", "2 0", "3 0", "4 0", "5 0"]  # every run executed exactly once
    assert {k: v["value"] for k, v in summaries(out / "k").items()} == {f"x={x}": 10 * x for x in range(1, 6)}
