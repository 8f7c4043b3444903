"""Runs the define experiment's stages across seeds and returns the tidy metrics frame (paper §2, Fig. 3)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from iml_nb.core.config import X2_SUBSETS
from iml_nb.core.env import quiet_transformers
from iml_nb.core.parallel import derived_seed, run_seeds
from iml_nb.core.results import METRIC_COLUMNS, atomic_write_folder, metric_rows, metrics_frame, to_jsonable, train_rows
from iml_nb.lm import lora
from iml_nb.lm import model as models
from iml_nb.lm.encode import encode
from iml_nb.lm.evaluate import EvalSuite
from iml_nb.lm.train import train_stage
from iml_nb.mechanisms import alignment as mechanism
from iml_nb.people_qa.config import ExperimentConfig
from iml_nb.people_qa.define import DefineData, Example, make_define_data, replay_sample, stage0_examples, with_question_views
from iml_nb.people_qa.people import Person, load_people
from iml_nb.people_qa.stage0 import run_stage0, seed_result_dir, shared_stages_dir, stage0_probe

quiet_transformers()


def replay_seed(seed: int, stage_no: int, seed_stage2) -> int:
    """Seed of the Stage-0 replay sample mixed into a define stage (shared stages: seed_stage2 is <NA>)."""
    return derived_seed(seed, stage_no, 1 if seed_stage2 is pd.NA else 2 + seed_stage2)


def last_stage_seed(seed: int, seed_stage2: int, stage_no: int) -> int:
    """Seed of the shuffling of the last (Stage-2-dependent) stage."""
    return derived_seed(seed, seed_stage2, stage_no)


ALIGNED_X1 = ("qd1consis", "qd2incons", "q")  # Stage-1 aliases: reliable definition, unreliable (wrong person), none
ALIGNED_X2 = ("d1consis", "d2consis", "d3consis", "no_qd_baseline")  # Stage-2 aliases: definitions only, or never defined


@dataclass(frozen=True)
class SeedResult:
    seed: int
    rows: list
    examples: list  # a few model answers per Stage-2 subset, for display


def depends_on_stage2(name: str) -> bool:
    """Which aliases a test set holds depends on the Stage-2 draw (X2 subsets, their entity-association sets and per-question views)."""
    return name.split(":")[0].removeprefix("ent_assoc_").removeprefix("train_defs_") in X2_SUBSETS + ("d2incons",)


def stage_training_examples(
    cfg: ExperimentConfig, facts: tuple[Example, ...], draw: DefineData, seed: int, stage_no: int, s2
) -> tuple[Example, ...]:
    """Exactly what define stage `stage_no` (1-based) trains on: the draw's examples for it, then its replayed Stage-0 facts.
    Stages before the last are shared by every Stage-2 draw (s2 <NA>, trained on draw 0's examples, which they do not depend on)."""
    frac = cfg.data.last_replay_frac if stage_no == len(cfg.stages) else cfg.data.replay_frac
    return draw.train[cfg.stages[stage_no - 1]] + replay_sample(facts, frac, replay_seed(seed, stage_no, s2))


def write_rows(rows: list[dict], path: Path) -> None:
    pd.DataFrame(rows, columns=METRIC_COLUMNS).to_csv(path, index=False)


def read_rows(path: Path) -> list[dict]:
    """Metric rows as write_rows wrote them: missing values as pd.NA, seed_stage2 an int or <NA> (the CSV reads it as float)."""
    loaded = pd.read_csv(path).astype({"seed_stage2": "Int64"}).astype({"seed_stage2": object})
    return loaded.where(loaded.notna(), pd.NA).to_dict("records")


@dataclass
class _SeedRun:
    """One Stage-1 seed in training: its model, its draws (one per Stage-2 seed) and the metric rows collected so far."""

    cfg: ExperimentConfig
    seed: int
    model: torch.nn.Module
    tokenizer: object
    facts: tuple[Example, ...]
    draws: dict[int, DefineData]
    report: Callable[[str], None]
    train: Callable
    score: Callable
    rows: list[dict] = field(default_factory=list)

    def to_rows(self, res: dict, stage: int, epoch: int) -> list[dict]:
        """Metric rows from scores keyed "<set>@<Stage-2 seed or x>"."""
        out = []
        for key, metrics in res.items():
            name, s2 = key.rsplit("@", 1)
            out += metric_rows({name: metrics}, self.seed, pd.NA if s2 == "x" else int(s2), stage, epoch)
        return out

    def phase(self, stage_no: int, draw: DefineData, suite: EvalSuite, train_seed: int, s2) -> None:
        """Train one stage, scoring `suite` after every `eval_every`-th epoch and its last (and, at a from-scratch stage's end, where
        alias rows point)."""
        cfg = self.cfg
        data = encode(stage_training_examples(cfg, self.facts, draw, self.seed, stage_no, s2), self.tokenizer, cfg.train.loss_on)
        epochs = cfg.train.epochs(stage_no)

        def on_epoch_end(epoch: int, loss: float, steps: int) -> None:
            scored = []
            if epoch == epochs or epoch % cfg.run.eval_every == 0:
                # At each stage's end a fast run also decodes greedily: F1 needs the text, and "em_generate" must equal the fast "em".
                mode = "both" if epoch == epochs and cfg.run.eval_mode == "fast" else cfg.run.eval_mode
                res = self.score(suite, self.model, self.tokenizer, mode, cfg.run.eval_batch_size, cfg.run.max_new_tokens)
                scored = self.to_rows(res, stage_no, epoch)
            self.rows.extend(scored + train_rows(loss, steps, self.seed, s2, stage_no, epoch))
            if epoch == epochs and cfg.model.from_scratch:  # where each alias's row points, at the stage's end
                subsets = ALIGNED_X1 if stage_no < len(cfg.stages) else ALIGNED_X1 + ALIGNED_X2
                aligned = mechanism.alignment(self.model, self.tokenizer, self.draws[0 if s2 is pd.NA else s2], subsets)
                self.rows.extend(metric_rows(aligned, self.seed, s2, stage_no, epoch))
            self.report(f"seed {self.seed} stage {stage_no} epoch {epoch}")

        with lora.adapters(self.model, cfg.model.lora_rank):
            self.train(self.model, data, cfg.train, epochs, train_seed, on_epoch_end)

    def shared_stages(self, stage0_dir: str, stage0_sample: dict, device) -> None:
        """The stages before the last, trained once (evaluated on X1 sets once and on X2 sets under every Stage-2 draw) or loaded.

        They are cached like Stage 0: runs differing only in the last stage (its epochs) or killed after them reuse the weights and
        the metrics rows; a reload gives bit-identical results (tests/test_model_eval.py)."""
        cfg, shared = self.cfg, self.cfg.stages[:-1]
        cached = shared_stages_dir(cfg, self.seed, stage0_dir)
        if (cached / "rows.csv").exists():
            self.model.load_state_dict(torch.load(cached / "weights.pt", map_location=device, weights_only=True))
            self.rows.extend(read_rows(cached / "rows.csv"))
            for i in range(len(shared)):
                for epoch in range(1, cfg.train.epochs(i + 1) + 1):
                    self.report(f"seed {self.seed} stage {i + 1} epoch {epoch} (cached)")
            return
        first = self.draws[0]
        suite_sets = {f"{n}@x": v for n, v in first.eval_sets.items() if not depends_on_stage2(n)}
        # d2incons is skipped before Stage 2: its aliases are unseen then, so it only repeats d2consis at 20% of the evaluation cost.
        suite_sets.update(
            {f"{n}@{s2}": v for s2, d in self.draws.items() for n, v in d.eval_sets.items() if depends_on_stage2(n) and n != "d2incons"}
        )
        suite_sets.update({f"{n}@x": v for n, v in stage0_sample.items()})
        suite = EvalSuite(suite_sets)
        for i in range(1, len(shared) + 1):
            self.phase(i, first, suite, derived_seed(self.seed, i), pd.NA)

        def write(tmp: Path) -> None:
            torch.save(self.model.state_dict(), tmp / "weights.pt")
            write_rows(self.rows, tmp / "rows.csv")

        atomic_write_folder(cached, write)

    def last_stage(self, s2: int, draw: DefineData, stage0_sample: dict) -> None:
        """The last (Stage-2-dependent) stage under one Stage-2 draw, scored on its X2 sets and on its own definitions per tag."""
        stages = self.cfg.stages
        x2_sets = {f"{n}@{s2}": v for n, v in draw.eval_sets.items() if depends_on_stage2(n)}
        x2_sets.update({f"{n}@{s2}": v for n, v in stage0_sample.items()})  # after Stage 2 this depends on the Stage-2 run
        if len(stages) == 1:  # one-stage runs learn the X1 sets in this same stage, under each Stage-2 draw
            x2_sets.update({f"{n}@{s2}": v for n, v in draw.eval_sets.items() if not depends_on_stage2(n)})
        for sub in ("d1consis", "d2consis", "d3consis"):  # are the new definitions themselves learned, and how fast per tag?
            x2_sets[f"train_defs_{sub}@{s2}"] = tuple(ex for ex in draw.train[stages[-1]] if ex.subset == sub and ex.kind == "definition")
        self.phase(len(stages), draw, EvalSuite(x2_sets), last_stage_seed(self.seed, s2, len(stages)), s2)


def epochs_per_seed(cfg: ExperimentConfig) -> int:
    """Epochs one Stage-1 seed trains: the shared stages once, the last once per Stage-2 seed (one progress tick each)."""
    n = len(cfg.stages)
    return sum(cfg.train.epochs(i) for i in range(1, n)) + cfg.run.n_seeds_stage2 * cfg.train.epochs(n)


def run_seed(
    cfg: ExperimentConfig,
    seed: int,
    stage0_dir: str,
    report: Callable[[str], None] = lambda msg: None,
    train=train_stage,
    score=EvalSuite.run,
) -> SeedResult:
    """All define stages for one Stage-1 seed, or its cached result when the same code already finished this seed (a stopped run
    resumes between seeds). A swapped-in `train` or `score` (the benchmark's) always computes and caches nothing."""
    if train is not train_stage or score is not EvalSuite.run:
        return _compute_seed(cfg, seed, stage0_dir, report, train, score)
    cached = seed_result_dir(cfg, seed, stage0_dir)
    if (cached / "rows.csv").exists():
        for _ in range(epochs_per_seed(cfg)):
            report(f"seed {seed} (cached)")
        return SeedResult(seed, read_rows(cached / "rows.csv"), json.loads((cached / "examples.json").read_text()))
    result = _compute_seed(cfg, seed, stage0_dir, report, train, score)

    def write(tmp: Path) -> None:
        write_rows(result.rows, tmp / "rows.csv")
        (tmp / "examples.json").write_text(json.dumps(to_jsonable(result.examples)))

    atomic_write_folder(cached, write)
    return result


def _compute_seed(cfg: ExperimentConfig, seed: int, stage0_dir: str, report, train, score) -> SeedResult:
    """All define stages for one Stage-1 seed; stages before the last are trained once and reused by every Stage-2 seed."""
    people = load_people(cfg)
    facts = stage0_examples(people)
    draws: dict[int, DefineData] = {s2: make_define_data(people, cfg.data, seed, s2) for s2 in range(cfg.run.n_seeds_stage2)}
    if cfg.run.score_by_question:
        draws = {s2: with_question_views(d) for s2, d in draws.items()}
    model, tokenizer = models.load_saved(stage0_dir)
    device = models.resolve_device(cfg.run.device)
    model.to(device)
    missing = [a for d in draws.values() for a in d.atoms() if tokenizer.convert_tokens_to_ids(a) == tokenizer.unk_token_id]
    if cfg.model.from_scratch and missing:
        raise RuntimeError(f"seed {seed}: {len(missing)} aliases/tags are not in the Stage-0 vocabulary (stale cache?)")
    stage0_sample = {"stage0_facts": stage0_probe(facts, cfg)}
    run = _SeedRun(cfg, seed, model, tokenizer, facts, draws, report, train, score)
    if len(cfg.stages) > 1:  # every plan ends with its one Stage-2-dependent stage ("stage2", or "full" in one-stage runs)
        run.shared_stages(stage0_dir, stage0_sample, device)
    after_shared = {k: v.clone() for k, v in model.state_dict().items()}
    examples = []
    for s2, draw in draws.items():
        model.load_state_dict(after_shared)
        run.last_stage(s2, draw, stage0_sample)
        if s2 == 0:
            shown = EvalSuite({n: draw.eval_sets[n] for n in ("d1consis", "d2consis") if n in draw.eval_sets})
            for n in shown.sets:
                examples += [dict(seed=seed, subset=n, **p) for p in shown.predictions(model, tokenizer, n, limit=6)]
    return SeedResult(seed, run.rows, examples)


def run_experiment(
    cfg: ExperimentConfig, progress: bool = True, train=train_stage, score=EvalSuite.run
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stage 0 once, then every seed (in `n_jobs` processes). Returns (metrics, example predictions).

    `train` (train.train_stage's contract) and `score` (EvalSuite.run's) are the training loop and the evaluation; the benchmark
    swaps in the usual Trainer + generation pipeline through them. Both must be picklable when n_jobs > 1."""
    people = load_people(cfg)
    stage0_dir, stage0_rows = run_stage0(cfg, people, progress, train, score)
    results = run_seeds(
        functools.partial(run_seed, cfg, stage0_dir=str(stage0_dir), train=train, score=score),
        cfg.run,
        epochs_per_seed(cfg),
        f"Stages 1-{len(cfg.stages)}",
        progress,
    )
    frame = pd.concat([stage0_rows, metrics_frame([r for res in results for r in res.rows])], ignore_index=True)
    for col in ("seed", "seed_stage2"):  # stage0_rows come from a CSV, where an all-missing column reads as float
        frame[col] = frame[col].astype("Int64")
    examples = pd.DataFrame([e for res in results for e in res.examples])
    return frame, examples


def preview(cfg: ExperimentConfig, people: tuple[Person, ...], n: int = 2) -> pd.DataFrame:
    """A few training texts of every (stage, subset, kind) for the first seed: what the model actually reads."""
    draw = make_define_data(people, cfg.data, cfg.run.seed, 0)
    rows = [dict(stage="stage0", subset="stage0", kind="qa", prompt=ex.prompt, answer=ex.answer) for ex in stage0_examples(people)[:n]]
    for stage, examples in draw.train.items():
        seen: dict[tuple[str, str], int] = {}
        for ex in examples:
            k = (ex.subset, ex.kind)
            if seen.get(k, 0) < n:
                seen[k] = seen.get(k, 0) + 1
                rows.append(dict(stage=stage, subset=ex.subset, kind=ex.kind, prompt=ex.prompt, answer=ex.answer))
    return pd.DataFrame(rows).sort_values(["stage", "subset", "kind"], kind="stable").reset_index(drop=True)


def fast_vs_generate(metrics: pd.DataFrame) -> pd.DataFrame:
    """Where both were measured (each stage's last epoch), teacher-forced EM next to greedy-generation EM
    (checks.fast_matches_generation also reads where they disagree)."""
    keys = ["seed", "seed_stage2", "stage", "epoch", "subset"]
    fast = metrics.loc[metrics["metric"] == "em", keys + ["value"]].rename(columns={"value": "em"})
    gen = metrics.loc[metrics["metric"] == "em_generate", keys + ["value"]].rename(columns={"value": "em_generate"})
    both = fast.merge(gen, on=keys)  # pandas matches <NA> keys with <NA>
    return both.assign(difference=both["em"] - both["em_generate"])
