"""Seeds in worker processes with one progress bar, and workers that die with their parent (used by experiments and batches)."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import multiprocessing.connection
import os
import queue as queue_mod
import threading
from collections.abc import Callable
from enum import IntEnum
from typing import TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from iml_nb.core.env import log_progress

R = TypeVar("R")
_progress = None  # in a seed worker: the queue its progress messages go to (set by _worker_init)


class Stream(IntEnum):
    """Random streams that are not a stage: derived_seed(seed, Stream.X, ...) names what a draw is for. Stage numbers (1, 2, 3)
    name the stages' own streams; these values stay clear of them, and never change (they would change every result)."""

    INIT = 0  # network initialisation (set inclusion, MNIST)
    SKETCH = 7  # the random projection of gradient alignment
    TEST_IMAGES = 9  # the handwriting drawn for MNIST test questions


def derived_seed(*parts: int) -> int:
    """A seed for one (seed, seed_stage2, stage) combination; SeedSequence keeps the streams independent."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def exit_with_parent() -> None:
    """Pool-worker initializer: exit as soon as the parent process is gone (killed outright, so it could not stop its pool).

    Without it, the workers of a killed batch or notebook kernel go on training seeds nobody will collect.
    """
    sentinel = mp.parent_process().sentinel  # readable once the parent is gone
    threading.Thread(target=lambda: mp.connection.wait([sentinel]) and os._exit(1), daemon=True).start()


def _worker_init(threads: int, progress) -> None:
    global _progress
    torch.set_num_threads(threads)
    exit_with_parent()  # a killed kernel or batch takes its seed workers with it
    _progress = progress


def _call_in_worker(fn: Callable[..., R], seed: int) -> R:
    return fn(seed, report=_progress.put)


def map_seeds(fn: Callable[..., R], seeds: list[int], n_jobs: int, bar: tqdm) -> list[R]:
    """[fn(seed, report=...) for seed in seeds], in `n_jobs` spawned processes; each report(msg) advances `bar` by one.

    `fn` must be picklable (a module-level function or a functools.partial of one).
    """

    def tick(msg: str) -> None:
        bar.set_postfix_str(msg)
        bar.update()
        # a disabled bar (progress=False) keeps no description or count
        log_progress(f"{getattr(bar, 'desc', 'seeds')}: {getattr(bar, 'n', '?')}/{getattr(bar, 'total', '?')} ({msg})")

    jobs = min(n_jobs, len(seeds))
    if jobs <= 1:
        return [fn(s, report=tick) for s in seeds]
    # One thread per process: two 1-thread jobs beat one 2-thread job ~2x on these tiny models (docs/background.md).
    threads = max(1, (os.cpu_count() or 1) // jobs)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()  # handed to the workers when they start (no Manager process, which a killed parent would leak)
    with cf.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init, initargs=(threads, q)) as pool:
        futures = [pool.submit(_call_in_worker, fn, s) for s in seeds]
        pending = set(futures)
        while pending:
            try:
                tick(q.get(timeout=0.5))
            except queue_mod.Empty:
                pass
            pending = {f for f in pending if not f.done()}
        while True:  # messages still in the queue's pipe when the last seed finished
            try:
                tick(q.get(timeout=0.2))
            except queue_mod.Empty:
                break
        return [f.result() for f in futures]


def run_seeds(fn: Callable[..., R], run, steps_per_seed: int, desc: str, progress: bool = True) -> list[R]:
    """The one seed runner: [fn(seed, report=...) for seeds run.seed ... run.seed + run.n_seeds - 1] in run.n_jobs processes
    (`run`: a config.RunConfig), with a progress bar of steps_per_seed ticks per seed (each fn's report call is one tick)."""
    seeds = list(range(run.seed, run.seed + run.n_seeds))
    bar = tqdm(total=len(seeds) * steps_per_seed, desc=f"{desc} ({len(seeds)} seeds)", disable=not progress)
    try:
        return map_seeds(fn, seeds, run.n_jobs, bar)
    finally:
        bar.close()
