"""Notebook parameters: one check for unknown names, used by `python -m iml_nb run/batch` before papermill starts and by every
notebook's first cell, so plain `papermill -p` (which only warns about a name the notebook does not declare) fails the same way."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping

from iml_nb.core.config import ConfigError

INJECTED_HEADER = "# Parameters"  # the first line of the cell papermill injects after the `parameters` cell


def reject_unknown(given: Iterable[str], declared: Iterable[str], notebook: str) -> None:
    """ConfigError naming every given parameter the notebook does not declare, and the ones it does."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ConfigError(f"unknown parameters {unknown} for {notebook}; valid: {sorted(set(declared))}")


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

    The kernel's input history (`In`) holds both cells as executed: the last papermill-injected cell and the parameters cell
    before it. Nothing is checked when no cell was injected (a notebook run by hand in JupyterLab).
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


__all__ = ["INJECTED_HEADER", "assigned_in", "check_injected", "declared_in", "reject_unknown"]
