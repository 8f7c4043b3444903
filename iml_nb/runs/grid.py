"""What a batch runs: a grid of parameter values (from --grid options or a batch file) and seeds, as named runs."""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path

import yaml

from iml_nb.runs import runner

BATCH_FILE_KEYS = ("notebook", "grid", "seeds", "fixed")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")  # what may stay in a folder name on any OS and in a shell without quoting


def parse_grid_option(text: str) -> tuple[str, list]:
    """`NAME=V1,V2,...` -> (NAME, values), each value read as YAML like -p (runner.parse_value)."""
    name, sep, values = text.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise ValueError(f"--grid {text!r}: expected NAME=V1,V2,...")
    # Split at top-level commas only, so a list value such as [1,2] stays one value.
    items, depth, start = [], 0, 0
    for i, char in enumerate(values + ","):
        depth += (char in "[{") - (char in "]}")
        if char == "," and depth == 0:
            items.append(values[start:i].strip())
            start = i + 1
    if "" in items:
        raise ValueError(f"--grid {text!r}: empty value (a trailing or doubled comma?)")
    return name.strip(), [runner.parse_value(item) for item in items]


def load_batch_file(path: str | os.PathLike) -> dict:
    """A YAML batch file: {notebook: stem or path, grid: {name: [values]}, seeds: N, fixed: {name: value}}, all optional."""
    spec = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(spec, dict) or set(spec) - set(BATCH_FILE_KEYS):
        raise ValueError(f"{path}: a batch file is a mapping with keys among {list(BATCH_FILE_KEYS)}")
    for key in ("grid", "fixed"):
        if not isinstance(spec.get(key) or {}, dict):
            raise ValueError(f"{path}: `{key}` must be a mapping of name: {'[values]' if key == 'grid' else 'value'}")
    return spec


def grid_axes(grid: dict[str, list], seeds: int | None = None) -> dict[str, list]:
    """The batch's axes in order: the grid as given, then `seed` = 0..seeds-1 when seeds is set."""
    axes = {}
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid `{name}` needs a non-empty list of values, got {values!r}")
        axes[name] = values
    if seeds is not None:
        if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
            raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
        if "seed" in axes:
            raise ValueError("`seed` is both a grid axis and --seeds; give one")
        axes["seed"] = list(range(seeds))
    if not axes:
        raise ValueError("nothing to vary: give --grid or --seeds (for a single run use `python -m iml_nb run`)")
    return axes


def run_name(params: dict) -> str:
    """`alpha=0.8__seed=2`: the run's grid values in axis order, made safe for a folder name."""

    def text(value) -> str:
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))

    return _UNSAFE.sub("_", "__".join(f"{name}={text(value)}" for name, value in params.items()))


def plan_runs(axes: dict[str, list]) -> list[tuple[str, dict]]:
    """(run name, grid values) for every point of the Cartesian product; names must tell the runs apart."""
    runs = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    names = [run_name(params) for params in runs]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ValueError(f"grid points share a run folder name {clashes}: repeated values, or values equal once sanitised")
    return list(zip(names, runs))
