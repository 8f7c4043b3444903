"""`python -m iml_nb report`: every claim of the paper the package tests, paper value vs ours, rebuilt from outputs/."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pandas as pd

from iml_nb.analysis import stats, verdicts
from iml_nb.analysis.claims import CLAIMS, across_worlds
from iml_nb.core.env import project_path
from iml_nb.core.results import atomic_write_text, is_complete

RUNNER_ONLY = ("output_dir",)


def complete_runs(notebook: str, outputs: Path) -> list[Path]:
    """A notebook's complete run folders, oldest first (run ids sort by time)."""
    return sorted(p for p in (outputs / notebook).glob("*") if p.is_dir() and is_complete(p))


def latest_complete_run(notebook: str, outputs: Path, select=None) -> Path | None:
    """The newest complete run folder of a notebook (of those `select` accepts, when given)."""
    runs = [r for r in complete_runs(notebook, outputs) if select is None or select(r)]
    return runs[-1] if runs else None


def default_run(notebook: str, outputs: Path) -> Path | None:
    """The newest complete run of `notebook` made at its default parameters (nothing passed but the run folder), or None."""
    defaults = [r for r in complete_runs(notebook, outputs) if command_of(r, notebook) == f"python -m iml_nb run {notebook}"]
    return defaults[-1] if defaults else None


def params_run(notebook: str, params: dict, outputs: Path) -> Path | None:
    """The newest complete run of `notebook` made with exactly `params` (a parameters file's mapping), or None."""
    runs = [r for r in complete_runs(notebook, outputs) if recorded_parameters(r, notebook) == params]
    return runs[-1] if runs else None


def recorded_parameters(run_dir: Path, notebook: str) -> dict:
    """The parameters papermill recorded in a run's notebook, the runner's own (the run folder) aside."""
    return _recorded(_executed(run_dir, notebook))


def _executed(run_dir: Path, notebook: str) -> dict:
    """A run's executed notebook as JSON ({} where it has none)."""
    executed = run_dir / f"{notebook}.ipynb"
    return json.loads(executed.read_text()) if executed.is_file() else {}


def _recorded(nb: dict) -> dict:
    """The parameters papermill injected: from its metadata, or (in a committed copy, stripped of that metadata) from its
    injected-parameters cell, whose literal assignments are the same values."""
    import ast

    params = nb.get("metadata", {}).get("papermill", {}).get("parameters")
    if params is None:
        cells = [c for c in nb.get("cells", []) if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
        body = ast.parse("".join(cells[0]["source"])).body if cells else []
        params = {s.targets[0].id: ast.literal_eval(s.value) for s in body if isinstance(s, ast.Assign)}
    # sorted, as nbformat writes the metadata: a run's command must not change when its notebook is stripped
    return {k: params[k] for k in sorted(params) if k not in RUNNER_ONLY}


def _defaults(nb: dict) -> dict:
    """The literal values of a notebook's parameters cell."""
    import ast

    cells = [c for c in nb.get("cells", []) if "parameters" in c.get("metadata", {}).get("tags", [])]
    source = "".join(cells[0]["source"]) if cells else ""
    return {s.target.id: ast.literal_eval(s.value) for s in ast.parse(source).body if isinstance(s, ast.AnnAssign)}


def command_of(run_dir: Path, notebook: str) -> str:
    """The `python -m iml_nb run` command that reproduces a run: the parameters papermill recorded in its notebook, and every
    default of its parameters cell that the notebook's current defaults no longer have (so a changed default keeps old runs'
    commands right)."""
    from iml_nb.runs.runner import NOTEBOOKS_DIR

    nb = _executed(run_dir, notebook)
    params = _recorded(nb)
    source = NOTEBOOKS_DIR / f"{notebook}.ipynb"
    if nb and source.is_file():
        now = _defaults(json.loads(source.read_text()))
        then = _defaults(nb)
        params = {**{k: v for k, v in then.items() if k in now and now[k] != v and k not in params}, **params}
    parts = ["python", "-m", "iml_nb", "run", notebook]
    for name, value in params.items():
        if name not in RUNNER_ONLY:
            parts += ["-p", name, json.dumps(value) if not isinstance(value, str) else value]
    return shlex.join(parts)


def scale_of(run_dir: Path, section: str = "") -> tuple[str, str]:
    """(seeds, scale) in words, from config.json: a run of 01 holds a full config, 06/09 a list of them, a sweep its fixed parameters
    (12_generality: per section)."""
    config = json.loads((run_dir / "config.json").read_text())
    if section:
        config = config["sections"][section]
    if "configs" in config:  # 06_probing, 09_gradient_alignment: one experiment config per word order or batch size
        seeds, scale = _scale_of_config(config["configs"][0])
        orders = sorted({c["data"]["word_order"] for c in config["configs"]})
        sizes = sorted({c["train"]["batch_size"] for c in config["configs"]})
        per = f"orders {'/'.join(orders)}" if len(orders) > 1 else f"bs {'/'.join(map(str, sizes))}"
        return seeds, scale.rsplit(", bs ", 1)[0] + f", {per}, loss on {config['configs'][0]['train']['loss_on']}"
    if "design" in config:  # 10_robustness: one main-experiment run per arm and world
        from iml_nb.people_qa.config import build_config

        first = config["design"][0]["params"]
        worlds = len({(d["people_seed"], d["stage0_seed"]) for d in config["design"]})
        _, scale = _scale_of_config(build_config(**first).to_dict())
        return f"{worlds} worlds × {first['n_seeds']}", scale
    if "data" in config:  # 01_main_two_stage, 04_set_inclusion, 05_mnist
        return _scale_of_config(config)
    fixed = config.get("fixed", {})
    seeds = str(fixed.get("n_seeds", "?"))
    shown = {k: v for k, v in fixed.items() if k not in ("n_seeds", "n_jobs")}
    return seeds, ", ".join(f"{k} {v}" for k, v in shown.items())


def _scale_of_config(config: dict) -> tuple[str, str]:
    """(seeds, scale) of one full experiment config (01, 04, 05; each config of 06 and 09)."""
    d, t, r = config["data"], config["train"], config["run"]
    m = config.get("model") or {"name": f"convnet ({config['net']['arch']})"}  # 05_mnist holds `net`; stage 0 = digit pretraining
    epochs = "+".join(str(e) for e in [t["stage0_epochs"], *t["stage_epochs"]])
    world = f"{d['n_people']} people" if "n_people" in d else f"{d['n_vars']} variables" + (", resampled Qs" * d.get("resample", 0))
    return f"{r['n_seeds']} × {r['n_seeds_stage2']}", f"{m['name']}, {world}, epochs {epochs}, bs {t['batch_size']}"


def _p(v: float) -> str:
    return "n/a" if v != v else f"{v:.2g}" if v >= 1e-4 else "<1e-4"


def build(outputs: str | os.PathLike = "outputs") -> pd.DataFrame:
    """One row per claim: claim, paper, ours, the raw and Holm-adjusted p of the tests its verdict reads, the rule, the verdict,
    whether it was explored or confirmed, seeds, scale, run folder and command; 'not run' where outputs/ has nothing.

    Holm's correction runs over the family of every test below (verdicts.py), so adding a claim makes the others stricter."""
    outputs = project_path(outputs)
    judged = []
    for c in CLAIMS:
        run = latest_complete_run(c.notebook, outputs, c.answers)
        judged.append((c, run, c.judge(json.loads((run / "summary.json").read_text()), run) if run is not None else None))
    family = [t for _, _, j in judged if j for t in j.tests if t is not None]
    adjusted = dict(zip(map(id, family), verdicts.holm([t.p for t in family])))
    rows = []
    for c, run, j in judged:
        row = {"claim": c.claim, "paper": c.paper, "notebook": c.notebook}
        if j is None:
            rows.append(
                {
                    **row,
                    "ours (95% CI)": "not run",
                    "p": "",
                    "p (Holm)": "",
                    "rule": "",
                    "verdict": "not run",
                    "evidence": "",
                    "seeds": "",
                    "scale": "",
                    "run": "",
                    "command": c.command(),
                }
            )
            continue
        p_adj = [adjusted.get(id(t), float("nan")) for t in j.tests]
        per_test = [verdicts.verdict(t, p) for t, p in zip(j.tests, p_adj)]
        verdict = j.verdict or (j.combine(per_test) if j.combine else per_test[0] if per_test else "inconclusive")
        labels = [f"{t.label} " if t is not None and t.label else "" for t in j.tests]
        raw = [t.p if t is not None else float("nan") for t in j.tests]
        seeds, scale = scale_of(run, c.section)
        rows.append(
            {
                **row,
                "ours (95% CI)": j.value,
                "p": "; ".join(lab + _p(v) for lab, v in zip(labels, raw)),
                "p (Holm)": "; ".join(lab + _p(v) for lab, v in zip(labels, p_adj)),
                "rule": j.rule,
                "verdict": verdict,
                "evidence": c.evidence,
                "seeds": seeds,
                "scale": scale,
                "run": str(run.relative_to(outputs.parent)),
                # a pre-registered row reads only runs made with exactly its file's parameters: the file is the shorter, same command
                "command": c.command(run.name) if c.registration else command_of(run, c.notebook),
            }
        )
    table = pd.DataFrame(rows)
    table.attrs["family"] = len(family)
    return table


TRIES_PREFIX = "tie_tries"  # outputs/diagnostics/<prefix>__<try>/: exploratory batches of 01 on the development world
TRY_COLUMNS = {
    "internalized_d1": "internalized, Define-dot",
    "internalized_d2": "internalized, Define-bar",
    "qa_gap": "QA gap",
    "entity_gap": "entity gap",
    "stage1_effect": "Stage-1 effect",
    "memorised_d1consis": "memorised, Define-dot",
    "memorised_d2consis": "memorised, Define-bar",
    "align_d1": "alias → person, Define-dot",
    "align_d2": "alias → person, Define-bar",
    "align_none": "alias → person, never defined",
}
_SAME_IN_EVERY_TRY = ("seed", "n_seeds", "n_jobs", "people_seed", "stage0_seed")


def tries_section(outputs: str | os.PathLike = "outputs") -> str:
    """Markdown: the exploratory tries of where internalization appears without tied embeddings (robustness.tries), one row per
    try with the command that ran it; empty when outputs/diagnostics holds none."""
    from iml_nb.people_qa.robustness import tries

    root = project_path(outputs) / "diagnostics"
    batches = sorted(b for b in root.glob(f"{TRIES_PREFIX}__*") if (b / "batch.json").is_file())  # by name: the same on any clone
    table = tries(batches)
    if table.empty:
        return ""
    cols = ["try", "changes", *TRY_COLUMNS.values(), "seeds", "command"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, rows in table.groupby("try", sort=False):
        by = {r["outcome"]: r for r in rows.to_dict("records")}
        fixed = rows.iloc[0]["fixed"]
        changes = {k: v for k, v in fixed.items() if k not in _SAME_IN_EVERY_TRY}
        command = [
            "python",
            "-m",
            "iml_nb",
            "batch",
            "01_main_two_stage",
            "--grid",
            f"seed={fixed.get('seed', 0)}",
            "--out",
            "outputs/diagnostics",
            "--name",
            f"{TRIES_PREFIX}__{name}",
        ]
        for k, v in fixed.items():
            if k != "seed":
                command += ["-p", k, json.dumps(v) if not isinstance(v, str) else v]
        cells = [
            name,
            ", ".join(f"{k} {json.dumps(v)}" for k, v in changes.items()) or "(defaults)",
            *[stats.format_ci(by[k], full=False) if k in by else "n/a" for k in TRY_COLUMNS],
            str(by["qa_gap"]["n_seeds"]),
            f"`{shlex.join(command)}`",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return (
        "\n## Exploratory: where does internalization appear without tied embeddings?\n\n"
        "Not pre-registered: batches of `01_main_two_stage` on the development world (people seed 0, Stage-0 seed 0), each "
        "changing the default in the named respects; mean over Stage-1 seeds with their 95 % t-interval (one world, so seeds "
        "are the unit). *Internalized* = EM(defined alias) − EM(never-defined alias) after Stage 2; IML presupposes it. "
        "*Alias → person* = cosine of a Stage-2 alias's input row with its person's row minus that with other people's "
        "(centred rows, end of Stage 2): how far its definition pulled the alias toward the person.\n\n" + "\n".join(lines) + "\n"
    )


def _markdown(table: pd.DataFrame) -> str:
    head = (
        "# Paper vs ours\n\nRebuilt by `python -m iml_nb report` from the newest complete run folder of each notebook in "
        f"`outputs/`. Intervals are 95 % t-intervals across Stage-1 seeds. Verdicts follow the rules of `iml_nb/analysis/verdicts.py`: "
        f"a claimed effect agrees when its test is significant after Holm's correction over all {table.attrs.get('family', 0)} "
        "tests of this table, with the predicted sign; a claimed absence of effect agrees only when an equivalence test (TOST, "
        f"margin ±{verdicts.MARGIN_GAP} EM for gaps, ±{verdicts.MARGIN_CHANCE} for chance levels) shows it; trends are "
        "per-seed regression slopes with seeds as clusters; everything else is inconclusive. *Evidence* says whether a row "
        "was explored on the seeds its design was developed on, or confirmed on fresh ones fixed in advance. CPU scale: see "
        "each row's scale and docs/results.md.\n\n"
    )
    cols = ["claim", "paper", "ours (95% CI)", "p", "p (Holm)", "rule", "verdict", "evidence", "seeds", "scale", "command"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        cells = [str(r[c]).replace("|", "\\|") for c in cols]
        cells[-1] = f"`{cells[-1]}`"
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


README_START = "<!-- results table: generated by `python -m iml_nb report`; do not edit by hand -->"
README_END = "<!-- end of results table -->"
HEADLINE_START = "<!-- headline: generated by `python -m iml_nb report`; do not edit by hand -->"
HEADLINE_END = "<!-- end of headline -->"


def readme_block(table: pd.DataFrame) -> str:
    """The README's results table: claim, paper, ours, verdict, notebook (the report holds seeds, scale and commands)."""
    cols = ["claim", "paper", "ours (95% CI)", "p (Holm)", "verdict"]
    lines = ["| " + " | ".join([*cols, "notebook"]) + " |", "|" + "---|" * (len(cols) + 1)]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join([*(str(r[c]).replace("|", "\\|") for c in cols), f"`{r['notebook']}`"]) + " |")
    return "\n".join(lines)


def headline(outputs: str | os.PathLike = "outputs") -> str:
    """The README's first result, in words, from the main experiment's curated run and, once it exists, the pre-registered
    across-world run: the IML gap with its interval, and how well each tag's Stage-2 definitions were memorised beside it."""
    outputs = project_path(outputs)
    main = latest_complete_run("01_main_two_stage", outputs)
    if main is None:
        return "The main experiment has no complete run in `outputs/` yet."
    summary = json.loads((main / "summary.json").read_text())
    final = summary.get("final_em", {})
    memorised = " / ".join(f"{final[k]['mean']:.2f}" for k in ("train_defs_d1consis", "train_defs_d2consis") if k in final)
    text = (
        f"In the main experiment's curated run (`{main.relative_to(outputs.parent)}/`, one world, {summary['n_seeds']} seeds), the QA IML "
        f"gap is {stats.format_ci(summary['iml_gap_qa'], full=False)}"
        + (f", with both tags' Stage-2 definitions memorised {memorised} (Define-dot / Define-bar)." if memorised else ".")
    )
    robust = latest_complete_run("10_robustness", outputs)
    if robust is None:
        return text + " The pre-registered test across independent worlds (`10_robustness`) has not finished."
    judged = across_worlds(json.loads((robust / "summary.json").read_text()), robust)
    return text + (
        f" The pre-registered test on fresh seeds (`{robust.relative_to(outputs.parent)}/`), default arm's QA gap: {judged.value}; "
        f"verdict {judged.verdict}."
    )


def replace_block(text: str, start: str, end: str, block: str, path: Path) -> str:
    """`text` with what lies between the `start` and `end` lines replaced by `block` (each must occur once: `path` names the file)."""
    if text.count(start) != 1 or text.count(end) != 1:
        raise ValueError(f"{path} needs exactly one {start!r} ... {end!r} block")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return head + start + "\n" + block + "\n" + end + tail


def update_readme(table: pd.DataFrame, readme: str | os.PathLike, outputs: str | os.PathLike = "outputs") -> Path:
    """Replace the README's generated blocks: the headline and the results table."""
    path = Path(readme)
    text = replace_block(path.read_text(), README_START, README_END, readme_block(table), path)
    return atomic_write_text(path, replace_block(text, HEADLINE_START, HEADLINE_END, headline(outputs), path))


def write(outputs: str | os.PathLike = "outputs") -> tuple[Path, Path, pd.DataFrame]:
    """Write outputs/report.md and outputs/report.html (self-contained, no network) and return them with the table."""
    table = build(outputs)
    root = project_path(outputs)
    md = atomic_write_text(root / "report.md", _markdown(table) + tries_section(outputs))
    html_table = table.drop(columns=["notebook"]).to_html(index=False, escape=True, border=0)
    html_table = re.sub(r"`([^`]*)`", r"<code>\1</code>", html_table)  # the Markdown code spans (e.g. `<alias>`), escaped inside
    html = (
        "<!doctype html><meta charset='utf-8'><title>iml-notebooks: paper vs ours</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 8px;vertical-align:top;border-bottom:1px solid #ddd}"
        "code,td:last-child{font-family:monospace;font-size:85%}</style><h1>Paper vs ours</h1>"
        "<p>Rebuilt by <code>python -m iml_nb report</code> from the newest complete run of each notebook in outputs/.</p>" + html_table
    )
    return md, atomic_write_text(root / "report.html", html), table
