"""Command line: `python -m iml_nb run NOTEBOOK -p NAME VALUE -f params.yaml` executes a notebook into outputs/."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from iml_nb.runner import NotebookRunError, parse_value, run_notebook


def collect_parameters(files: list[str], pairs: list[list[str]]) -> dict:
    """Parameter files in order, then -p pairs on top (later wins), as papermill merges -f and -p."""
    params: dict = {}
    for file in files:
        loaded = yaml.safe_load(Path(file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{file}: a parameters file must hold a mapping of name: value")
        params.update(loaded)
    for name, value in pairs:
        params[name] = parse_value(value)
    return params


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m iml_nb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="execute one notebook with parameters into its own run folder")
    run.add_argument("notebook", help="path to an .ipynb, or a stem under notebooks/ such as 01_main_two_stage")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="a parameter; VALUE is read as YAML (0.5, true, [1,2], 1e-4)")
    run.add_argument("-f", "--parameters-file", action="append", default=[], metavar="YAML",
                     help="a YAML mapping of parameters (applied before -p)")
    run.add_argument("--outputs", default="outputs", help="root of the run folders (default: %(default)s)")
    run.add_argument("--run-id", default=None, help="name of the run folder (default: UTC time + 4 hex)")
    run.set_defaults(handler=_run)
    return parser


def _run(args: argparse.Namespace) -> int:
    params = collect_parameters(args.parameters_file, args.parameter)
    run_dir = run_notebook(args.notebook, params, outputs_root=args.outputs, run_id=args.run_id)
    print(run_dir)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, FileExistsError, NotebookRunError) as exc:
        # Expected failures get a one-line message, not a traceback; the run folder is named in NotebookRunError.
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
