"""The paper's claims the package tests: for each, the notebook whose run answers it, the paper's value, and the rule that reads
our value and verdict off that run's summary (and, for trends, its per-seed metrics). `report` lays them out as a table."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from iml_nb.analysis import stats, verdicts
from iml_nb.core.env import project_path
from iml_nb.core.results import read_metrics
from iml_nb.runs.runner import read_parameters_file
from iml_nb.runs.sweeps import MEMORISED, gap_table


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
    select: Callable[[Path], bool] | None = None  # which of the notebook's complete runs can answer it (default: any)
    section: str = ""  # 12_generality: the section of the run that holds the evidence
    registration: str = ""  # pre-registered: its parameters file (params/…); only a confirm-* run made with exactly those answers
    params_file: str = ""  # explored with a parameters file (params/…): the command for a row not run yet
    arms: tuple[dict, ...] = ()  # further runs the row reads: the parameters file with each of these values changed

    def __post_init__(self):
        if self.registration:
            object.__setattr__(self, "evidence", CONFIRMED)

    def answers(self, run: Path) -> bool:
        """Whether a complete run folder of the notebook can answer this claim."""
        return (not self.registration or registered(self.registration)(run)) and (self.select is None or self.select(run))

    def command(self, run_id: str = "") -> str:
        """How to make the run that answers it (pre-registered: into `run_id`, the folder that did, or a first confirm-* one)."""
        if not self.registration:
            return f"python -m iml_nb run {self.notebook}" + (f" -f {self.params_file}" if self.params_file else "")
        what = Path(self.registration).stem.split("_confirm", 1)[1].replace("_", "-")  # <notebook>_confirm_<what>.yaml
        return f"python -m iml_nb run {self.notebook} -f {self.registration} --run-id {run_id or f'{CONFIRM_PREFIX}{what}-1'}"


def has_section(name: str) -> Callable[[Path], bool]:
    """A 12_generality run that ran section `name`."""
    return lambda run: name in json.loads((run / "summary.json").read_text()).get("sections", {})


def _setting(run: Path, section: str, name: str, default):
    """One setting from a run's config.json (`default` for runs made before the setting existed)."""
    return json.loads((run / "config.json").read_text()).get(section, {}).get(name, default)


def steps_matched(matched: bool) -> Callable[[Path], bool]:
    """A batch-size sweep run at matched optimizer steps (steps_batch_size set), or at matched epochs."""
    return lambda run: bool(_setting(run, "fixed", "steps_batch_size", 0)) == matched


def loss_on(value: str) -> Callable[[Path], bool]:
    """A sweep run whose points all trained with the loss on `value` ("answer", the default, or "all")."""
    return lambda run: _setting(run, "fixed", "loss_on", "answer") == value


def tags_are(style: str) -> Callable[[Path], bool]:
    """A run whose definitions' tags were `style` (random strings, or a natural-language pair)."""
    return lambda run: _setting(run, "data", "tags", "random") == style


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
    return "; ".join(
        f"{g[axis]}: {_ci(g)}" + (f" (epoch {g['epoch']})" if "epoch" in g else "") + _memorised(g) for g in _qa_points(summary)
    )


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


AXIS_SCALE = {
    "alpha": ("α", float),
    "batch_size": ("log2 batch size", math.log2),
    "model": ("log2 non-embedding parameters", _log2_size),
    "n_people": ("log2 people", math.log2),
}


def per_seed_gaps(run_dir: Path, axis: str, section: str = "", at: dict | None = None) -> pd.DataFrame:
    """A sweep's per-seed QA gap (d1consis − d2consis, end of the last stage) at every grid value: columns seed, <axis>, gap.
    `section`: only that section's rows of a 12_generality run (the other sections leave its axis column empty). `at`: grid value
    -> {stage, epoch} to read instead of the end (values not in it are left out)."""

    metrics = read_metrics(run_dir / "metrics.csv")
    if section:
        metrics = metrics[metrics["section"] == section].copy()
        try:  # read back from CSV as text, since the other sections' rows were empty
            metrics[axis] = pd.to_numeric(metrics[axis])
        except ValueError:
            pass  # a categorical axis stays text
    frames = []
    for value, frame in metrics.groupby(axis, sort=True):
        if at is not None and value not in at:
            continue
        diffs = stats.paired_differences(frame.drop(columns=[axis]), "d1consis", "d2consis", **(at or {}).get(value, {}))
        frames.append(pd.DataFrame({"seed": diffs["seed"].astype(int), axis: value, "gap": diffs["diff"]}))
    return pd.concat(frames, ignore_index=True)


def stage0_known(run_dir: Path, axis: str) -> dict:
    """Grid value -> EM on the people's facts at the end of its Stage 0 (from metrics.csv; values with no Stage 0 left out)."""
    metrics = read_metrics(run_dir / "metrics.csv")
    facts = metrics[(metrics["stage"] == 0) & (metrics["subset"] == "stage0_facts") & (metrics["metric"] == "em")]
    return {v: float(f.loc[f["epoch"] == f["epoch"].max(), "value"].mean()) for v, f in facts.groupby(axis, sort=True)}


def _trend(
    direction: int, section: str = "", memorised: bool = False, gate: float | None = None, knowledge: float | None = None
) -> Callable[[dict, Path], Judged]:
    """The per-seed QA gap's slope along the sweep's axis (grows: direction +1, shrinks: -1), seeds as clusters; `section`: that
    section of a 12_generality run (its axis is a column of that section's rows only); `memorised`: each grid value read where
    its definitions were first memorised (sweeps.gap_table's at="memorised", recomputed from metrics.csv) instead of at the end;
    `gate`: the slope is read only if both tags' definitions are memorised to `gate` at every grid value (else inconclusive);
    `knowledge`: and only if every grid value's Stage 0 ended knowing at least that share of its people's facts (EM)."""

    def judge(summary: dict, run_dir: Path) -> Judged:
        summary = summary["sections"][section] if section else summary
        axis = summary["axis"]
        name, scale = AXIS_SCALE[axis]
        at = None
        if memorised:  # from the stored metrics, so runs made before this read-out existed have it too
            table = gap_table(read_metrics(run_dir / "metrics.csv"), axis, at="memorised")
            rows = table[table["gap"] == "qa"].to_dict("records") if len(table) else []
            at = {g[axis]: {"stage": int(g["stage"]), "epoch": int(g["epoch"])} for g in rows}
            summary = {**summary, "gaps": rows}
            if not at:
                return Judged(f"no {name} memorised its definitions to {MEMORISED}", verdict="inconclusive")
        gaps = per_seed_gaps(run_dir, axis, section, at)
        gaps["x"] = [scale(v) for v in gaps[axis]]
        test = verdicts.slope(gaps, "x", "gap", "slope+" if direction > 0 else "slope-")
        slope = f"slope per {name} {_ci({'mean': test.estimate, 'ci_low': test.ci_low, 'ci_high': test.ci_high}) if test else 'n/a'}"
        never = [v for v in summary.get("values", []) if at is not None and v not in at]
        rule = verdicts.RULES["slope+" if direction > 0 else "slope-"]
        if gate is None:
            series = _series(summary) + "".join(f"; {v}: never memorised to {MEMORISED}" for v in never)
            return Judged(f"{slope}; {series}", (test,), rule)
        unequal = never + [g[axis] for g in _qa_points(summary) if not _both_memorised(g, gate)]
        series = "; ".join(f"{g[axis]}: {_ci(g)}{_memorised(g)}" for g in _qa_points(summary))
        value = f"{slope}; {series}" + (f" (unequal learning at {', '.join(map(str, unequal))})" if unequal else "")
        if knowledge is None:
            return _gated(Judged(value, (test,), rule), gate, not unequal)
        known = stage0_known(run_dir, axis)
        unknown = [v for v in summary.get("values", []) if known.get(v, 0.0) < knowledge]
        value += "; Stage-0 facts known: " + ", ".join(f"{v} {known[v]:.2f}" for v in summary.get("values", []) if v in known)
        value += f" (below {knowledge} at {', '.join(map(str, unknown))})" if unknown else ""
        judged = _gated(Judged(value, (test,), f"{rule}; read only if every Stage 0 knows ≥ {knowledge} of its facts"), gate, not unequal)
        return judged if not unknown else replace(judged, combine=lambda per_test: "inconclusive")

    return judge


def _entity_last(gate: float | None = None) -> Callable[[dict, Path], Judged]:
    """One t-test per word order (each in the family); agrees if exactly the entity-last orders show IML after Holm. `gate`: an
    order shows IML only where both tags' Stage-2 definitions are memorised to `gate` (else it is unequal learning, inconclusive)."""

    def judge(summary: dict, run_dir: Path) -> Judged:
        points = {g["word_order"]: g for g in _qa_points(summary)}
        orders = sorted(points)
        tests = tuple(verdicts.from_interval(points[o], "positive", label=o) for o in orders)
        expected = {o for o in orders if o.endswith("e")}
        learned = {o for o in orders if gate is None or _both_memorised(points[o], gate)}

        def combine(per_order: list[str]) -> str:
            iml = {o for o, v in zip(orders, per_order) if v == "agrees" and o in learned}
            if iml == expected and expected:
                return "agrees"
            return "disagrees" if iml - expected else "inconclusive"

        if gate is None:
            return Judged(_series(summary), tests, "t-test per order vs 0, Holm; IML set = entity-last orders", combine)
        value = "; ".join(f"{o}: {_ci(points[o])}{_memorised(points[o])}" + ("" if o in learned else " (unequal learning)") for o in orders)
        rule = f"t-test per order vs 0, Holm; IML set = entity-last orders; an order is read only if both tags are memorised ≥ {gate}"
        return Judged(value, tests, rule, combine)

    return judge


def _gated(judged: Judged, gate: float | None, learned: bool) -> Judged:
    """A pre-registered reading: the verdict stands only where both tags' definitions were memorised to `gate`; otherwise the
    tests stay in the family and the claim is inconclusive (unequal learning)."""
    if gate is None:
        return judged
    rule = f"{judged.rule}; read only if both tags are memorised ≥ {gate}"
    return replace(judged, rule=rule, combine=judged.combine if learned else lambda per_test: "inconclusive")


def _both_memorised(g: dict, level: float) -> bool:
    a, b = g.get("memorised_reliable"), g.get("memorised_unreliable")
    return a is not None and b is not None and min(a, b) >= level  # NaN (never scored) compares False: not read


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


CONFIRM_PREFIX = "confirm"  # a pre-registered run's folder name starts with it (params/*_confirm*.yaml)
CONFIRM_MARGIN = 0.03  # the TOST margin its pre-registration fixed: the paper's main QA gap
CONFIRM_MEMORISED = 0.95  # and the memorisation both tags' Stage-2 definitions must reach for the gap to be read


def confirmed(run: Path) -> bool:
    """A pre-registered run (its folder name starts with CONFIRM_PREFIX)."""
    return run.name.startswith(CONFIRM_PREFIX)


def explored(run: Path) -> bool:
    """Any other run: evidence explored on the seeds it is reported on."""
    return not confirmed(run)


def all_of(*selectors: Callable[[Path], bool]) -> Callable[[Path], bool]:
    """A run every one of `selectors` accepts."""
    return lambda run: all(select(run) for select in selectors)


def registered(file: str) -> Callable[[Path], bool]:
    """The pre-registered run made with exactly the parameters of `file` (params/…): tells apart two pre-registrations of one
    notebook, whose folders both start with CONFIRM_PREFIX."""

    def select(run: Path) -> bool:
        from iml_nb.analysis.report import recorded_parameters  # report imports this module

        wanted = read_parameters_file(project_path(file))
        return confirmed(run) and recorded_parameters(run, run.parent.name) == wanted

    return select


PRETRAINED_GAPS = {"iml_gap_qa": "QA", "iml_gap_entity": "entity"}


def _pretrained_confirmed(tested: tuple[str, ...]) -> Callable[[dict, Path], Judged]:
    """The rules of 11_pretrained's pre-registered runs: a t-test of each gap in `tested` (the first is the primary outcome), Holm
    over them in a family of their own; the primary agrees if positive after Holm, disagrees if negative after Holm or if its TOST
    at ±CONFIRM_MARGIN rejects; read only if both tags' Stage-2 definitions are memorised to CONFIRM_MEMORISED (else unequal
    learning: inconclusive). The other gaps are shown beside it."""
    primary = tested[0]

    def judge(summary: dict, run_dir: Path) -> Judged:
        gaps = {k: summary.get(k) for k in PRETRAINED_GAPS}
        tests = [verdicts.from_interval(gaps[k], "positive") for k in tested]
        if tests[0] is None:
            return Judged(_ci(gaps[primary]), verdict="inconclusive")
        adjusted = verdicts.holm([t.p if t else math.nan for t in tests])
        equivalence = verdicts.from_interval(gaps[primary], "none", margin=CONFIRM_MARGIN)
        memorised = _final_memorised(summary)
        learned = all(m is not None and m >= CONFIRM_MEMORISED for m in memorised)
        label = "" if primary == "iml_gap_qa" else f"{PRETRAINED_GAPS[primary]} "
        p = "Holm p" if len(tested) > 1 else "p"
        others = "".join(f"; {name} {_ci(gaps[k])}" for k, name in PRETRAINED_GAPS.items() if k != primary)
        value = f"{label}{_ci(gaps[primary])} ({p} {adjusted[0]:.2g}; TOST ±{CONFIRM_MARGIN}: p {equivalence.p_equivalence:.2g}){others}"
        if None not in memorised:
            value += f"; definitions memorised {memorised[0]:.2f} / {memorised[1]:.2f}"
        over = " and ".join(f"{PRETRAINED_GAPS[k]} gap" for k in tested)
        rule = (
            f"pre-registered: {'Holm over' if len(tested) > 1 else 't-test of'} {over} (a family of its own), TOST ±{CONFIRM_MARGIN}, "
            f"both tags memorised ≥ {CONFIRM_MEMORISED}"
        )
        if not learned:
            return Judged(value + " (unequal learning)", rule=rule, verdict="inconclusive")
        verdict = verdicts.verdict(tests[0], adjusted[0])
        if verdict == "inconclusive" and equivalence.p_equivalence < verdicts.ALPHA:
            verdict = "disagrees"  # no effect of the paper's size: the claim of IML fails
        return Judged(value, rule=rule, verdict=verdict)

    return judge


pretrained_confirmed = _pretrained_confirmed(("iml_gap_qa", "iml_gap_entity"))  # params/11_pretrained_confirm.yaml
pretrained_entity_confirmed = _pretrained_confirmed(("iml_gap_entity",))  # params/11_pretrained_confirm_entity.yaml


def _point(summary: dict, axis: str, value, gap: str = "qa") -> dict | None:
    """One row of a sweep's gap table: `gap` at `axis` = `value`."""
    rows = [g for g in summary.get("gaps", []) if g["gap"] == gap and g.get(axis) == value]
    return rows[0] if rows else None


def _final_memorised(summary: dict) -> list[float | None]:
    """Both tags' Stage-2 training definitions memorised at the end of a run (summary.json's final_em; None where not scored)."""
    final = summary.get("final_em", {})
    return [final.get(f"train_defs_{s}", {}).get("mean") for s in ("d1consis", "d2consis")]


def _memorised(g: dict) -> str:
    """How well the gap's two sides' definitions were memorised, beside it (none where they were given in context)."""
    a, b = g.get("memorised_reliable"), g.get("memorised_unreliable")
    return "" if a is None or b is None or a != a or b != b else f" (definitions memorised {a:.2f} / {b:.2f})"


def _all_agree(per_test: list[str]) -> str:
    return "agrees" if per_test and all(v == "agrees" for v in per_test) else "disagrees" if "disagrees" in per_test else "inconclusive"


def _gap_at(axis: str, value, section: str = "", gate: float | None = None) -> Callable[[dict, Path], Judged]:
    """The QA IML gap at one grid value of a sweep (or of a 12_generality section), predicted > 0, with memorisation beside it;
    `gate`: read only where both tags' definitions are memorised to it."""

    def judge(summary: dict, run_dir: Path) -> Judged:
        g = _point(summary["sections"][section] if section else summary, axis, value)
        if g is None:
            return Judged(f"{axis} = {value} not run", verdict="not run")
        learned = gate is None or _both_memorised(g, gate)
        judged = Judged(
            f"{_ci(g)}{_memorised(g)}" + ("" if learned else " (unequal learning)"),
            (verdicts.from_interval(g, "positive"),),
            verdicts.RULES["positive"],
        )
        return _gated(judged, gate, learned)

    return judge


def _unseen_tag(gate: float | None = None) -> Callable[[dict, Path], Judged]:
    """D8 above D6 (positive) and level with D5 (TOST); agrees only if both do. `gate`: read only where D8's, D6's and D5's
    definitions are all memorised to it."""

    def judge(summary: dict, run_dir: Path) -> Judged:
        part = summary["sections"]["unseen_tag"]
        above, level = (next((g for g in part["gaps"] if g["gap"] == name), None) for name in ("unseen − unreliable", "unseen − reliable"))
        if above is None or level is None:
            return Judged("d3consis not scored", verdict="not run")
        tests = (verdicts.from_interval(above, "positive", label="D8−D6"), verdicts.from_interval(level, "none", label="D8−D5"))
        d8, d6, d5 = above["memorised_reliable"], above["memorised_unreliable"], level["memorised_unreliable"]
        learned = gate is None or (_both_memorised(above, gate) and _both_memorised(level, gate))
        value = f"D8 − D6: {_ci(above)}; D8 − D5: {_ci(level)}; definitions memorised D8 {d8:.2f}, D6 {d6:.2f}, D5 {d5:.2f}"
        value += "" if learned else " (unequal learning)"
        rule = f"D8 − D6: t-test vs 0, Holm; D8 − D5: TOST ±{verdicts.MARGIN_GAP}; agrees if both do"
        return _gated(Judged(value, tests, rule, _all_agree), gate, learned)

    return judge


def _in_context(summary: dict, run_dir: Path) -> Judged:
    """With definitions in context, d1consis − d2consis predicted > 0; the trained (one-stage) gap and D5 vs real-name QA beside."""
    part = summary["sections"]["in_context"]
    g = _point(part, "definitions", "in_context")
    if g is None:
        return Judged("definitions in context not run", verdict="not run")
    trained = _point(part, "definitions", "trained")
    real = _point(part, "definitions", "in_context", "reliable − real name")
    value = (
        f"in context: {_ci(g)}; D5 − real-name QA in context: {_ci(real)}; trained (one stage): {_ci(trained)}{_memorised(trained or {})}"
    )
    return Judged(value, (verdicts.from_interval(g, "positive"),), verdicts.RULES["positive"])


def swapped_arm(run: Path) -> Path | None:
    """The newest complete run of the same notebook made exactly like `run` but with its natural-language tags swapped between
    Define-dot and Define-bar (`<style>_swapped`), or None. How many seeds either ran does not matter: they pair on those they share."""
    from iml_nb.analysis.report import latest_complete_run  # report imports this module

    def config(r: Path) -> dict:
        c = json.loads((r / "config.json").read_text())
        c.get("data", {}).pop("tags", None)
        for execution in ("output_dir", "n_seeds", "n_jobs"):
            c.get("run", {}).pop(execution, None)
        return c

    style, same = _setting(run, "data", "tags", "random"), config(run)
    return latest_complete_run(run.parent.name, run.parent.parent, lambda r: tags_are(f"{style}_swapped")(r) and config(r) == same)


ORIENTATION_GAPS = {"QA": ("d1consis", "d2consis"), "entity": ("ent_assoc_d1consis", "ent_assoc_d2consis")}


def orientation_table(run: Path, swapped: Path) -> pd.DataFrame:
    """stats.orientations of a natural-language run and its swapped arm, on QA and, where both ran it, the entity question."""
    metrics = [read_metrics(r / "metrics.csv") for r in (run, swapped)]
    present = set(metrics[0]["subset"]) & set(metrics[1]["subset"])
    return stats.orientations(*metrics, {n: ab for n, ab in ORIENTATION_GAPS.items() if set(ab) <= present})


def _orientations(style: str) -> Callable[[dict, Path], Judged]:
    """Natural-language tags read in both orientations: the `style` run (Define-dot carries the words a reader trusts) and its
    swapped arm (Define-dot carries the distrusted words), paired by Stage-1 seed through stats.orientations. The claim is the IML
    half-sum of the QA gaps, predicted > 0; the words' prior and both arms' memorisation stand beside it. With one arm the gap
    mixes the two, so the row shows it and stays inconclusive."""

    def memorised(summary: dict) -> str:
        reliable, unreliable = _final_memorised(summary)
        return _memorised({"memorised_reliable": reliable, "memorised_unreliable": unreliable})

    def judge(summary: dict, run_dir: Path) -> Judged:
        swapped = swapped_arm(run_dir)
        one_arm = f"{_ci(summary.get('iml_gap_qa'))}{memorised(summary)}"
        if swapped is None:
            return Judged(
                f"words as named only: {one_arm}; swapped arm (-p tags {style}_swapped) not run, so IML and the words' prior are not "
                "separated",
                verdict="inconclusive",
            )
        try:
            qa = orientation_table(run_dir, swapped).query("gap == 'QA'").set_index("reading")
        except ValueError as unpaired:  # too few shared seeds: say so in the row rather than fail the report
            return Judged(str(unpaired), verdict="inconclusive")
        iml, prior = (qa.loc[r].to_dict() for r in stats.ORIENTATIONS[2:])
        swapped_summary = json.loads((swapped / "summary.json").read_text())
        value = (
            f"IML (half sum): {_ci(iml)}; words' prior (half difference): {_ci(prior)}; paired over the {iml['n_seeds']} Stage-1 "
            f"seeds both arms ran; as named: {one_arm}; swapped: "
            f"{_ci(swapped_summary.get('iml_gap_qa'))}{memorised(swapped_summary)} ({swapped.relative_to(swapped.parents[2])})"
        )
        rule = f"{verdicts.RULES['positive']} on the per-seed half sum of the two orientations' gaps"
        return Judged(value, (verdicts.from_interval(iml, "positive"),), rule)

    return judge


def _section_claim(section: str, claim: str, paper: str, judge: Callable[[dict, Path], Judged]) -> Claim:
    """A claim answered by one section of the pre-registered 12_generality run (params/12_generality_confirm.yaml)."""
    return Claim(
        "12_generality",
        f"{claim}; pre-registered on a fresh world and fresh seeds (params/12_generality_confirm.yaml)",
        paper,
        judge,
        registration="params/12_generality_confirm.yaml",
        select=has_section(section),
        section=section,
    )


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
        "02_alpha_sweep",
        "At α = 0.95 the tag still wins over a minority of conflicting definitions (QA gap at α = 0.95)",
        "the α grid 0.5-0.95 was run (configs); IML increases with α (Fig. 4a; numbers not retrievable)",
        _gap_at("alpha", 0.95),
    ),
    Claim(
        "03_word_order",
        "IML only when the entity comes last in the definition (tve, vte)",
        'order matters "significantly" (§6.2); per-order numbers not retrievable',
        _entity_last(),
        select=all_of(loss_on("answer"), explored),
    ),
    Claim(
        "03_word_order",
        "… with the loss on every token of a definition (the reference's), pre-registered on a fresh world and fresh seeds "
        "(params/03_word_order_confirm.yaml)",
        'order matters "significantly" (§6.2); per-order numbers not retrievable',
        _entity_last(gate=CONFIRM_MEMORISED),
        registration="params/03_word_order_confirm.yaml",
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
        "Smaller batch sizes give more IML (one-stage training, the same epochs at every batch size)",
        "more IML at smaller batches (abstract, §6.1)",
        _trend(-1),
        select=all_of(steps_matched(False), explored),
    ),
    Claim(
        "07_batch_size",
        f"… read where each batch size's definitions are first memorised to {MEMORISED} (both tags; converged equally)",
        "the paper grows epochs with batch size to keep training converged (§6.1)",
        _trend(-1, memorised=True),
        select=all_of(steps_matched(False), explored),
    ),
    Claim(
        "07_batch_size",
        f"… pre-registered on a fresh world and fresh seeds (params/07_batch_size_confirm.yaml): 30 epochs at every batch size, "
        f"each read where its definitions are first memorised to {MEMORISED}",
        "more IML at smaller batches (abstract, §6.1); the paper keeps every batch size converged",
        _trend(-1, memorised=True, gate=CONFIRM_MEMORISED),
        registration="params/07_batch_size_confirm.yaml",
    ),
    Claim(
        "07_batch_size",
        "… at matched optimizer steps (epochs × batch size / the smallest batch size)",
        "more IML at smaller batches (abstract, §6.1)",
        _trend(-1),
        select=steps_matched(True),
        params_file="params/07_batch_size_matched_steps.yaml",
    ),
    Claim("08_model_size", "Larger models show more IML", "more IML in larger models (abstract, §6.3)", _trend(+1), select=explored),
    Claim(
        "08_model_size",
        f"… read where each size's Stage-2 definitions are first memorised to {MEMORISED} (both tags; learned equally)",
        "more IML in larger models (abstract, §6.3)",
        _trend(+1, memorised=True),
        select=explored,
    ),
    Claim(
        "08_model_size",
        f"… pre-registered on a fresh world and fresh seeds (params/08_model_size_confirm.yaml): every size's Stage 0 trained until "
        f"it knows {CONFIRM_MEMORISED} of its facts, each size read where its definitions are first memorised to {MEMORISED}",
        "more IML in larger models (abstract, §6.3)",
        _trend(+1, memorised=True, gate=CONFIRM_MEMORISED, knowledge=CONFIRM_MEMORISED),
        registration="params/08_model_size_confirm.yaml",
    ),
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
        select=all_of(tags_are("random"), explored),
    ),
    Claim(
        "11_pretrained",
        "The same, pre-registered on a fresh world and fresh seeds (params/11_pretrained_confirm.yaml): Stage 1 at the paper's 20 "
        "epochs, 100 Stage-2 aliases per tag",
        "≈ +0.03 (Pythia-2.8B, Fig. 3a)",
        pretrained_confirmed,
        registration="params/11_pretrained_confirm.yaml",
    ),
    Claim(
        "11_pretrained",
        "IML on entity association in SmolLM2 (`What is the name of <alias>?`, d1consis − d2consis, end of Stage 2), "
        "pre-registered on a second fresh world and fresh seeds after the first run found it (params/11_pretrained_confirm_entity.yaml)",
        "≈0.18 vs ≈0.07: gap ≈ +0.11 (Pythia-2.8B, Fig. 3b)",
        pretrained_entity_confirmed,
        registration="params/11_pretrained_confirm_entity.yaml",
    ),
    Claim(
        "11_pretrained",
        'Natural-language tags ("according to Wikipedia is" vs "according to 4chan is") in place of random ones: Define-dot '
        "definitions internalized more whichever words they carry (d1consis − d2consis, end of Stage 2, read over two arms: the "
        "words as named and swapped, -p tags sources_swapped)",
        "run with fixed natural-language tags (configs); how the paper reports it: not retrievable",
        _orientations("sources"),
        select=tags_are("sources"),
        params_file="params/11_pretrained_sources.yaml",
        arms=({"tags": "sources_swapped"},),
    ),
    Claim(
        "11_pretrained",
        '"Is / isn\'t" tags ("stands for" vs "is definitely not") in place of random ones: Define-dot definitions internalized more '
        "whichever words they carry (d1consis − d2consis, end of Stage 2, read over two arms: the words as named and swapped, "
        "-p tags is_isnt_swapped)",
        "run with fixed natural-language tags (configs); how the paper reports it: not retrievable",
        _orientations("is_isnt"),
        select=tags_are("is_isnt"),
        params_file="params/11_pretrained_is_isnt.yaml",
        arms=({"tags": "is_isnt_swapped"},),
    ),
    _section_claim(
        "unseen_tag",
        "A third tag never seen in Stage 1 (D8, d3consis) is internalized like the reliable tag: above D6, level with D5",
        "D8 ≈0.30, D5 ≈0.31, D6 ≈0.28 (Fig. 3a); entity ≈0.22",
        _unseen_tag(gate=CONFIRM_MEMORISED),
    ),
    _section_claim(
        "stage_plan",
        "Single-stage training (all data at once) shows IML (d1consis − d2consis)",
        'also shows the effect; "more significant" in an earlier version (§4)',
        _gap_at("stage_plan", "one_stage", "stage_plan", gate=CONFIRM_MEMORISED),
    ),
    _section_claim(
        "stage_plan",
        "Three-stage training (definitions, then QA, then new definitions) shows IML (d1consis − d2consis)",
        "run for Pythia-2.8B and 410M (configs); results not retrievable",
        _gap_at("stage_plan", "three_stage", "stage_plan", gate=CONFIRM_MEMORISED),
    ),
    _section_claim(
        "in_context",
        "Definitions given in context instead of trained: Define-dot ones are used more than Define-bar ones (d1consis − d2consis, "
        "one stage)",
        "in context, Define-dot QA nearly matches QA about real names (old Fig. 3)",
        _in_context,
    ),
    _section_claim(
        "data_amount",
        "The IML gap grows with the amount of data (250 to 2,000 people)",
        "run with 250-2k entities, Pythia-1B (configs); results not retrievable",
        _trend(+1, "data_amount", gate=CONFIRM_MEMORISED),
    ),
)
