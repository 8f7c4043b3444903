"""Tests of iml_nb.runs.runner and the CLI: parameter checks before execution, value parsing, and two tiny papermill runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from iml_nb import __main__ as cli
from iml_nb.runs import runner


def tiny_notebook(folder: Path, name: str = "tiny.ipynb") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Tiny notebook for runner tests"),
        nbformat.v4.new_code_cell('x: int = 1  # a number\noutput_dir: str = "."  # where', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import pathlib, sys\n"
            'assert x >= 0, "x must be non-negative"\n'
            'pathlib.Path(output_dir, "result.txt").write_text(str(x * 2))\n'
            'pathlib.Path(output_dir, "prefix.txt").write_text(sys.prefix)'
        ),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / name
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="session")
def venv_kernel():
    """Make sure kernel "python3" runs this interpreter; install a kernelspec under sys.prefix if it does not."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    def ours() -> bool:
        try:
            argv0 = KernelSpecManager().get_kernel_spec("python3").argv[0]
        except NoSuchKernel:
            return False
        # jupyter_client swaps a bare "python"/"python3" for sys.executable when it starts the kernel.
        return argv0 in {"python", "python3", f"python3.{sys.version_info[1]}"} or Path(argv0).resolve() == Path(sys.executable).resolve()

    if not ours():
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix"], check=True, capture_output=True)
    if not ours():
        pytest.fail(
            'kernelspec "python3" points at another Python (a user-level one shadows sys.prefix); '
            "run `python -m ipykernel install --user` from this virtualenv"
        )


@pytest.fixture
def no_execution(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the notebook must not be executed")

    monkeypatch.setattr(papermill, "execute_notebook", refuse)


@pytest.mark.parametrize(
    "text, value",
    [
        ("0.5", 0.5),
        ("3", 3),
        ("true", True),
        ("[1, 2]", [1, 2]),
        ("1e-4", 1e-4),
        ("-2.5E3", -2500.0),
        ("null", None),
        ("d1consis", "d1consis"),
        ("'7'", "7"),
        ("{a: 1}", {"a": 1}),
    ],
)
def test_parse_value_like_papermill(text, value):
    assert runner.parse_value(text) == value
    assert type(runner.parse_value(text)) is type(value)


def test_unknown_parameter_fails_before_execution(tmp_path, no_execution):
    nb = tiny_notebook(tmp_path)
    with pytest.raises(ValueError, match=r"unknown parameters \['lr', 'y'\].*valid: \['x'\]"):
        runner.run_notebook(nb, {"x": 2, "y": 3, "lr": 0.1}, outputs_root=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_output_dir_is_reserved_and_required(tmp_path, no_execution):
    nb = tiny_notebook(tmp_path)
    with pytest.raises(ValueError, match="set by the runner"):
        runner.run_notebook(nb, {"output_dir": "elsewhere"}, outputs_root=tmp_path / "out")
    bare = nbformat.v4.new_notebook()
    bare.cells = [nbformat.v4.new_code_cell("x: int = 1", metadata={"tags": ["parameters"]})]
    nbformat.write(bare, tmp_path / "bare.ipynb")
    with pytest.raises(ValueError, match="kernelspec"):  # papermill cannot inspect a notebook without one
        runner.run_notebook(tmp_path / "bare.ipynb", {}, outputs_root=tmp_path / "out")
    bare.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(bare, tmp_path / "bare.ipynb")
    with pytest.raises(ValueError, match="no `output_dir` parameter"):
        runner.run_notebook(tmp_path / "bare.ipynb", {}, outputs_root=tmp_path / "out")


def test_complete_run_is_not_overwritten(tmp_path, no_execution):
    nb = tiny_notebook(tmp_path)
    done = tmp_path / "out" / "tiny" / "r1"
    done.mkdir(parents=True)
    (done / "summary.json").write_text("{}")
    with pytest.raises(FileExistsError, match="complete run"):
        runner.run_notebook(nb, {}, outputs_root=tmp_path / "out", run_id="r1")


def test_resolve_notebook_by_stem(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "NOTEBOOKS_DIR", tmp_path)
    nb = tiny_notebook(tmp_path, "01_tiny.ipynb")
    assert runner.resolve_notebook("01_tiny") == nb.resolve()
    assert runner.resolve_notebook(nb) == nb.resolve()
    with pytest.raises(FileNotFoundError, match="01_tiny"):  # the message lists what exists
        runner.resolve_notebook("02_missing")


@pytest.mark.slow
def test_run_notebook_executes_into_its_run_folder(tmp_path, venv_kernel):
    nb = tiny_notebook(tmp_path)
    run_dir = runner.run_notebook(nb, {"x": 21}, outputs_root=tmp_path / "out", run_id="r1")
    assert run_dir == (tmp_path / "out" / "tiny" / "r1").resolve()
    assert (run_dir / "result.txt").read_text() == "42"
    assert (run_dir / "prefix.txt").read_text() == sys.prefix  # the kernel ran this virtualenv's Python
    executed = nbformat.read(run_dir / "tiny.ipynb", as_version=4)
    assert executed.metadata.papermill.parameters == {"x": 21, "output_dir": str(run_dir)}
    assert [e["outcome"] for e in json.loads((run_dir / runner.EXECUTIONS).read_text())] == ["finished"]


@pytest.mark.slow
def test_failing_notebook_names_its_run_folder(tmp_path, venv_kernel):
    nb = tiny_notebook(tmp_path)
    with pytest.raises(runner.NotebookRunError, match="AssertionError") as err:
        runner.run_notebook(nb, {"x": -1}, outputs_root=tmp_path / "out", run_id="bad")
    run_dir = (tmp_path / "out" / "tiny" / "bad").resolve()
    assert err.value.run_dir == run_dir and str(run_dir) in str(err.value)
    assert (run_dir / "tiny.ipynb").exists() and not (run_dir / "result.txt").exists()
    assert [e["outcome"] for e in json.loads((run_dir / runner.EXECUTIONS).read_text())] == ["failed"]


def test_cli_merges_file_then_p_values(tmp_path, monkeypatch, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("x: 1\nlr: 0.1\nseeds: [0, 1]\n")
    calls = []

    def fake_run(notebook, parameters, outputs_root, run_id):
        calls.append((notebook, parameters, outputs_root, run_id))
        return tmp_path / "the-run"

    monkeypatch.setattr(cli, "run_notebook", fake_run)
    rc = cli.main(
        ["run", "01_main_two_stage", "-f", str(params), "-p", "x", "3", "-p", "flag", "true", "-p", "lr", "1e-4", "--outputs", "elsewhere"]
    )
    assert rc == 0
    assert calls == [("01_main_two_stage", {"x": 3, "lr": 1e-4, "seeds": [0, 1], "flag": True}, "elsewhere", None)]
    assert capsys.readouterr().out.strip() == str(tmp_path / "the-run")


def test_cli_reports_unknown_parameter_without_running(tmp_path, no_execution, capsys):
    nb = tiny_notebook(tmp_path)
    rc = cli.main(["run", str(nb), "-p", "nope", "1", "--outputs", str(tmp_path / "out")])
    assert rc == 1
    assert "unknown parameters ['nope']" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_needs_a_command():
    with pytest.raises(SystemExit):
        cli.main([])


@pytest.mark.slow
def test_training_progress_from_the_kernel_reaches_the_terminal(tmp_path, venv_kernel, capsys):
    """`run` prints what the kernel reports through env.log_progress (a notebook's own bars stay inside the kernel)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('output_dir: str = "."  # where', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import time\nfrom iml_nb.core.env import log_progress\n"
            "for i in range(3):\n    log_progress(f'seed {i} stage 1 epoch 1')\n    time.sleep(0.3)"
        ),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "progress.ipynb")
    run_dir = runner.execute_into(tmp_path / "progress.ipynb", {}, tmp_path / "run", progress="bar")
    assert "seed 2 stage 1 epoch 1" in capsys.readouterr().err
    assert not (run_dir / "progress.log").exists()  # the tail cleans up after itself
    # a batch's run (in a worker or a SLURM job): the lines only, labelled with the run's folder
    runner.execute_into(tmp_path / "progress.ipynb", {}, tmp_path / "x=1", progress="lines")
    err = capsys.readouterr().err
    assert "  x=1: seed 2 stage 1 epoch 1" in err and "Executing" not in err


def test_progress_lines_that_count_get_an_eta_from_the_rate_since_first_seen(tmp_path):
    tail = runner.ProgressTail(tmp_path / "p.log")
    assert tail.eta("Stage 1 seeds: 2/10 (seed 9000 epoch 2)", now=100.0) == ""  # first sight: no rate yet
    assert tail.eta("Stage 1 seeds: 4/10 (seed 9000 epoch 4)", now=160.0) == " · ETA 3 min"  # 30 s per step, 6 to go
    assert tail.eta("Stage 1 seeds: 9/10 (…)", now=310.0) == " · ETA 30 s"
    assert tail.eta("Stage 2 seeds: 0/100 (…)", now=400.0) == ""  # each count has its own rate
    assert tail.eta("Stage 2 seeds: 1/100 (…)", now=460.0) == " · ETA 1 h 39 min"
    assert tail.eta("Stage 1 seeds: 10/10 (done)", now=1700.0) == ""
    assert tail.eta("knowledge check: 240 questions zero-shot", now=1.0) == ""  # not a count


def test_execute_into_refuses_an_unknown_progress_mode_before_running(tmp_path):
    with pytest.raises(ValueError, match="`progress`"):
        runner.execute_into(tmp_path / "none.ipynb", {}, tmp_path / "run", progress="verbose")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_progress_tail_shows_the_newest_line_at_most_once(tmp_path):
    import io
    import time

    log, out = tmp_path / "p.log", io.StringIO()
    with runner.ProgressTail(log, every=0.05, stream=out):
        for i in range(3):
            with open(log, "a") as f:
                f.write(f"step {i}\n")
            time.sleep(0.2)
        time.sleep(0.2)
    shown = out.getvalue().splitlines()
    assert shown[-1].strip() == "step 2" and len(shown) == len(set(shown)) <= 3


@pytest.mark.slow
def test_paper_runs_only_what_has_no_complete_run(tmp_path, monkeypatch, capsys):
    """The sections at their defaults, then each pre-registered file (params/<notebook>_confirm*.yaml) into a new confirm-* folder; what
    has a complete run already (made with exactly those parameters) is skipped."""
    import json

    import yaml

    from iml_nb.analysis import paper
    from iml_nb.core import results
    from iml_nb.core.env import project_path

    def complete(notebook, run_id, params):
        run = tmp_path / notebook / run_id
        results.finalize_run(run, {}, results.pd.DataFrame(columns=results.METRIC_COLUMNS), {})
        recorded = {**params, "output_dir": str(run)}
        (run / f"{notebook}.ipynb").write_text(json.dumps({"cells": [], "metadata": {"papermill": {"parameters": recorded}}}))

    for notebook in paper.PAPER[:-1]:  # every section but the last has a complete run at its defaults
        complete(notebook, "20260101-000000-abcd", {})
    executions = [{"seconds": 3000.0, "outcome": "running"}, {"seconds": 1800.0, "outcome": "finished"}]  # killed, then resumed
    (tmp_path / paper.PAPER[0] / "20260101-000000-abcd" / runner.EXECUTIONS).write_text(json.dumps(executions))
    files = sorted(project_path(".").glob(paper.PRE_REGISTERED))
    pre_registered = [(f.stem.split("_confirm")[0], yaml.safe_load(f.read_text())) for f in files]
    assert len(pre_registered) >= 2 and {nb for nb, _ in pre_registered} <= set(paper.PAPER) | {"12_generality"}
    complete(pre_registered[0][0], "confirm-1", pre_registered[0][1])
    complete(pre_registered[1][0], "confirm-old", {**pre_registered[1][1], "n_seeds": 1})  # other parameters: not this file's run
    # explored rows that name a parameters file run with it, after the defaults; the first has its run already
    from iml_nb.analysis.claims import CLAIMS

    rows = sorted((c for c in CLAIMS if c.params_file), key=lambda c: c.params_file)
    named = list(dict.fromkeys((c.params_file, c.notebook, json.dumps(arm)) for c in rows for arm in ({}, *c.arms)))
    explored = [(nb, {**yaml.safe_load(project_path(f).read_text()), **json.loads(arm)}) for f, nb, arm in named]
    assert len(explored) >= 2 and any(arm != "{}" for *_, arm in named)  # a row read over two arms has both run
    complete(explored[0][0], "20260102-000000-abcd", explored[0][1])
    ran = []

    def fake_run(nb, params, outputs_root, run_id=None):
        ran.append((nb, params, run_id))
        return tmp_path / nb

    monkeypatch.setattr(cli, "run_notebook", fake_run)
    monkeypatch.setattr("iml_nb.analysis.report.write", lambda outputs: (tmp_path / "report.md", None, None))
    assert cli.main(["paper", "--outputs", str(tmp_path), "--dry-run"]) == 0 and ran == []  # lists, runs nothing
    planned = capsys.readouterr().out
    # then every step's wall time: what a run recorded in executions.json, "?" where nothing says
    assert "| `20260101-000000-abcd` | 1 h 20 min | recorded (2 executions in executions.json) |" in planned
    assert "| not run yet | ? | no estimate |" in planned and planned.rstrip().endswith("without a time |")
    assert (
        f"to run as pre-registered (params/{files[1].name}): python -m iml_nb run {pre_registered[1][0]} -f params/{files[1].name}"
        in planned
    )
    assert "python -m iml_nb run 11_pretrained -f params/11_pretrained_sources.yaml -p tags sources_swapped" in planned
    assert cli.main(["paper", "--outputs", str(tmp_path)]) == 0
    assert [(nb, params) for nb, params, _ in ran] == [(paper.PAPER[-1], {}), *explored[1:], *pre_registered[1:]]
    assert [run_id for _, _, run_id in ran[: len(explored)]] == [None] * len(explored)  # explored: a new dated folder
    assert all(run_id.startswith("confirm-") for _, _, run_id in ran[len(explored) :])  # the folders pre-registered rows read
    out = capsys.readouterr().out
    assert f"{paper.PAPER[0]}: complete at its defaults" in out and f"{pre_registered[0][0]}: complete as pre-registered" in out
    assert f"{explored[0][0]}: complete with {named[0][0]} (explored)" in out


def test_every_execution_of_a_run_is_recorded_with_its_wall_time_even_when_killed(tmp_path):
    """executions.json: one entry per execution, its seconds rewritten while it runs (a killed one keeps its last beat) and at the
    end; wall_time sums them, so a run resumed from the seed cache costs what all its executions took."""
    import time

    assert runner.wall_time(tmp_path) is None  # a run made before executions were recorded
    with runner.ExecutionLog(tmp_path, every=0.05):
        time.sleep(0.2)
        beating = json.loads((tmp_path / runner.EXECUTIONS).read_text())
    assert beating[0]["outcome"] == "running" and beating[0]["seconds"] > 0  # what a kill at this moment would leave
    with pytest.raises(RuntimeError), runner.ExecutionLog(tmp_path, every=60):
        raise RuntimeError("the notebook failed")
    entries = json.loads((tmp_path / runner.EXECUTIONS).read_text())
    assert [e["outcome"] for e in entries] == ["finished", "failed"] and entries[0]["seconds"] >= 0.2
    assert all(e["machine"] == runner.machine() and e["machine"].endswith(f", {os.cpu_count()} CPUs") for e in entries)
    assert runner.wall_time(tmp_path) == pytest.approx(sum(e["seconds"] for e in entries))


def test_a_parameters_file_must_hold_a_mapping_and_an_empty_one_is_no_parameters(tmp_path):
    """The one reader of parameters files (`run -f`, `paper`, the pre-registered rows): a list is refused, naming the file."""
    listed, empty = tmp_path / "listed.yaml", tmp_path / "empty.yaml"
    listed.write_text("- n_seeds\n- 4\n")
    empty.write_text("")
    with pytest.raises(ValueError, match="listed.yaml: a parameters file must hold a mapping"):
        runner.read_parameters_file(listed)
    assert runner.read_parameters_file(empty) == {}
    with pytest.raises(ValueError, match="listed.yaml"):
        cli.collect_parameters([str(listed)], [])
