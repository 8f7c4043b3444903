"""`python -m iml_nb report`: every claim of the paper the package tests, paper value vs ours, rebuilt from outputs/."""

from __future__ import annotations

import json
import math
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from iml_nb.analysis import stats, verdicts
from iml_nb.core.env import project_path
from iml_nb.core.results import atomic_write_text, is_complete

RUNNER_ONLY = ("output_dir",)


@dataclass(frozen=True)
class Judged:
    """What one claim's run folder says: our value in words, the tests its verdict reads (verdicts.py), the rule in words, and how
    the tests' verdicts combine (default: the one test's). `verdict` is set where a notebook decided it under rules of its own."""

    value: str
    tests: tuple = ()
    rule: str = ""
    combine: Callable[[list[str]], str] | None = None
    verdict: str | None = None


EXPLORED = "explored (the seeds the design was developed on)"
CONFIRMED = "confirmed (pre-registered; fresh worlds and seeds)"


@dataclass(frozen=True)
class Claim:
    notebook: str  # the notebook whose run folders hold the evidence
    claim: str
    paper: str  # the paper's value, in words where its numbers were not retrievable
    judge: Callable[[dict, Path], Judged]  # (summary.json, run folder) -> what it says
    evidence: str = EXPLORED


def _ci(g: dict | None) -> str:
    return stats.format_ci(g, full=False) if g and g.get("mean") is not None else "n/a"


def _gap_claim(key: str) -> Callable[[dict, Path], Judged]:
    def judge(summary: dict, run_dir: Path) -> Judged:
        g = summary.get(key)
        return Judged(_ci(g), (verdicts.from_interval(g, "positive"),), verdicts.RULES["positive"])

    return judge


def _qa_points(summary: dict) -> list[dict]:
    return [g for g in summary.get("gaps", []) if g["gap"] == "qa"]


def _series(summary: dict) -> str:
    axis = summary["axis"]
    return "; ".join(f"{g[axis]}: {_ci(g)}" for g in _qa_points(summary))


def _alpha_half(summary: dict, run_dir: Path) -> Judged:
    half = [g for g in _qa_points(summary) if g["alpha"] == 0.5]
    if not half:
        return Judged("alpha = 0.5 not run")
    rule = verdicts.RULES["none"].format(margin=verdicts.MARGIN_GAP)
    return Judged(f"QA gap at 0.5: {_ci(half[0])}", (verdicts.from_interval(half[0], "none"),), rule)


def _log2_size(model: str) -> float:
    """A model size as log2 of its non-embedding parameters (12 · layers · width² for the Pythia shapes)."""
    from iml_nb.core.config import SCRATCH_SIZES

    d, layers, _ = SCRATCH_SIZES[model]
    return math.log2(12 * layers * d * d)


AXIS_SCALE = {"alpha": ("α", float), "batch_size": ("log2 batch size", math.log2), "model": ("log2 non-embedding parameters", _log2_size)}


def per_seed_gaps(run_dir: Path, axis: str) -> pd.DataFrame:
    """A sweep's per-seed QA gap (d1consis − d2consis, end of the last stage) at every grid value: columns seed, <axis>, gap."""
    from iml_nb.core.results import read_metrics

    metrics = read_metrics(run_dir / "metrics.csv")
    frames = []
    for value, frame in metrics.groupby(axis, sort=True):
        diffs = stats.paired_differences(frame.drop(columns=[axis]), "d1consis", "d2consis")
        frames.append(pd.DataFrame({"seed": diffs["seed"].astype(int), axis: value, "gap": diffs["diff"]}))
    return pd.concat(frames, ignore_index=True)


def _trend(direction: int) -> Callable[[dict, Path], Judged]:
    """The per-seed QA gap's slope along the sweep's axis (grows: direction +1, shrinks: -1), seeds as clusters."""

    def judge(summary: dict, run_dir: Path) -> Judged:
        axis = summary["axis"]
        name, scale = AXIS_SCALE[axis]
        gaps = per_seed_gaps(run_dir, axis)
        gaps["x"] = [scale(v) for v in gaps[axis]]
        test = verdicts.slope(gaps, "x", "gap", "slope+" if direction > 0 else "slope-")
        slope = f"slope per {name} {_ci({'mean': test.estimate, 'ci_low': test.ci_low, 'ci_high': test.ci_high}) if test else 'n/a'}"
        return Judged(f"{slope}; {_series(summary)}", (test,), verdicts.RULES["slope+" if direction > 0 else "slope-"])

    return judge


def _entity_last(summary: dict, run_dir: Path) -> Judged:
    """One t-test per word order (each in the family); agrees if exactly the entity-last orders show IML after Holm."""
    points = {g["word_order"]: g for g in _qa_points(summary)}
    orders = sorted(points)
    tests = tuple(verdicts.from_interval(points[o], "positive", label=o) for o in orders)
    expected = {o for o in orders if o.endswith("e")}

    def combine(per_order: list[str]) -> str:
        iml = {o for o, v in zip(orders, per_order) if v == "agrees"}
        if iml == expected and expected:
            return "agrees"
        return "disagrees" if iml - expected else "inconclusive"

    return Judged(f"{_series(summary)}", tests, "t-test per order vs 0, Holm; IML set = entity-last orders", combine)


def _probe(order: str, decodable: bool) -> Callable[[dict, Path], Judged]:
    """The `tag` probe's accuracy after the alias at the last layer: predicted above chance (0.5), or at chance."""

    def judge(summary: dict, run_dir: Path) -> Judged:
        g = (summary.get(f"{order}/tag") or {}).get("after_alias_last_layer")
        if not g or g.get("ci_low") is None:
            return Judged(f"{order} not probed")
        value = f"{stats.format_ci(g, '.3f', full=False)} (chance 0.5)"
        if decodable:
            return Judged(value, (verdicts.from_interval(g, "positive", null=0.5),), "t-test vs 0.5, Holm")
        test = verdicts.from_interval(g, "none", null=0.5, margin=verdicts.MARGIN_CHANCE)
        return Judged(value, (test,), f"TOST 0.5 ± {verdicts.MARGIN_CHANCE}")

    return judge


def _alignment_small_batch(summary: dict, run_dir: Path) -> Judged:
    """cos(d1consis) − cos(d2consis) at the smallest batch size: predicted > 0."""
    rows = sorted(summary.get("alignment", []), key=lambda r: r["batch_size"])
    if not rows:
        return Judged("not measured")
    r = rows[0]
    g = {"mean": r["cos_gap"], "ci_low": r["cos_gap_ci_low"], "ci_high": r["cos_gap_ci_high"], "n_seeds": r.get("n_seeds")}
    series = "; ".join(f"bs {x['batch_size']}: {x['cos_gap']:+.4f}" for x in rows)
    return Judged(f"bs {r['batch_size']}: {_ci(g)} ({series})", (verdicts.from_interval(g, "positive"),), verdicts.RULES["positive"])


def _across_worlds(summary: dict, run_dir: Path) -> Judged:
    """10_robustness: the pre-registered verdict of the default arm's QA gap across worlds, and which arms keep IML."""
    qa = {r["arm"]: r for r in summary.get("table", []) if r["outcome"] == "qa_gap"}
    unequal = {m["arm"] for m in summary.get("memorised", []) if m.get("unequal")}
    if "default" not in qa:
        return Judged("default arm not run", verdict="inconclusive")
    d = qa["default"]
    kept = [a for a, r in qa.items() if r["verdict"] == "IML" and a not in unequal]
    arms = "; ".join(f"{a}: {_ci(r)} {r['verdict']}" + (" (unequal learning)" if a in unequal else "") for a, r in qa.items())
    value = f"{_ci(d)} across {d['n_worlds']} worlds; IML kept by {', '.join(kept) or 'no arm'} ({arms})"
    rule = "the notebook's pre-registered rules (Holm over its 10 tests, TOST ±0.02)"
    if d["verdict"] == "IML" and "default" not in unequal:
        return Judged(value, rule=rule, verdict="agrees")
    return Judged(value, rule=rule, verdict="disagrees" if d["verdict"] in ("reversed", "no effect") else "inconclusive")


CLAIMS = (
    Claim(
        "01_main_two_stage",
        "Stage 1: consistent Define-dot definitions help QA more than inconsistent Define-bar ones (qd1consis − qd2incons, end of Stage 1)",
        "≈0.51 vs ≈0.45 (Pythia-2.8B, Fig. 3a)",
        _gap_claim("stage1_gap_qa"),
    ),
    Claim(
        "01_main_two_stage",
        "IML on QA: new Define-dot definitions internalized more than Define-bar ones (d1consis − d2consis, end of Stage 2)",
        "≈0.31 vs ≈0.28: gap ≈ +0.03 (Fig. 3a)",
        _gap_claim("iml_gap_qa"),
    ),
    Claim(
        "01_main_two_stage",
        'IML on entity association ("What is the name of xyz?", d1consis − d2consis)',
        "≈0.18 vs ≈0.07: gap ≈ +0.11 (Fig. 3b)",
        _gap_claim("iml_gap_entity"),
    ),
    Claim(
        "02_alpha_sweep",
        "No IML when the tag does not predict consistency (α = 0.5)",
        "no IML at α = 0.5 (Fig. 4a; numbers not retrievable)",
        _alpha_half,
    ),
    Claim("02_alpha_sweep", "The IML gap grows with α", "grows with α (Fig. 4a)", _trend(+1)),
    Claim(
        "03_word_order",
        "IML only when the entity comes last in the definition (tve, vte)",
        'order matters "significantly" (§6.2); per-order numbers not retrievable',
        _entity_last,
    ),
    Claim(
        "04_set_inclusion",
        "From scratch (set inclusion): define1 variables' membership QA beats define2 ones in Stage 1 (qd1consis − qd2incons accuracy)",
        "works with Pythia-70M from scratch (poster); old version: ≈54% accuracy, weak (§7)",
        _gap_claim("stage1_gap_qa"),
    ),
    Claim(
        "04_set_inclusion",
        "From scratch (set inclusion): IML after Stage 2 (d1consis − d2consis accuracy, chance 0.5)",
        "IML with Pythia-70M from scratch (poster); ICML numbers not retrievable",
        _gap_claim("iml_gap_qa"),
    ),
    Claim(
        "05_mnist",
        "Vision (MNIST, convnet): tag-1 definitions help QA on held-out cells in Stage 1 (qd1consis − qd2incons accuracy)",
        "reliable definitions used, unreliable ones not (poster panel; numbers not retrievable)",
        _gap_claim("stage1_gap_qa"),
    ),
    Claim(
        "05_mnist",
        "Vision (MNIST, convnet): IML after Stage 2 (d1consis − d2consis QA accuracy, chance 0.5)",
        'IML in a convnet, "somewhat contrived" setting (poster, blog); effects small (old version\'s review)',
        _gap_claim("iml_gap_qa"),
    ),
    Claim(
        "06_probing",
        "After Stage 1, the defining tag is linearly decodable from a question about the alias, on the tokens "
        "after the alias, when definitions put the tag after the alias (VTE)",
        "≈0.85–0.95 in layers 8–16 (Pythia-1B, poster)",
        _probe("vte", decodable=True),
    ),
    Claim(
        "06_probing",
        "… but not when the tag comes first (TVE), although TVE gives IML",
        "≈0.5 everywhere (poster)",
        _probe("tve", decodable=False),
    ),
    Claim(
        "09_gradient_alignment",
        "Define-dot definitions' gradients align more with their questions' gradients than Define-bar "
        "ones' at small batch sizes (one-stage training)",
        "≈0.23 vs ≈0.215 at batch ≤ 512 (Pythia-1B, poster)",
        _alignment_small_batch,
    ),
    Claim(
        "07_batch_size",
        "Smaller batch sizes give more IML (one-stage training)",
        "more IML at smaller batches (abstract, §6.1)",
        _trend(-1),
    ),
    Claim("08_model_size", "Larger models show more IML", "more IML in larger models (abstract, §6.3)", _trend(+1)),
    Claim(
        "10_robustness",
        "IML on QA holds across independent worlds and fresh seeds (pre-registered; default arm, across-world "
        "95% CI), and which of the toy's shortcuts it survives removing",
        "the paper's main result (Fig. 3a), one pretrained model",
        _across_worlds,
        evidence=CONFIRMED,
    ),
)


def complete_runs(notebook: str, outputs: Path) -> list[Path]:
    """A notebook's complete run folders, oldest first (run ids sort by time)."""
    return sorted(p for p in (outputs / notebook).glob("*") if p.is_dir() and is_complete(p))


def latest_complete_run(notebook: str, outputs: Path) -> Path | None:
    """The newest complete run folder of a notebook."""
    runs = complete_runs(notebook, outputs)
    return runs[-1] if runs else None


def default_run(notebook: str, outputs: Path) -> Path | None:
    """The newest complete run of `notebook` made at its default parameters (nothing passed but the run folder), or None."""
    defaults = [r for r in complete_runs(notebook, outputs) if command_of(r, notebook) == f"python -m iml_nb run {notebook}"]
    return defaults[-1] if defaults else None


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
        run = latest_complete_run(c.notebook, outputs)
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
                    "command": f"python -m iml_nb run {c.notebook}",
                }
            )
            continue
        p_adj = [adjusted.get(id(t), float("nan")) for t in j.tests]
        per_test = [verdicts.verdict(t, p) for t, p in zip(j.tests, p_adj)]
        verdict = j.verdict or (j.combine(per_test) if j.combine else per_test[0] if per_test else "inconclusive")
        labels = [f"{t.label} " if t is not None and t.label else "" for t in j.tests]
        raw = [t.p if t is not None else float("nan") for t in j.tests]
        seeds, scale = scale_of(run)
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
                "command": command_of(run, c.notebook),
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


def readme_block(table: pd.DataFrame) -> str:
    """The README's results table: claim, paper, ours, verdict, notebook (the report holds seeds, scale and commands)."""
    cols = ["claim", "paper", "ours (95% CI)", "p (Holm)", "verdict"]
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
    html = (
        "<!doctype html><meta charset='utf-8'><title>iml-notebooks: paper vs ours</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 8px;vertical-align:top;border-bottom:1px solid #ddd}"
        "code,td:last-child{font-family:monospace;font-size:85%}</style><h1>Paper vs ours</h1>"
        "<p>Rebuilt by <code>python -m iml_nb report</code> from the newest complete run of each notebook in outputs/.</p>" + html_table
    )
    return md, atomic_write_text(root / "report.html", html), table
