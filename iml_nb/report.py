"""`python -m iml_nb report`: every claim of the paper the package tests, paper value vs ours, rebuilt from outputs/."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import stats
from .env import project_path
from .results import atomic_write_text, is_complete

RUNNER_ONLY = ("output_dir",)


@dataclass(frozen=True)
class Claim:
    notebook: str  # the notebook whose run folders hold the evidence
    claim: str
    paper: str  # the paper's value, in words where its numbers were not retrievable
    judge: Callable[[dict], tuple[str, str]]  # summary.json -> (our value, verdict: agrees / disagrees / inconclusive)


def _ci(g: dict | None) -> str:
    return stats.format_ci(g, full=False) if g and g.get("mean") is not None else "n/a"


def _positive(g: dict | None) -> str:
    """A gap predicted to be > 0: agrees if its 95% CI is above zero, disagrees if below, else inconclusive."""
    sign = stats.ci_sign(g.get("ci_low"), g.get("ci_high")) if g else 0
    return {1: "agrees", -1: "disagrees", 0: "inconclusive"}[sign]


def _gap_claim(key: str) -> Callable[[dict], tuple[str, str]]:
    return lambda s: (_ci(s.get(key)), _positive(s.get(key)))


def _qa_points(summary: dict) -> list[dict]:
    return [g for g in summary.get("gaps", []) if g["gap"] == "qa"]


def _series(summary: dict) -> str:
    axis = summary["axis"]
    return "; ".join(f"{g[axis]}: {_ci(g)}" for g in _qa_points(summary))


def _alpha_half(summary: dict) -> tuple[str, str]:
    half = [g for g in _qa_points(summary) if g["alpha"] == 0.5]
    if not half:
        return "alpha = 0.5 not run", "inconclusive"
    g = half[0]
    return f"QA gap at 0.5: {_ci(g)}", "agrees" if g["ci_low"] <= 0 <= g["ci_high"] else "disagrees"


def _trend(direction: int) -> Callable[[dict], tuple[str, str]]:
    """The gap's mean moves monotonically along the axis (direction +1: grows, -1: shrinks) and its far end shows IML.

    Numeric axes are sorted; categorical ones (model names) keep the sweep's order (`values` in summary.json, smallest first).
    """
    def judge(summary: dict) -> tuple[str, str]:
        points = _qa_points(summary)
        axis = summary["axis"]
        if len(points) < 2:
            return _series(summary) or "fewer than 2 points", "inconclusive"
        given = [g[axis] for g in points]
        numeric = all(isinstance(v, (int, float)) for v in given)
        values = sorted(given) if numeric else [v for v in summary.get("values", given) if v in given]
        by_value = {g[axis]: g for g in points}
        means = [by_value[v]["mean"] for v in values if v in by_value]
        steps = [direction * (b - a) for a, b in zip(means, means[1:])]
        end = by_value[values[-1] if direction > 0 else values[0]]
        if all(s > 0 for s in steps) and end["ci_low"] > 0:
            verdict = "agrees"
        elif all(s < 0 for s in steps):
            verdict = "disagrees"
        else:
            verdict = "inconclusive"
        return _series(summary), verdict
    return judge


def _entity_last(summary: dict) -> tuple[str, str]:
    points = {g["word_order"]: g for g in _qa_points(summary)}
    iml = sorted(o for o, g in points.items() if g["ci_low"] > 0)
    expected = sorted(o for o in points if o.endswith("e"))
    value = f"IML (CI > 0) in {iml or 'none'} of {sorted(points)}: " + _series(summary)
    if iml == expected and expected:
        return value, "agrees"
    return value, "disagrees" if set(iml) - set(expected) else "inconclusive"


def _probe(order: str, decodable: bool) -> Callable[[dict], tuple[str, str]]:
    """The `tag` probe's accuracy after the alias at the last layer (chance 0.5): predicted above chance, or at chance."""
    def judge(summary: dict) -> tuple[str, str]:
        g = (summary.get(f"{order}/tag") or {}).get("after_alias_last_layer")
        if not g or g.get("ci_low") is None:
            return f"{order} not probed", "inconclusive"
        value = f"{stats.format_ci(g, '.3f', full=False)} (chance 0.5)"
        above = g["ci_low"] > 0.5
        return value, ("agrees" if above else "inconclusive") if decodable else ("disagrees" if above else "agrees")
    return judge


def _alignment_small_batch(summary: dict) -> tuple[str, str]:
    """cos(d1consis) − cos(d2consis) at the smallest batch size: predicted > 0."""
    rows = sorted(summary.get("alignment", []), key=lambda r: r["batch_size"])
    if not rows:
        return "not measured", "inconclusive"
    r = rows[0]
    g = {"mean": r["cos_gap"], "ci_low": r["cos_gap_ci_low"], "ci_high": r["cos_gap_ci_high"]}
    series = "; ".join(f"bs {x['batch_size']}: {x['cos_gap']:+.4f}" for x in rows)
    return f"bs {r['batch_size']}: {_ci(g)} ({series})", _positive(g)


def _across_worlds(summary: dict) -> tuple[str, str]:
    """10_robustness: the pre-registered verdict of the default arm's QA gap across worlds, and which arms keep IML."""
    qa = {r["arm"]: r for r in summary.get("table", []) if r["outcome"] == "qa_gap"}
    unequal = {m["arm"] for m in summary.get("memorised", []) if m.get("unequal")}
    if "default" not in qa:
        return "default arm not run", "inconclusive"
    d = qa["default"]
    kept = [a for a, r in qa.items() if r["verdict"] == "IML" and a not in unequal]
    arms = "; ".join(f"{a}: {_ci(r)} {r['verdict']}" + (" (unequal learning)" if a in unequal else "") for a, r in qa.items())
    value = f"{_ci(d)} across {d['n_worlds']} worlds; IML kept by {', '.join(kept) or 'no arm'} ({arms})"
    if d["verdict"] == "IML" and "default" not in unequal:
        return value, "agrees"
    return value, "disagrees" if d["verdict"] in ("reversed", "no effect") else "inconclusive"


CLAIMS = (
    Claim("01_main_two_stage", "Stage 1: consistent Define-dot definitions help QA more than inconsistent Define-bar ones "
          "(qd1consis − qd2incons, end of Stage 1)", "≈0.51 vs ≈0.45 (Pythia-2.8B, Fig. 3a)", _gap_claim("stage1_gap_qa")),
    Claim("01_main_two_stage", "IML on QA: new Define-dot definitions internalized more than Define-bar ones (d1consis − d2consis, "
          "end of Stage 2)", "≈0.31 vs ≈0.28: gap ≈ +0.03 (Fig. 3a)", _gap_claim("iml_gap_qa")),
    Claim("01_main_two_stage", "IML on entity association (\"What is the name of xyz?\", d1consis − d2consis)",
          "≈0.18 vs ≈0.07: gap ≈ +0.11 (Fig. 3b)", _gap_claim("iml_gap_entity")),
    Claim("02_alpha_sweep", "No IML when the tag does not predict consistency (α = 0.5)", "no IML at α = 0.5 (Fig. 4a; numbers not "
          "retrievable)", _alpha_half),
    Claim("02_alpha_sweep", "The IML gap grows with α", "grows with α (Fig. 4a)", _trend(+1)),
    Claim("03_word_order", "IML only when the entity comes last in the definition (tve, vte)",
          "order matters \"significantly\" (§6.2); per-order numbers not retrievable", _entity_last),
    Claim("04_set_inclusion", "From scratch (set inclusion): define1 variables' membership QA beats define2 ones in Stage 1 "
          "(qd1consis − qd2incons accuracy)", "works with Pythia-70M from scratch (poster); old version: ≈54% accuracy, weak (§7)",
          _gap_claim("stage1_gap_qa")),
    Claim("04_set_inclusion", "From scratch (set inclusion): IML after Stage 2 (d1consis − d2consis accuracy, chance 0.5)",
          "IML with Pythia-70M from scratch (poster); ICML numbers not retrievable", _gap_claim("iml_gap_qa")),
    Claim("05_mnist", "Vision (MNIST, convnet): tag-1 definitions help QA on held-out cells in Stage 1 (qd1consis − qd2incons accuracy)",
          "reliable definitions used, unreliable ones not (poster panel; numbers not retrievable)", _gap_claim("stage1_gap_qa")),
    Claim("05_mnist", "Vision (MNIST, convnet): IML after Stage 2 (d1consis − d2consis QA accuracy, chance 0.5)",
          "IML in a convnet, \"somewhat contrived\" setting (poster, blog); effects small (old version's review)",
          _gap_claim("iml_gap_qa")),
    Claim("06_probing", "After Stage 1, the defining tag is linearly decodable from a question about the alias, on the tokens "
          "after the alias, when definitions put the tag after the alias (VTE)", "≈0.85–0.95 in layers 8–16 (Pythia-1B, poster)",
          _probe("vte", decodable=True)),
    Claim("06_probing", "… but not when the tag comes first (TVE), although TVE gives IML", "≈0.5 everywhere (poster)",
          _probe("tve", decodable=False)),
    Claim("09_gradient_alignment", "Define-dot definitions' gradients align more with their questions' gradients than Define-bar "
          "ones' at small batch sizes (one-stage training)", "≈0.23 vs ≈0.215 at batch ≤ 512 (Pythia-1B, poster)",
          _alignment_small_batch),
    Claim("07_batch_size", "Smaller batch sizes give more IML (one-stage training)", "more IML at smaller batches (abstract, §6.1)",
          _trend(-1)),
    Claim("08_model_size", "Larger models show more IML", "more IML in larger models (abstract, §6.3)",
          _trend(+1)),
    Claim("10_robustness", "IML on QA holds across independent worlds and fresh seeds (pre-registered; default arm, across-world "
          "95% CI), and which of the toy's shortcuts it survives removing", "the paper's main result (Fig. 3a), one pretrained model",
          _across_worlds),
)


def latest_complete_run(notebook: str, outputs: Path) -> Path | None:
    """The newest complete run folder of a notebook (run ids sort by time)."""
    runs = sorted(p for p in (outputs / notebook).glob("*") if p.is_dir() and is_complete(p))
    return runs[-1] if runs else None


def command_of(run_dir: Path, notebook: str) -> str:
    """The `python -m iml_nb run` command that reproduces a run, from the parameters papermill recorded in its notebook."""
    executed = run_dir / f"{notebook}.ipynb"
    params = {}
    if executed.is_file():
        params = json.loads(executed.read_text()).get("metadata", {}).get("papermill", {}).get("parameters", {})
    parts = ["python", "-m", "iml_nb", "run", notebook]
    for name, value in params.items():
        if name not in RUNNER_ONLY:
            parts += ["-p", name, json.dumps(value) if not isinstance(value, str) else value]
    return shlex.join(parts)


def scale_of(run_dir: Path) -> tuple[str, str]:
    """(seeds, scale) in words, from config.json: a run of 01 holds a full config, 06/09 a list of them, a sweep its fixed parameters."""
    config = json.loads((run_dir / "config.json").read_text())
    if "configs" in config:  # 06_probing, 09_gradient_alignment: one experiment config per word order or batch size
        seeds, scale = _scale_of_config(config["configs"][0])
        orders = sorted({c["data"]["word_order"] for c in config["configs"]})
        sizes = sorted({c["train"]["batch_size"] for c in config["configs"]})
        per = f"orders {'/'.join(orders)}" if len(orders) > 1 else f"bs {'/'.join(map(str, sizes))}"
        return seeds, scale.rsplit(", bs ", 1)[0] + f", {per}, loss on {config['configs'][0]['train']['loss_on']}"
    if "design" in config:  # 10_robustness: one main-experiment run per arm and world
        from .config import build_config

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


def build(outputs: str | os.PathLike = "outputs") -> pd.DataFrame:
    """One row per claim: claim, paper, ours, verdict, seeds, scale, run folder, command; 'not run' where outputs/ has nothing."""
    outputs = project_path(outputs)
    rows = []
    for c in CLAIMS:
        run = latest_complete_run(c.notebook, outputs)
        row = {"claim": c.claim, "paper": c.paper, "notebook": c.notebook}
        if run is None:
            rows.append({**row, "ours (95% CI)": "not run", "verdict": "not run", "seeds": "", "scale": "", "run": "",
                         "command": f"python -m iml_nb run {c.notebook}"})
            continue
        ours, verdict = c.judge(json.loads((run / "summary.json").read_text()))
        seeds, scale = scale_of(run)
        rows.append({**row, "ours (95% CI)": ours, "verdict": verdict, "seeds": seeds, "scale": scale,
                     "run": str(run.relative_to(outputs.parent)), "command": command_of(run, c.notebook)})
    return pd.DataFrame(rows)


TRIES_PREFIX = "tie_tries"  # outputs/diagnostics/<prefix>__<try>/: exploratory batches of 01 on the development world
TRY_COLUMNS = {"internalized_d1": "internalized, Define-dot", "internalized_d2": "internalized, Define-bar", "qa_gap": "QA gap",
               "entity_gap": "entity gap", "stage1_effect": "Stage-1 effect", "memorised_d1consis": "memorised, Define-dot",
               "memorised_d2consis": "memorised, Define-bar", "align_d1": "alias → person, Define-dot",
               "align_d2": "alias → person, Define-bar", "align_none": "alias → person, never defined"}
_SAME_IN_EVERY_TRY = ("seed", "n_seeds", "n_jobs", "people_seed", "stage0_seed")


def tries_section(outputs: str | os.PathLike = "outputs") -> str:
    """Markdown: the exploratory tries of where internalization appears without tied embeddings (robustness.tries), one row per
    try with the command that ran it; empty when outputs/diagnostics holds none."""
    from .robustness import tries

    root = project_path(outputs) / "diagnostics"
    batches = sorted((b for b in root.glob(f"{TRIES_PREFIX}__*") if (b / "batch.json").is_file()),
                     key=lambda b: (b / "batch.json").stat().st_mtime)  # the order they finished in
    table = tries(batches)
    if table.empty:
        return ""
    cols = ["try", "changes", *TRY_COLUMNS.values(), "seeds", "command"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, rows in table.groupby("try", sort=False):
        by = {r["outcome"]: r for r in rows.to_dict("records")}
        fixed = rows.iloc[0]["fixed"]
        changes = {k: v for k, v in fixed.items() if k not in _SAME_IN_EVERY_TRY}
        command = ["python", "-m", "iml_nb", "batch", "01_main_two_stage", "--grid", f"seed={fixed.get('seed', 0)}", "--out",
                   "outputs/diagnostics", "--name", f"{TRIES_PREFIX}__{name}"]
        for k, v in fixed.items():
            if k != "seed":
                command += ["-p", k, json.dumps(v) if not isinstance(v, str) else v]
        cells = [name, ", ".join(f"{k} {json.dumps(v)}" for k, v in changes.items()) or "(defaults)",
                 *[stats.format_ci(by[k], full=False) if k in by else "n/a" for k in TRY_COLUMNS],
                 str(by["qa_gap"]["n_seeds"]), f"`{shlex.join(command)}`"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return ("\n## Exploratory: where does internalization appear without tied embeddings?\n\n"
            "Not pre-registered: batches of `01_main_two_stage` on the development world (people seed 0, Stage-0 seed 0), each "
            "changing the default in the named respects; mean over Stage-1 seeds with their 95 % t-interval (one world, so seeds "
            "are the unit). *Internalized* = EM(defined alias) − EM(never-defined alias) after Stage 2; IML presupposes it. "
            "*Alias → person* = cosine of a Stage-2 alias's input row with its person's row minus that with other people's "
            "(centred rows, end of Stage 2): how far its definition pulled the alias toward the person.\n\n"
            + "\n".join(lines) + "\n")


def _markdown(table: pd.DataFrame) -> str:
    head = ("# Paper vs ours\n\nRebuilt by `python -m iml_nb report` from the newest complete run folder of each notebook in "
            "`outputs/`. Verdicts read the 95% CI across Stage-1 seeds (agrees: the predicted sign, CI excluding zero; "
            "inconclusive: CI containing zero or a non-monotone trend). CPU scale: see each row's scale and docs/results.md.\n\n")
    cols = ["claim", "paper", "ours (95% CI)", "verdict", "seeds", "scale", "command"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        cells = [str(r[c]).replace("|", "\\|") for c in cols]
        cells[-1] = f"`{cells[-1]}`"
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


README_START = "<!-- results table: generated by `python -m iml_nb report`; do not edit by hand -->"
README_END = "<!-- end of results table -->"


def readme_block(table: pd.DataFrame) -> str:
    """The README's results table: claim, paper, ours, verdict, notebook (the report holds seeds, scale and commands)."""
    cols = ["claim", "paper", "ours (95% CI)", "verdict"]
    lines = ["| " + " | ".join([*cols, "notebook"]) + " |", "|" + "---|" * (len(cols) + 1)]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join([*(str(r[c]).replace("|", "\\|") for c in cols), f"`{r['notebook']}`"]) + " |")
    return "\n".join(lines)


def update_readme(table: pd.DataFrame, readme: str | os.PathLike) -> Path:
    """Replace the README's generated results table (between README_START and README_END) with this table."""
    path = Path(readme)
    text = path.read_text()
    if text.count(README_START) != 1 or text.count(README_END) != 1:
        raise ValueError(f"{path} needs exactly one {README_START!r} ... {README_END!r} block")
    head, rest = text.split(README_START)
    _, tail = rest.split(README_END)
    return atomic_write_text(path, head + README_START + "\n" + readme_block(table) + "\n" + README_END + tail)


def write(outputs: str | os.PathLike = "outputs") -> tuple[Path, Path, pd.DataFrame]:
    """Write outputs/report.md and outputs/report.html (self-contained, no network) and return them with the table."""
    table = build(outputs)
    root = project_path(outputs)
    md = atomic_write_text(root / "report.md", _markdown(table) + tries_section(outputs))
    html_table = table.drop(columns=["notebook"]).to_html(index=False, escape=True, border=0)
    html = ("<!doctype html><meta charset='utf-8'><title>iml-notebooks: paper vs ours</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 8px;vertical-align:top;border-bottom:1px solid #ddd}"
            "code,td:last-child{font-family:monospace;font-size:85%}</style><h1>Paper vs ours</h1>"
            "<p>Rebuilt by <code>python -m iml_nb report</code> from the newest complete run of each notebook in outputs/.</p>"
            + html_table)
    return md, atomic_write_text(root / "report.html", html), table
