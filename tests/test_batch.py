"""Tests of iml_nb.runs.batch and `python -m iml_nb batch`: grid expansion, checks before execution, resume, failures, --jobs."""

import json
import os
from pathlib import Path
from unittest.mock import MagicMock

import nbformat
import pytest
from test_runner import venv_kernel  # noqa: F401  (the session fixture that makes kernel "python3" this venv's Python)

from iml_nb import __main__ as cli
from iml_nb.runs import batch, grid


def tiny_notebook(folder: Path, seed: bool = True) -> Path:
    """Appends "x seed" to `log` on every execution, then raises if x == fail_on, else writes summary.json last."""
    params = (
        "x: int = 1  # a number\n"
        + ("seed: int = 0  # seed\n" if seed else "")
        + (
            "fail_on: int = -1  # x value that raises\n"
            "n_jobs: int = 4  # worker processes (the batch sets 1)\n"
            'log: str = ""  # file that counts executions\n'
            "sleep_s: float = 0.0  # seconds to wait before finishing\n"
            'output_dir: str = ""  # where'
        )
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Tiny notebook for batch tests"),
        nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import json, os, pathlib\n"
            "s = globals().get('seed', 0)\n"
            'with open(log, "a") as f:\n'
            '    f.write(f"{x} {s}\\n")\n'
            'pathlib.Path(output_dir, "config.json").write_text("{}")\n'
            "if x == fail_on:\n"
            '    raise ValueError(f"x is {x}")\n'
            "import time; time.sleep(sleep_s)\n"
            'summary = dict(value=10 * x + s, n_jobs=n_jobs, threads=os.environ["OMP_NUM_THREADS"],\n'
            '               iml_threads=os.environ["IML_NB_THREADS"])\n'
            'pathlib.Path(output_dir, "summary.json").write_text(json.dumps(summary))'
        ),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / ("tiny.ipynb" if seed else "noseed.ipynb")
    nbformat.write(nb, path)
    return path


def executions(log: Path) -> list[str]:
    return sorted(log.read_text().splitlines()) if log.exists() else []


def summaries(batch_dir: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text()) for p in batch_dir.glob("*/summary.json")}


@pytest.fixture
def no_execution(monkeypatch):
    """Runs execute in worker processes, where a patched function would not reach: refuse to hand any out instead."""
    pool = MagicMock()
    pool.return_value.__enter__.return_value.submit.side_effect = AssertionError("nothing must be executed")
    monkeypatch.setattr(batch.cf, "ProcessPoolExecutor", pool)


@pytest.fixture(scope="module")
def first_batch(tmp_path_factory, venv_kernel):  # noqa: F811
    """x in {1, 2} x 2 seeds, run once, uninterrupted; tests below rerun or compare against it."""
    root = tmp_path_factory.mktemp("batch")
    nb, log = tiny_notebook(root), root / "log.txt"
    table = batch.run_batch(nb, {"x": [1, 2]}, seeds=2, fixed={"log": str(log)}, out=root / "out", progress=False)
    return nb, log, table


def test_parse_grid_option():
    assert grid.parse_grid_option("lr=1e-4, 0.5,true,abc,[1,2],'7'") == ("lr", [1e-4, 0.5, True, "abc", [1, 2], "7"])
    for bad in ("lr", "=1,2", "lr=", "lr=1,,2", "lr=1,"):
        with pytest.raises(ValueError, match="--grid"):
            grid.parse_grid_option(bad)


def test_grid_times_seeds_expansion_and_folder_names():
    axes = grid.grid_axes({"alpha": [0.8, 1.0], "word_order": ["tve", "a/b c"]}, seeds=2)
    assert axes == {"alpha": [0.8, 1.0], "word_order": ["tve", "a/b c"], "seed": [0, 1]}
    runs = grid.plan_runs(axes)
    assert len(runs) == 8
    assert runs[0] == ("alpha=0.8__word_order=tve__seed=0", {"alpha": 0.8, "word_order": "tve", "seed": 0})
    assert runs[1][0] == "alpha=0.8__word_order=tve__seed=1"  # the last axis varies fastest
    assert runs[3][0] == "alpha=0.8__word_order=a_b_c__seed=1"  # sanitised for a folder name
    assert runs[-1][0] == "alpha=1.0__word_order=a_b_c__seed=1"
    with pytest.raises(ValueError, match="share a run folder name"):
        grid.plan_runs({"w": ["a/b", "a_b"]})
    with pytest.raises(ValueError, match="both a grid axis and --seeds"):
        grid.grid_axes({"seed": [0, 1]}, seeds=2)
    with pytest.raises(ValueError, match="nothing to vary"):
        grid.grid_axes({})


def test_unknown_names_fail_before_anything_runs(tmp_path, no_execution):
    nb, out = tiny_notebook(tmp_path), tmp_path / "out"
    with pytest.raises(ValueError, match=r"unknown parameters \['lr'\]"):
        batch.run_batch(nb, {"lr": [0.1, 0.2]}, out=out)
    with pytest.raises(ValueError, match=r"unknown parameters \['depth', 'y'\]"):
        batch.run_batch(nb, {"x": [1, 2]}, fixed={"y": 1, "depth": 3}, out=out)
    with pytest.raises(ValueError, match="both varied and fixed"):
        batch.run_batch(nb, {"x": [1, 2]}, fixed={"x": 3}, out=out)
    with pytest.raises(ValueError, match="declares none"):
        batch.run_batch(tiny_notebook(tmp_path, seed=False), {"x": [1]}, seeds=2, out=out)
    assert cli.main(["batch", str(nb), "--grid", "nope=1,2", "--out", str(out)]) == 1
    assert not out.exists()


@pytest.mark.slow
def test_batch_runs_all_and_writes_batch_json(first_batch):
    nb, log, table = first_batch
    assert executions(log) == ["1 0", "1 1", "2 0", "2 1"]
    assert list(table.run) == ["x=1__seed=0", "x=1__seed=1", "x=2__seed=0", "x=2__seed=1"]
    assert list(table.status) == ["complete"] * 4
    record = json.loads(Path(table.attrs["batch_json"]).read_text())
    batch_dir = Path(table.attrs["batch_json"]).parent
    assert batch_dir.name == "tiny__x-seed"
    assert record["grid"] == {"x": [1, 2], "seed": [0, 1]} and record["axes"] == ["x", "seed"]
    assert record["fixed"] == {"log": str(log), "n_jobs": 1}  # n_jobs=1 added: the notebook declares it
    assert record["runs"][3]["params"] == {"x": 2, "seed": 1} and record["runs"][3]["error"] is None
    assert record["runs"][3]["duration_s"] > 0
    assert {k: v["value"] for k, v in summaries(batch_dir).items()} == {
        "x=1__seed=0": 10,
        "x=1__seed=1": 11,
        "x=2__seed=0": 20,
        "x=2__seed=1": 21,
    }
    cores = str(max(1, (os.cpu_count() or 1) // 1))
    assert all(s["n_jobs"] == 1 and s["threads"] == s["iml_threads"] == cores for s in summaries(batch_dir).values())


@pytest.mark.slow
def test_rerun_skips_complete_runs(first_batch, no_execution):
    nb, log, table = first_batch
    out = Path(table.attrs["batch_json"]).parents[1]
    again = batch.run_batch(nb, {"x": [1, 2]}, seeds=2, fixed={"log": str(log)}, out=out, progress=False)
    assert list(again.status) == ["skipped"] * 4
    assert again["duration_s"].equals(table["duration_s"]) and table["duration_s"].notna().all()  # kept, not erased
    assert executions(log) == ["1 0", "1 1", "2 0", "2 1"]
    with pytest.raises(ValueError, match="other fixed parameters"):  # same folder, other fixed values: not reusable
        batch.run_batch(nb, {"x": [1, 2]}, seeds=2, fixed={"log": "elsewhere"}, out=out, progress=False)


def test_a_redone_run_keeps_its_failed_attempt_on_record(tmp_path):
    (tmp_path / "x=1").mkdir()
    (tmp_path / "x=1" / "metrics.csv").write_text("partial")
    recorded = {"runs": [{"folder": "x=1", "status": "failed", "error": "cell 14: SanityCheckError", "duration_s": 2903.2}]}
    (record,) = batch._records(tmp_path, [("x=1", {"x": 1})], recorded, "local")
    assert record["status"] == "pending" and record["duration_s"] is None
    assert record["earlier_attempts"] == [
        {"status": "failed", "error": "cell 14: SanityCheckError", "duration_s": 2903.2, "moved_aside": record["moved_aside"]}
    ]
    (tmp_path / record["moved_aside"]).rename(tmp_path / "x=1")  # failed again: both attempts are kept
    (again,) = batch._records(tmp_path, [("x=1", {"x": 1})], {"runs": [{**record, "status": "failed", "duration_s": 5.0}]}, "local")
    assert [a["duration_s"] for a in again["earlier_attempts"]] == [2903.2, 5.0]
    # killed (no duration recorded): how long it went on writing its files stands in
    (tmp_path / again["moved_aside"]).rename(tmp_path / "x=1")
    (tmp_path / "x=1" / "progress.log").write_text("epoch 9")
    os.utime(tmp_path / "x=1" / "metrics.csv", (1000.0, 1000.0))
    os.utime(tmp_path / "x=1" / "progress.log", (1600.0, 1600.0))
    (killed,) = batch._records(tmp_path, [("x=1", {"x": 1})], {"runs": [{**again, "status": "pending"}]}, "local")
    assert killed["earlier_attempts"][-1]["duration_s"] is None and killed["earlier_attempts"][-1]["written_over_s"] == 600.0


@pytest.mark.slow
def test_killed_run_is_moved_aside_and_redone(tmp_path, first_batch):
    nb, _, first = first_batch
    log, batch_dir = tmp_path / "log.txt", tmp_path / "out" / "tiny__x-seed"
    # A run killed mid-way: its folder has config.json but no summary.json.
    (batch_dir / "x=2__seed=0").mkdir(parents=True)
    (batch_dir / "x=2__seed=0" / "config.json").write_text('{"partial": true}')
    table = batch.run_batch(nb, {"x": [2]}, seeds=2, fixed={"log": str(log)}, out=tmp_path / "out", progress=False)
    assert list(table.status) == ["complete", "complete"]
    assert executions(log) == ["2 0", "2 1"]
    aside = [p for p in batch_dir.iterdir() if p.name.startswith("x=2__seed=0.failed-")]
    assert len(aside) == 1 and (aside[0] / "config.json").read_text() == '{"partial": true}'  # kept, not deleted
    assert json.loads((batch_dir / "batch.json").read_text())["runs"][0]["moved_aside"] == aside[0].name
    uninterrupted = summaries(Path(first.attrs["batch_json"]).parent)
    assert summaries(batch_dir) == {k: v for k, v in uninterrupted.items() if k.startswith("x=2__")}


@pytest.mark.slow
def test_failing_run_does_not_stop_the_others_and_jobs_2(tmp_path, venv_kernel, capsys):  # noqa: F811
    nb, log, out = tiny_notebook(tmp_path), tmp_path / "log.txt", tmp_path / "out"
    spec = tmp_path / "batch.yaml"
    spec.write_text(f"notebook: {nb}\ngrid: {{x: [1, 2]}}\nfixed: {{log: {log}}}\n")
    rc = cli.main(["batch", "--batch-file", str(spec), "--grid", "fail_on=2", "--jobs", "2", "--out", str(out), "--name", "b"])
    captured = capsys.readouterr()
    assert rc == 1
    assert "x=2__fail_on=2" in captured.err and "failed in cell" in captured.out and "ValueError: x is 2" in captured.out
    assert executions(log) == ["1 0", "2 0"]
    record = json.loads((out / "b" / "batch.json").read_text())
    assert [(r["folder"], r["status"]) for r in record["runs"]] == [("x=1__fail_on=2", "complete"), ("x=2__fail_on=2", "failed")]
    assert "ValueError: x is 2" in record["runs"][1]["error"]
    done = summaries(out / "b")
    assert list(done) == ["x=1__fail_on=2"]  # the failed run left nothing that looks complete
    assert done["x=1__fail_on=2"]["threads"] == str(max(1, (os.cpu_count() or 1) // 2)) == str(record["threads_per_run"])


@pytest.mark.slow
def test_run_killed_between_its_figures_is_not_complete_and_is_redone(tmp_path, venv_kernel):  # noqa: F811
    """A real notebook whose kernel is killed right after its first figure: the folder holds results and a figure but no
    summary.json, so it is not complete, and the next `batch` moves it aside and runs it again to the end."""
    from iml_nb.core.env import project_path
    from iml_nb.core.results import is_complete

    original = nbformat.read(project_path("notebooks/04_set_inclusion.ipynb"), as_version=4)
    killed = nbformat.from_dict(json.loads(json.dumps(original)))
    first_figure = next(i for i, c in enumerate(killed.cells) if "figures." in c.source and ".save(" in c.source)
    killed.cells.insert(first_figure + 1, nbformat.v4.new_code_cell("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"))
    path = tmp_path / "04_set_inclusion.ipynb"
    nbformat.write(killed, path)
    fixed = {"n_vars": 40, "stage1_epochs": 3, "stage2_epochs": 3, "n_seeds": 1}
    table = batch.run_batch(path, {}, seeds=1, fixed=fixed, out=tmp_path / "out", progress=False)
    run_dir = tmp_path / "out" / "04_set_inclusion__seed" / "seed=0"
    assert list(table.status) == ["failed"] and "did not finish" in table.error[0]
    assert (run_dir / "metrics.csv").is_file() and (run_dir / "fig_set_inclusion.svg").is_file()
    assert not is_complete(run_dir)

    nbformat.write(original, path)
    again = batch.run_batch(path, {}, seeds=1, fixed=fixed, out=tmp_path / "out", progress=False)
    assert list(again.status) == ["complete"] and is_complete(run_dir)
    aside = [p for p in run_dir.parent.iterdir() if p.name.startswith("seed=0.failed-")]
    assert len(aside) == 1 and (aside[0] / "fig_set_inclusion.svg").is_file() and not is_complete(aside[0])


def test_stale_test_size_batches_are_removed_before_nbval(tmp_path):
    """A test-size batch made before its tests/params file changed would refuse the new fixed parameters: it is removed."""
    from conftest import remove_stale_test_batches

    (tmp_path / "tests" / "params").mkdir(parents=True)
    params = tmp_path / "tests" / "params" / "02_alpha_sweep.yaml"
    params.write_text("alphas: [0.5, 1.0]\nbatch_name: nbval_alpha\n")
    old, new, other = (tmp_path / "outputs" / "batches" / n for n in ("nbval_alpha", "nbval_alpha_b", "mine"))
    for folder in (old, new, other):
        folder.mkdir(parents=True)
        (folder / "batch.json").write_text("{}")
    os.utime(old / "batch.json", (1, 1))
    os.utime(other / "batch.json", (1, 1))

    assert remove_stale_test_batches("02_alpha_sweep", root=tmp_path) == [old]
    assert not old.exists() and new.exists() and other.exists()
    assert remove_stale_test_batches("01_main_two_stage", root=tmp_path) == []  # no params file, nothing touched
