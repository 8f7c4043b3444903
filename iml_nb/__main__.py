"""Command line: `python -m iml_nb run NOTEBOOK -p NAME VALUE` executes a notebook into outputs/, `batch` one run per grid point."""

from __future__ import annotations

import argparse
import sys

from iml_nb.runs.batch import BACKENDS, run_batch
from iml_nb.runs.grid import load_batch_file, parse_grid_option
from iml_nb.runs.runner import NotebookRunError, parse_value, read_parameters_file, run_notebook
from iml_nb.runs.slurm import SlurmOptions


def collect_parameters(files: list[str], pairs: list[list[str]]) -> dict:
    """Parameter files in order, then -p pairs on top (later wins), as papermill merges -f and -p."""
    params: dict = {}
    for file in files:
        params.update(read_parameters_file(file))
    for name, value in pairs:
        params[name] = parse_value(value)
    return params


def _parameter_options(command: argparse.ArgumentParser, what: str, file_what: str) -> None:
    """-p NAME VALUE (repeatable) and -f YAML, as `run`, `batch` and `data` take them."""
    command.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), help=f"{what}; VALUE is read as YAML"
    )
    command.add_argument("-f", "--parameters-file", action="append", default=[], metavar="YAML", help=f"{file_what} (applied before -p)")


def _outputs_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--outputs", default="outputs", help="root of the run folders (default: %(default)s)")


def _add_batch(commands) -> None:
    batch = commands.add_parser(
        "batch", help="execute one notebook per grid point x seed, in parallel; a rerun redoes only missing or failed runs"
    )
    batch.add_argument("notebook", nargs="?", help="path to an .ipynb or a stem under notebooks/ (or `notebook:` in --batch-file)")
    batch.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="a varied parameter, values read as YAML; repeat for a Cartesian product",
    )
    batch.add_argument("--seeds", type=int, default=None, metavar="N", help="also vary `seed` over 0..N-1")
    _parameter_options(batch, "a parameter fixed for every run", "a YAML mapping of fixed parameters")
    batch.add_argument(
        "--batch-file",
        metavar="YAML",
        help="a YAML mapping {notebook, grid: {name: [values]}, seeds, fixed: {name: value}}; the options above add to it",
    )
    batch.add_argument("--jobs", type=int, default=None, metavar="K", help="runs in parallel with --backend local (default: 1)")
    batch.add_argument("--out", default="outputs", help="root of the batch folder (default: %(default)s)")
    batch.add_argument("--name", default=None, help="batch folder name (default: <notebook stem>__<axis>-<axis>)")
    batch.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help="local: --jobs processes on this machine; slurm: one SLURM job per run through submitit, waited for (default: %(default)s)",
    )
    cluster = batch.add_argument_group("SLURM (with --backend slurm)")
    for flag, kind, metavar, text in SLURM_FLAGS:
        cluster.add_argument(
            flag,
            type=kind,
            default=None,
            metavar=metavar,
            action="append" if flag in ("--sbatch-arg", "--slurm-setup") else "store",
            help=text,
        )
    batch.set_defaults(handler=_batch)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m iml_nb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="execute one notebook with parameters into its own run folder")
    run.add_argument("notebook", help="path to an .ipynb, or a stem under notebooks/ such as 01_main_two_stage")
    _parameter_options(run, "a parameter (0.5, true, [1,2], 1e-4)", "a YAML mapping of parameters")
    _outputs_option(run)
    run.add_argument("--run-id", default=None, help="name of the run folder (default: UTC time + 4 hex)")
    run.set_defaults(handler=_run)

    _add_batch(commands)

    report = commands.add_parser(
        "report",
        help="rebuild outputs/report.md and .html: every claim of the paper we test, "
        "paper vs ours, from the newest complete run of each notebook",
    )
    _outputs_option(report)
    report.add_argument(
        "--readme",
        default="README.md",
        help="also regenerate this file's headline, results table and `make paper` wall time, and docs/usage.md's table of it "
        "(default: %(default)s; '' to skip)",
    )
    report.set_defaults(handler=_report)

    paper = commands.add_parser(
        "paper",
        help="every paper section at its defaults, then every explored run a report row names a parameters file for, then every "
        "pre-registered run (params/*_confirm*.yaml), one after another "
        "(many hours on 2 cores), then the report; what has a complete run already is skipped, so a rerun resumes",
    )
    _outputs_option(paper)
    paper.add_argument("--dry-run", action="store_true", help="list what is complete and what would run, with its command; run nothing")
    paper.set_defaults(handler=_paper)

    figures = commands.add_parser("figures", help="redraw every figure of the curated run folders from their stored files")
    _outputs_option(figures)
    figures.set_defaults(handler=_figures)

    book = commands.add_parser(
        "book",
        help="build the results site (Jupyter Book: README, docs, report and each notebook's newest complete run) "
        "into _build/book/_build/html; offline, nothing is executed",
    )
    _outputs_option(book)
    book.add_argument("--out", default="_build/book", help="build folder (default: %(default)s)")
    book.set_defaults(handler=_book)

    data = commands.add_parser(
        "data",
        help="write the define experiment's data for a configuration (the main experiment's "
        "parameters) as Parquet splits with a dataset card, without training",
    )
    data.add_argument("out", help="folder to write (datasets.load_dataset(out) reads it back)")
    _parameter_options(data, "a parameter of 01_main_two_stage", "a YAML mapping of parameters")
    data.set_defaults(handler=_data)
    return parser


SLURM_FLAGS = (  # flag, type, metavar, help; each maps to the SlurmOptions field of the same name
    ("--partition", str, "P", "partition to submit to (default: the cluster's default)"),
    ("--gpus-per-run", int, "G", "GPUs per run, requested as --gpus-per-node (default: 0)"),
    ("--cpus-per-run", int, "C", "CPUs per run, also its torch threads (default: 2)"),
    ("--time-min", int, "M", "time limit per run in minutes; a run past it is recorded as failed (TIMEOUT) (default: 60)"),
    ("--mem-gb", float, "GB", "memory per run (default: the partition's)"),
    ("--max-parallel", int, "N", "at most N runs at once, as --array=...%%N (default: no cap)"),
    ("--sbatch-arg", str, "KEY=VALUE", "another sbatch option, e.g. qos=high or account=mylab; repeatable"),
    ("--slurm-setup", str, "LINE", "a shell line each job runs first, e.g. 'module load cuda'; repeatable"),
    ("--poll-s", float, "S", "seconds between queue checks while waiting (default: 5)"),
)


def slurm_options(args: argparse.Namespace) -> SlurmOptions | None:
    """SlurmOptions from the SLURM flags given (None when none was), each value checked and named by its flag."""
    given = {flag.lstrip("-").replace("-", "_"): getattr(args, flag.lstrip("-").replace("-", "_")) for flag, *_ in SLURM_FLAGS}
    given = {k: v for k, v in given.items() if v is not None}
    if args.backend != "slurm":
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise ValueError(f"{flags} apply only with --backend slurm")
        return None
    pairs = []
    for item in given.pop("sbatch_arg", []):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--sbatch-arg {item!r}: expected KEY=VALUE")
        pairs.append((key.strip(), value.strip()))
    setup = tuple(given.pop("slurm_setup", []))
    return SlurmOptions(**given, sbatch_args=tuple(pairs), setup=setup)


def _run(args: argparse.Namespace) -> int:
    params = collect_parameters(args.parameters_file, args.parameter)
    run_dir = run_notebook(args.notebook, params, outputs_root=args.outputs, run_id=args.run_id)
    print(run_dir)
    return 0


def _batch(args: argparse.Namespace) -> int:
    spec = load_batch_file(args.batch_file) if args.batch_file else {}
    notebook = args.notebook or spec.get("notebook")
    if not notebook:
        raise ValueError("give a NOTEBOOK, or `notebook:` in the --batch-file")
    grid = dict(spec.get("grid") or {})
    for option in args.grid:
        name, values = parse_grid_option(option)
        if name in grid:
            raise ValueError(f"grid `{name}` is given twice")
        grid[name] = values
    seeds = args.seeds if args.seeds is not None else spec.get("seeds")
    fixed = {**(spec.get("fixed") or {}), **collect_parameters(args.parameters_file, args.parameter)}
    options = slurm_options(args)
    if args.backend == "slurm" and args.jobs is not None:
        raise ValueError("--jobs is for --backend local; with slurm, cap the runs at once with --max-parallel")
    table = run_batch(
        notebook, grid, seeds=seeds, fixed=fixed, jobs=args.jobs or 1, out=args.out, name=args.name, backend=args.backend, slurm=options
    )
    columns = ["run", "status", "duration_s", "error"] + [c for c in ("job_id", "log") if c in table]
    print(table[columns].to_string(index=False, na_rep=""))
    print(table.attrs["batch_json"])
    failed = table[table.status == "failed"]
    if len(failed):
        print(f"error: {len(failed)} of {len(table)} runs failed: {', '.join(failed.run)}", file=sys.stderr)
    return 1 if len(failed) else 0


def _figures(args: argparse.Namespace) -> int:
    from iml_nb.analysis.figures import redraw_all

    for path in redraw_all(args.outputs):
        print(path)
    return 0


def _paper(args: argparse.Namespace) -> int:
    from iml_nb.analysis.paper import steps, times_markdown
    from iml_nb.analysis.report import write
    from iml_nb.core.results import new_run_id

    for step in steps(args.outputs):
        if step.done is not None:
            print(f"{step.notebook}: complete {step.what} in {step.done}; skipped")
        elif args.dry_run:
            print(f"{step.notebook}: to run {step.what}: {step.command}")
        else:
            print(f"{step.notebook}: running {step.what}", flush=True)
            # pre-registered: a new confirm-* folder each time; a stopped run's batches and seed caches resume, nothing is overwritten
            run_id = {"run_id": f"confirm-{new_run_id()}"} if step.pre_registered else {}
            print(run_notebook(step.notebook, step.params, outputs_root=args.outputs, **run_id))
    if args.dry_run:
        print("\n" + times_markdown(args.outputs)[0])  # what each step cost or is expected to cost
        return 0
    md, _, _ = write(args.outputs)
    print(md)
    return 0


def _book(args: argparse.Namespace) -> int:
    from iml_nb.analysis.book import build

    print(build(args.out, args.outputs) / "index.html")
    return 0


def _data(args: argparse.Namespace) -> int:
    from iml_nb.people_qa.config import build_config
    from iml_nb.people_qa.export import write

    cfg = build_config(**collect_parameters(args.parameters_file, args.parameter))  # every parameter checked first
    folder = write(cfg, args.out)
    print(folder)
    print((folder / "README.md").read_text().split("| split | rows |")[1].strip())
    return 0


def _report(args: argparse.Namespace) -> int:
    from iml_nb.analysis.paper import update_times
    from iml_nb.analysis.report import update_readme, write
    from iml_nb.core.env import project_path

    md, html, table = write(args.outputs)
    if args.readme:
        readme = project_path(args.readme)
        print(update_readme(table, readme, args.outputs))
        print(*update_times(readme, args.outputs), sep="\n")
    print(table[["notebook", "ours (95% CI)", "verdict"]].to_string(index=False))
    print(md)
    print(html)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, FileExistsError, NotebookRunError) as exc:
        # Expected failures get a one-line message, not a traceback; the run folder is named in NotebookRunError.
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # The runs in flight stop with folders that are not complete; `batch` moves them aside and redoes them next time.
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
