"""The paper's claims the package tests: for each, the notebook whose run answers it, the paper's value, and the rule that reads
our value and verdict off that run's summary (and, for trends, its per-seed metrics). `report` lays them out as a table."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from iml_nb.analysis import stats, verdicts
from iml_nb.core.results import read_metrics


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


def across_worlds(summary: dict, run_dir: Path) -> Judged:
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
        across_worlds,
        evidence=CONFIRMED,
    ),
    Claim(
        "11_pretrained",
        "IML on QA in a real pretrained model (SmolLM2-135M-Instruct) on real people (WordNet), no Stage 0, "
        "the paper's random multi-token aliases (d1consis − d2consis, end of Stage 2)",
        "≈ +0.03 (Pythia-2.8B, Fig. 3a)",
        _gap_claim("iml_gap_qa"),
    ),
)
