"""Fast tests of iml_nb.core.results: atomic writes, the metrics CSV round trip, run folders and their completeness."""

import json
import os
import re
import subprocess
import sys
import types

import pandas as pd
import pytest

from iml_nb.core import results
from iml_nb.core.env import PROJECT_ROOT


def metrics_frame():
    df = pd.DataFrame(
        {
            "seed": [pd.NA, 0, 0, 1],
            "seed_stage2": [pd.NA, pd.NA, 3, 4],
            "stage": [0, 1, 2, 2],
            "epoch": [1, 2, 1, 1],
            "subset": ["qd1consis", "qd2incons", "d1consis", "ent_assoc_d1consis"],
            "metric": ["em", "f1", "em", "em"],
            "value": [0.0, 1 / 3, 0.125, 0.9999999999999],
        }
    )
    return df.astype({"seed": "Int64", "seed_stage2": "Int64"})


def test_atomic_write_leaves_no_temp_files(tmp_path):
    path = results.atomic_write_text(tmp_path / "a.txt", "hello\n")
    assert path.read_text() == "hello\n"
    results.atomic_write_text(path, "again\n")
    assert path.read_text() == "again\n"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_failed_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = results.atomic_write_text(tmp_path / "a.txt", "old")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(results.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        results.atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_atomic_write_json_nan_to_null_and_sorted(tmp_path):
    path = results.atomic_write_json(tmp_path / "x.json", {"b": float("nan"), "a": [1, (2, float("inf"))], "c": pd.NA})
    text = path.read_text()
    assert json.loads(text) == {"a": [1, [2, None]], "b": None, "c": None}
    assert text.index('"a"') < text.index('"b"') and '\n  "a"' in text  # sorted keys, indent 2


def test_metrics_round_trip_keeps_dtypes_and_canonical_order(tmp_path):
    df = metrics_frame()
    shuffled = df[["value", "subset", "seed", "metric", "epoch", "stage", "seed_stage2"]]
    results.write_metrics(tmp_path / "metrics.csv", shuffled)
    back = results.read_metrics(tmp_path / "metrics.csv")
    assert list(back.columns) == results.METRIC_COLUMNS
    assert str(back["seed"].dtype) == "Int64" and str(back["seed_stage2"].dtype) == "Int64"
    assert back["seed"].isna().tolist() == [True, False, False, False]
    assert back["value"].tolist() == df["value"].tolist()  # exact: floats are written at full precision
    assert back["subset"].tolist() == df["subset"].tolist() and back["stage"].tolist() == [0, 1, 2, 2]
    with pytest.raises(ValueError, match="value"):
        results.write_metrics(tmp_path / "bad.csv", df.drop(columns="value"))


def test_new_run_dir_names(tmp_path):
    a, b = results.new_run_dir(tmp_path, "01_main"), results.new_run_dir(tmp_path, "01_main")
    assert a != b and a.is_dir() and a.parent == tmp_path / "01_main"
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", a.name)


def test_finalize_run_writes_all_and_marks_complete(tmp_path):
    run = results.new_run_dir(tmp_path, "nb")
    assert not results.is_complete(run)
    results.finalize_run(run, {"lr": 1e-4, "seeds": (0, 1)}, metrics_frame(), {"iml_gap_qa": {"mean": float("nan")}})
    assert results.is_complete(run)
    assert sorted(os.listdir(run)) == ["config.json", "environment.json", "metrics.csv", "summary.json"]
    assert json.loads((run / "config.json").read_text()) == {"lr": 1e-4, "seeds": [0, 1]}
    assert json.loads((run / "summary.json").read_text()) == {"iml_gap_qa": {"mean": None}}


def test_run_killed_before_summary_is_incomplete(tmp_path, monkeypatch):
    run = results.new_run_dir(tmp_path, "nb")
    results.finalize_run(run, {}, metrics_frame(), {"ok": True})

    def killed():
        raise KeyboardInterrupt

    # A re-finalize that dies halfway must not leave the old summary.json vouching for new files.
    monkeypatch.setattr(results, "environment_record", killed)
    with pytest.raises(KeyboardInterrupt):
        results.finalize_run(run, {"new": 1}, metrics_frame(), {"ok": True})
    assert not results.is_complete(run)
    assert (run / "config.json").exists() and not any(p.name.endswith(".tmp") for p in run.iterdir())


def test_environment_record(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    env = results.environment_record()
    assert env["python"] == sys.version.split()[0]
    assert env["packages"]["pandas"] == pd.__version__
    assert {"torch", "transformers", "tokenizers", "altair", "papermill"} <= set(env["packages"])
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert env["git_commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    assert env["git_dirty"] in (True, False, None)
    assert env["device"] is None and env["torch_threads"] is None  # this process never used torch
    json.dumps(env, allow_nan=False)


def test_environment_record_reads_the_loaded_torch(monkeypatch):
    fake = types.SimpleNamespace(
        cuda=types.SimpleNamespace(is_available=lambda: False),
        get_num_threads=lambda: 3,
        backends=types.SimpleNamespace(cpu=types.SimpleNamespace(get_cpu_capability=lambda: "AVX2")),
    )
    monkeypatch.setitem(sys.modules, "torch", fake)
    env = results.environment_record()
    assert (env["device"], env["torch_threads"], env["cpu_capability"]) == ("cpu", 3, "AVX2")


def test_missing_package_version_is_none():
    assert results._package_version("surely-not-installed-iml") is None
    assert results._package_version("pandas") == pd.__version__
