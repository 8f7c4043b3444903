"""`make paper`'s wall time, step by step: what runs recorded, what was measured by hand before they did, and estimates."""

import json

import pandas as pd

from iml_nb.analysis import paper, report
from iml_nb.runs import runner


def _hand(*rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=paper.WALL_TIME_COLUMNS)


def test_a_steps_wall_time_is_what_its_run_recorded_plus_what_was_measured_by_hand(tmp_path):
    run = tmp_path / "11_pretrained" / "explore-8"
    run.mkdir(parents=True)
    (run / runner.EXECUTIONS).write_text(json.dumps([{"seconds": 600.0}, {"seconds": 1200.0}]))
    done = paper.Step("11_pretrained", {"tags": "x"}, "params/x.yaml", "with params/x.yaml (explored)", run)
    hand = _hand(
        ["11_pretrained", "params/x.yaml", "explore-8", 3000, "its first execution, by hand"],  # not in executions.json
        ["11_pretrained", "params/x.yaml", "", 9999, "estimated"],  # an estimate no longer counts once the run exists
        ["11_pretrained", "", "explore-8", 5, "another step's run"],
    )
    assert paper.step_time(done, hand) == (4800.0, "recorded (2 executions in executions.json); its first execution, by hand", False)
    assert paper.step_time(done, _hand()) == (1800.0, "recorded (2 executions in executions.json)", False)
    to_do = paper.Step("11_pretrained", {"tags": "x"}, "params/x.yaml", "with params/x.yaml (explored)", None)
    assert paper.step_time(to_do, hand) == (9999.0, "estimated", True)
    assert paper.step_time(to_do, _hand()) == (None, "no estimate", True)
    old = paper.Step("01_main_two_stage", {}, "", "at its defaults", tmp_path / "01_main_two_stage" / "old")
    assert paper.step_time(old, hand) == (None, "not measured", False)


def test_the_total_says_how_much_of_it_is_estimated(tmp_path, monkeypatch):
    run = tmp_path / "a" / "r1"
    run.mkdir(parents=True)
    (run / runner.EXECUTIONS).write_text(json.dumps([{"seconds": 3600.0}]))
    found = [
        paper.Step("a", {}, "", "at its defaults", run),
        paper.Step("b", {}, "params/b.yaml", "with params/b.yaml (explored)", None),
        paper.Step("c", {}, "params/c_confirm.yaml", "as pre-registered (params/c_confirm.yaml)", None),
    ]
    monkeypatch.setattr(paper, "steps", lambda outputs: found)
    _hand(["b", "params/b.yaml", "", 1800, "estimated from a"]).to_csv(tmp_path / paper.WALL_TIMES, index=False)
    table, sentence = paper.times_markdown(tmp_path)
    lines = table.splitlines()
    assert lines[2] == "| a | `r1` | 1 h 00 min | recorded (1 execution in executions.json) |"
    assert lines[3] == "| b, params/b.yaml | not run yet | ~30 min | estimated from a |"
    assert lines[4] == "| c, params/c_confirm.yaml (pre-registered) | not run yet | ? | no estimate |"
    parts = "1 h 00 min measured run by run; 30 min estimated for the 1 run not made yet; 1 run without a time"
    assert lines[5] == f"| **total** | | **~1 h 30 min** | {parts} |"
    assert sentence.startswith(f"`make paper` from nothing takes ~1 h 30 min on 2 cores ({parts.replace('; ', ', ')};")
    readme, docs = tmp_path / "README.md", tmp_path / "docs"
    docs.mkdir()
    readme.write_text(f"intro\n{paper.TOTAL_START}\nSTALE\n{paper.TOTAL_END}\nrest\n")
    (docs / "usage.md").write_text(f"a\n{paper.TIMES_START}\nSTALE\n{paper.TIMES_END}\nb\n")
    paper.update_times(readme, tmp_path)
    assert readme.read_text() == f"intro\n{paper.TOTAL_START}\n{sentence}\n{paper.TOTAL_END}\nrest\n"
    assert (docs / "usage.md").read_text() == f"a\n{paper.TIMES_START}\n{table}\n{paper.TIMES_END}\nb\n"
    (tmp_path / paper.WALL_TIMES).write_text("notebook,run,seconds\n")
    import pytest

    with pytest.raises(ValueError, match="columns"):
        paper.hand_times(tmp_path)


def test_every_hand_measured_time_belongs_to_a_step_of_paper_and_to_a_run_it_would_read():
    """A row of outputs/wall_times.csv names a step `paper` makes and, where it gives a run folder, a complete run made with that
    step's parameters: a renamed folder or a changed parameters file cannot leave a time counted against the wrong run."""
    from iml_nb.core.env import project_path

    outputs = project_path("outputs")
    hand = paper.hand_times(outputs)
    assert len(hand) and hand.seconds.gt(0).all() and hand.how.str.len().gt(0).all()
    found = {(s.notebook, s.file): s for s in paper.steps(outputs)}
    for row in hand.itertuples():
        step = found.get((row.notebook, row.params))
        assert step is not None, f"wall_times.csv: {row.notebook} {row.params!r} is not a step of `paper`"
        if row.run:
            folder = outputs / row.notebook / row.run
            assert folder in report.complete_runs(row.notebook, outputs), f"wall_times.csv: {folder} is not a complete run"
            if step.file:
                assert report.recorded_parameters(folder, row.notebook) == step.params, f"{folder} was made with other parameters"
            else:
                assert report.command_of(folder, row.notebook) == step.command, f"{folder} was not made at the defaults"
    assert not hand[["notebook", "params", "run"]].duplicated().any()
