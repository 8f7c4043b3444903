"""Seed workers die with their parent: a killed notebook kernel or batch leaves no process training on."""

import subprocess
import sys
import time

import psutil
import pytest
import torch

SCRIPT = """
from iml_nb.people_qa.config import build_config
from iml_nb.people_qa.experiment import run_experiment
cfg = build_config(n_people=60, model="pythia-tiny", stage0_epochs=1, stage1_epochs=500, stage2_epochs=1, n_seeds=2, n_jobs=2,
                   cache_dir={cache!r})
run_experiment(cfg, progress=False)
"""


def _wait(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.5)
    return False


@pytest.mark.slow
def test_killing_the_parent_stops_its_seed_workers(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT.format(cache=str(tmp_path))])
    proc = psutil.Process(parent.pid)
    workers = lambda: [c for c in proc.children() if "spawn_main" in " ".join(c.cmdline())]  # noqa: E731
    try:
        assert _wait(lambda: len(workers()) == 2, 120), "two seed workers should start"
        time.sleep(10)  # past their imports: training Stage 1 (500 epochs, far longer than this test)
        children = proc.children(recursive=True)
    finally:
        parent.kill()  # SIGKILL: the parent cannot clean up, as with kill -9 or an out-of-memory kill
        parent.wait()
    gone, alive = psutil.wait_procs(children, timeout=60)
    assert not alive, f"still running after the parent was killed: {[p.cmdline()[:4] for p in alive]}"


@pytest.mark.slow
def test_seeds_in_two_processes_equal_seeds_in_one(tmp_path):
    from iml_nb.people_qa.config import build_config
    from iml_nb.people_qa.experiment import run_experiment

    common = dict(n_people=60, model="pythia-tiny", stage0_epochs=1, stage1_epochs=1, stage2_epochs=1, n_seeds=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each worker (Stage 0 runs here): float sums in other thread counts may round differently
    try:
        one, _ = run_experiment(build_config(**common, n_jobs=1, cache_dir=str(tmp_path / "a")), progress=False)
        two, _ = run_experiment(build_config(**common, n_jobs=2, cache_dir=str(tmp_path / "b")), progress=False)
    finally:
        torch.set_num_threads(threads)
    cols = ["seed", "seed_stage2", "stage", "epoch", "subset", "metric"]
    assert one.sort_values(cols).reset_index(drop=True).equals(two.sort_values(cols).reset_index(drop=True))
