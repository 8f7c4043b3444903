"""Notebook parameters -> frozen configs: the checks that name a bad parameter, the one way every experiment declares how its flat
notebook parameters fill its nested config (`Flat`), and the check of names papermill injected (a notebook's first cell)."""

from __future__ import annotations

import ast
import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

INJECTED_HEADER = "# Parameters"  # the first line of the cell papermill injects after the `parameters` cell


class ConfigError(ValueError):
    """A parameter has an invalid value; the message names the parameter."""


def require(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"parameter `{name}`: {message}")


def require_int(value: Any, name: str, minimum: int = 1) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    require(ok, name, f"must be an integer >= {minimum}, got {value!r}")


def require_number(value: Any, name: str, low: float, high: float, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    require(ok, name, f"must be a number in {'(' if low_open else '['}{low}, {high}], got {value!r}")


def reject_unknown(given: Iterable[str], known: Iterable[str], where: str = "") -> None:
    """ConfigError naming every given parameter that is not known, and the known ones (a typo would otherwise be ignored)."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigError(f"unknown parameters {unknown}{f' for {where}' if where else ''}; valid: {sorted(set(known))}")


def _stage_number(name: str) -> int | None:
    """`stage2_epochs` -> 2 (the flat names of TrainConfig.stage_epochs), else None."""
    middle = name.removeprefix("stage").removesuffix("_epochs")
    return int(middle) if name.startswith("stage") and name.endswith("_epochs") and middle.isdigit() and middle != "0" else None


@dataclass(frozen=True)
class Flat:
    """How one experiment's flat notebook parameters fill its nested frozen config: the one way every experiment declares it.

    Defaults live only in the config's fields (and their default factories): each section is the default section with the fields
    its flat names set replaced, so the dataclasses validate every value once. Two flat-name families are built here:
    `frac_<subset>` (on top of the default `data.fractions`) and `stage<i>_epochs` (the entries of `train.stage_epochs`).
    """

    config: type  # the experiment's top-level frozen config
    sections: Mapping[str, tuple[str, ...]]  # config field -> the flat names that set its class's fields
    rename: Mapping[str, str] = field(default_factory=dict)  # flat name -> field name where they differ
    subsets: tuple[str, ...] = ()  # subsets with a frac_<subset> parameter
    stage_epochs: Callable[[dict], tuple[int, ...]] | None = None  # default epochs per stage given the parameters (None: the config's)
    check: Callable[[dict], None] = lambda params: None  # checks that need several parameters at once, before anything is built

    def names(self) -> set[str]:
        return {n for names in self.sections.values() for n in names} | {f"frac_{s}" for s in self.subsets}

    def pick(self, namespace: Mapping) -> dict:
        """The parameters among a notebook's variables (its `parameters` cell), for `build(**flat.pick(globals()))`."""
        return {k: v for k, v in namespace.items() if k in self.names()}

    def from_notebook(self, namespace: Mapping):
        """A notebook's config, from its variables: `cfg = PARAMETERS.from_notebook(globals())` in its first cell."""
        return self.build(**self.pick(namespace))

    def build(self, **params: Any):
        """The frozen config; unknown or invalid names fail here (ConfigError naming the parameter), before any compute."""
        reject_unknown(params, self.names())
        self.check(params)
        default = self.config()
        sections = {}
        for section, names in self.sections.items():
            base = getattr(default, section)
            given = {self.rename.get(n, n): params[n] for n in names if n in params and _stage_number(n) is None}
            if any(_stage_number(n) for n in names):
                epochs = self.stage_epochs(params) if self.stage_epochs else base.stage_epochs
                given["stage_epochs"] = tuple(params.get(f"stage{i}_epochs", e) for i, e in enumerate(epochs, 1))
            if self.subsets and section == "data":
                fractions = {**dict(base.fractions), **{s: params[f"frac_{s}"] for s in self.subsets if f"frac_{s}" in params}}
                given["fractions"] = tuple(fractions.items())
            sections[section] = dataclasses.replace(base, **given)
        return self.config(**sections)


def _statements(source: str) -> list[ast.stmt] | None:
    try:
        return ast.parse(source).body
    except SyntaxError:
        return None


def declared_in(source: str) -> list[str] | None:
    """The names a `parameters` cell declares (typed assignments `name: type = value`), or None if the cell is not one."""
    body = _statements(source)
    if not body or not all(isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) for s in body):
        return None
    return [s.target.id for s in body]


def assigned_in(source: str) -> list[str]:
    """The names an injected cell assigns (papermill writes `name = value` lines)."""
    return [t.id for s in _statements(source) or [] if isinstance(s, ast.Assign) for t in s.targets if isinstance(t, ast.Name)]


def check_injected(namespace: Mapping, notebook: str) -> None:
    """In a notebook's first code cell: fail on names papermill injected that the `parameters` cell does not declare.

    Used with `python -m iml_nb run/batch` (which check before papermill starts) and plain `papermill -p`, which only warns about a
    name the notebook does not declare. The kernel's input history (`In`) holds both cells as executed: the last papermill-injected
    cell and the parameters cell before it. Nothing is checked when no cell was injected (a notebook run by hand in JupyterLab).
    """
    history = list(namespace.get("In") or [])[:-1]  # the last entry is the cell running this check
    injected = max((i for i, src in enumerate(history) if src.lstrip().startswith(INJECTED_HEADER)), default=None)
    if injected is None:
        return
    declared = next((names for src in reversed(history[:injected]) if (names := declared_in(src)) is not None), None)
    if declared is None:
        raise ConfigError(
            f"{notebook}: papermill injected parameters, but no `parameters` cell ran before them "
            "(tag the cell of typed `name: type = value` lines `parameters`)"
        )
    reject_unknown(assigned_in(history[injected]), declared, notebook)
