"""Runs the define experiment's stages across seeds and returns the tidy metrics frame (paper §2, Fig. 3)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from iml_nb.core.config import X2_SUBSETS
from iml_nb.core.env import log_progress, project_path, quiet_transformers
from iml_nb.core.parallel import derived_seed, run_seeds
from iml_nb.core.results import METRIC_COLUMNS, atomic_write_folder, metric_rows, metrics_frame, train_rows
from iml_nb.lm import model as models
from iml_nb.lm.encode import encode
from iml_nb.lm.evaluate import EvalSuite
from iml_nb.lm.train import train_stage
from iml_nb.lm.vocab import build_word_tokenizer
from iml_nb.mechanisms import alignment as mechanism
from iml_nb.people_qa.config import ExperimentConfig
from iml_nb.people_qa.define import EA_TEMPLATE, DefineData, Example, make_define_data, replay_sample, stage0_examples, string_pools
from iml_nb.people_qa.people import QUESTION_TYPES, Person, load_cvdb, synthetic_people

quiet_transformers()

CACHE_VERSION = 1  # bump when data generation or training changes what a cached checkpoint means
STAGE0_SAMPLE = 600  # Stage-0 facts re-scored every epoch to watch for forgetting


def load_people(cfg: ExperimentConfig) -> tuple[Person, ...]:
    src = cfg.data.people_source
    if src == "synthetic":
        return synthetic_people(cfg.data.n_people, cfg.data.people_seed)
    if src == "wordnet":
        from iml_nb.people_qa.wordnet import wordnet_people

        return wordnet_people(cfg.data.n_people, cfg.data.people_seed)
    return load_cvdb(src, cfg.data.n_people)


def _key(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if Path(path).is_file() else path


def _device_part(cfg: ExperimentConfig) -> dict:
    """Cache-key entry for the device: another device gives other floats; on the CPU it is absent, so older keys stay valid."""
    kind = models.resolve_device(cfg.run.device).type
    return {} if kind == "cpu" else {"device": kind}


def stage0_key(cfg: ExperimentConfig) -> str:
    train = dataclasses.asdict(cfg.train)
    train.pop("stage_epochs")
    train.pop("batch_size")  # define stages only; Stage 0 trains with stage0_batch_size
    data = {"source": _file_digest(cfg.data.people_source), "n": cfg.data.n_people, "seed": cfg.data.people_seed}
    key = {"v": CACHE_VERSION, "data": data, "model": dataclasses.asdict(cfg.model), "train": train, "stage0_seed": cfg.run.stage0_seed}
    key.update(_device_part(cfg))
    if cfg.model.from_scratch:  # the vocabulary holds this run's aliases and tags
        key["atoms"] = _key({"atoms": run_atoms(cfg, load_people(cfg))})
    return _key(key)


def shared_stages_key(cfg: ExperimentConfig, seed: int, stage0_dir: str) -> str:
    """Everything the stages before the last depend on: all settings but the last stage's epochs and how the run is executed."""
    d = cfg.to_dict()
    d["train"]["stage_epochs"] = d["train"]["stage_epochs"][:-1]
    d["data"].pop("stage2_replay_frac")  # the last stage's replay does not change the stages before it (and keeps older keys)
    for name in ("seed", "n_seeds", "n_jobs", "output_dir", "cache_dir", "device"):
        d["run"].pop(name)
    d.update(_device_part(cfg))
    return _key({"v": CACHE_VERSION, "config": d, "seed": seed, "stage0": Path(stage0_dir).name})


def shared_stages_dir(cfg: ExperimentConfig, seed: int, stage0_dir: str) -> Path:
    """Where one seed's checkpoint after the stages before the last is cached (weights.pt, rows.csv)."""
    return project_path(cfg.run.cache_dir) / f"shared-{shared_stages_key(cfg, seed, stage0_dir)}"


def replay_seed(seed: int, stage_no: int, seed_stage2) -> int:
    """Seed of the Stage-0 replay sample mixed into a define stage (shared stages: seed_stage2 is <NA>)."""
    return derived_seed(seed, stage_no, 1 if seed_stage2 is pd.NA else 2 + seed_stage2)


def last_stage_seed(seed: int, seed_stage2: int, stage_no: int) -> int:
    """Seed of the shuffling of the last (Stage-2-dependent) stage."""
    return derived_seed(seed, seed_stage2, stage_no)


def stage0_probe(facts: tuple[Example, ...], cfg: ExperimentConfig) -> tuple[Example, ...]:
    """The Stage-0 facts re-scored every epoch to watch for forgetting: the same sample in Stage 0 and every later stage."""
    return replay_sample(facts, min(1.0, STAGE0_SAMPLE / len(facts)), cfg.run.stage0_seed)


def run_atoms(cfg: ExperimentConfig, people: tuple[Person, ...]) -> list[str]:
    """Every alias and tag the run can use: the string pools, or (alias_pool 0) those of every seed of this run."""
    pools = string_pools(cfg.data)
    if pools is not None:  # a multi-piece alias is its pieces
        return sorted({piece for alias in pools[0] for piece in alias.split()} | set(pools[1]))
    seeds = range(cfg.run.seed, cfg.run.seed + cfg.run.n_seeds)
    return sorted({a for s in seeds for a in make_define_data(people, cfg.data, s, 0).atoms()})


def base_model(cfg: ExperimentConfig, people: tuple[Person, ...]):
    """The starting network and tokenizer: from scratch (word-level vocabulary) or pretrained.

    From scratch, the vocabulary is built once from everything the run can read, the alias/tag pool included, as a pretrained
    vocabulary exists before fine-tuning: Stage 0 then trains alias rows only as never-predicted outputs (tied embeddings).
    Adding them after Stage 0 instead (resized, mean or small init) gave no IML in our measurements (docs/results.md, main experiment).
    """
    if not cfg.model.from_scratch:
        return models.load_pretrained(cfg.model.name, cfg.model.gguf_file)
    texts = [ex.prompt for ex in stage0_examples(people)] + [f"Q: {EA_TEMPLATE}\nA:"]
    atoms = {p.name for p in people} | {p.answer(q) for p in people for q, _ in QUESTION_TYPES if p.answer(q)} | set(run_atoms(cfg, people))
    tokenizer = build_word_tokenizer(texts, atoms)
    return models.build_scratch_model(cfg.model.name, tokenizer, cfg.model.tie_embeddings, cfg.run.stage0_seed), tokenizer


def run_stage0(
    cfg: ExperimentConfig, people: tuple[Person, ...], progress: bool = True, train=train_stage, score=EvalSuite.run
) -> tuple[Path, pd.DataFrame]:
    """Stage 0 (ours): teach every person's facts by real name, once, shared by all seeds like one pretrained model.

    Cached under cache_dir by a hash of everything it depends on, so reruns and other notebooks reuse it.
    """
    folder = project_path(cfg.run.cache_dir) / f"stage0-{stage0_key(cfg)}"
    if not (folder / "metrics.csv").exists():
        model, tokenizer = base_model(cfg, people)
        model.to(models.resolve_device(cfg.run.device))
        facts = stage0_examples(people)
        sample = EvalSuite({"stage0_facts": stage0_probe(facts, cfg)})
        rows: list[dict] = []
        bar = tqdm(total=cfg.train.stage0_epochs, desc="Stage 0 (facts by name)", disable=not progress)

        def on_epoch_end(epoch: int, loss: float, steps: int) -> None:
            res = score(sample, model, tokenizer, "fast", cfg.run.eval_batch_size)
            rows.extend(metric_rows(res, pd.NA, pd.NA, 0, epoch) + train_rows(loss, steps, pd.NA, pd.NA, 0, epoch))
            bar.set_postfix(loss=f"{loss:.3f}", em=f"{res['stage0_facts']['em']:.3f}")
            bar.update()
            log_progress(f"Stage 0: epoch {epoch}/{cfg.train.stage0_epochs} (loss {loss:.3f}, facts EM {res['stage0_facts']['em']:.3f})")

        if cfg.train.stage0_epochs:
            stage0_train = dataclasses.replace(cfg.train, batch_size=cfg.train.stage0_batch_size)
            train(
                model, encode(facts, tokenizer, cfg.train.loss_on), stage0_train, cfg.train.stage0_epochs, cfg.run.stage0_seed, on_epoch_end
            )
        bar.close()

        def write(tmp: Path) -> None:
            models.save(model, tokenizer, tmp)
            pd.DataFrame(rows, columns=METRIC_COLUMNS).to_csv(tmp / "metrics.csv", index=False)

        atomic_write_folder(folder, write)
    return folder, pd.read_csv(folder / "metrics.csv")


ALIGNED_X1 = ("qd1consis", "qd2incons", "q")  # Stage-1 aliases: reliable definition, unreliable (wrong person), none
ALIGNED_X2 = ("d1consis", "d2consis", "d3consis", "no_qd_baseline")  # Stage-2 aliases: definitions only, or never defined


@dataclass(frozen=True)
class SeedResult:
    seed: int
    rows: list
    examples: list  # a few model answers per Stage-2 subset, for display


def depends_on_stage2(name: str) -> bool:
    """Which aliases a test set holds depends on the Stage-2 draw (X2 subsets and their entity-association sets)."""
    return name.removeprefix("ent_assoc_").removeprefix("train_defs_") in X2_SUBSETS + ("d2incons",)


def stage_training_examples(
    cfg: ExperimentConfig, facts: tuple[Example, ...], draw: DefineData, seed: int, stage_no: int, s2
) -> tuple[Example, ...]:
    """Exactly what define stage `stage_no` (1-based) trains on: the draw's examples for it, then its replayed Stage-0 facts.
    Stages before the last are shared by every Stage-2 draw (s2 <NA>, trained on draw 0's examples, which they do not depend on)."""
    frac = cfg.data.last_replay_frac if stage_no == len(cfg.stages) else cfg.data.replay_frac
    return draw.train[cfg.stages[stage_no - 1]] + replay_sample(facts, frac, replay_seed(seed, stage_no, s2))


def run_seed(
    cfg: ExperimentConfig,
    seed: int,
    stage0_dir: str,
    report: Callable[[str], None] = lambda msg: None,
    train=train_stage,
    score=EvalSuite.run,
) -> SeedResult:
    """All define stages for one Stage-1 seed; stages before the last are trained once and reused by every Stage-2 seed."""
    people = load_people(cfg)
    facts = stage0_examples(people)
    draws: dict[int, DefineData] = {s2: make_define_data(people, cfg.data, seed, s2) for s2 in range(cfg.run.n_seeds_stage2)}
    model, tokenizer = models.load_saved(stage0_dir)
    device = models.resolve_device(cfg.run.device)
    model.to(device)
    missing = [a for d in draws.values() for a in d.atoms() if tokenizer.convert_tokens_to_ids(a) == tokenizer.unk_token_id]
    if cfg.model.from_scratch and missing:
        raise RuntimeError(f"seed {seed}: {len(missing)} aliases/tags are not in the Stage-0 vocabulary (stale cache?)")
    stage0_sample = {"stage0_facts": stage0_probe(facts, cfg)}
    stages = cfg.stages
    rows: list[dict] = []
    shared = stages[:-1]  # every plan ends with its one Stage-2-dependent stage ("stage2", or "full" in one-stage runs)

    # Stage-2-independent stages: evaluated on X1 sets once, and on X2 sets under every Stage-2 draw.
    first = draws[0]
    suite_sets = {f"{n}@x": v for n, v in first.eval_sets.items() if not depends_on_stage2(n)}
    # d2incons is skipped before Stage 2: its aliases are unseen then, so it only repeats d2consis at 20% of the evaluation cost.
    suite_sets.update(
        {f"{n}@{s2}": v for s2, d in draws.items() for n, v in d.eval_sets.items() if depends_on_stage2(n) and n != "d2incons"}
    )
    suite_sets.update({f"{n}@x": v for n, v in stage0_sample.items()})

    def to_rows(res: dict, stage: int, epoch: int) -> list[dict]:
        out = []
        for key, metrics in res.items():
            name, s2 = key.rsplit("@", 1)
            out += metric_rows({name: metrics}, seed, pd.NA if s2 == "x" else int(s2), stage, epoch)
        return out

    def phase(stage_no: int, draw: DefineData, suite: EvalSuite, train_seed: int, s2) -> None:
        data = encode(stage_training_examples(cfg, facts, draw, seed, stage_no, s2), tokenizer, cfg.train.loss_on)

        epochs = cfg.train.stage_epochs[stage_no - 1]

        def on_epoch_end(epoch: int, loss: float, steps: int) -> None:
            # At each stage's end a fast run also decodes greedily: F1 needs the text, and "em_generate" must equal the fast "em".
            mode = "both" if epoch == epochs and cfg.run.eval_mode == "fast" else cfg.run.eval_mode
            res = score(suite, model, tokenizer, mode, cfg.run.eval_batch_size, cfg.run.max_new_tokens)
            rows.extend(to_rows(res, stage_no, epoch) + train_rows(loss, steps, seed, s2, stage_no, epoch))
            if epoch == epochs and cfg.model.from_scratch:  # where each alias's row points, at the stage's end
                draw = draws[0 if s2 is pd.NA else s2]
                subsets = ALIGNED_X1 if stage_no < len(stages) else ALIGNED_X1 + ALIGNED_X2
                rows.extend(metric_rows(mechanism.alignment(model, tokenizer, draw, subsets), seed, s2, stage_no, epoch))
            report(f"seed {seed} stage {stage_no} epoch {epoch}")

        train(model, data, cfg.train, epochs, train_seed, on_epoch_end)

    # Stages before the last are cached like Stage 0: runs differing only in the last stage (its epochs) or killed
    # after them reuse the weights and the metrics rows; a reload gives bit-identical results (tests/test_model_eval.py).
    cached = shared_stages_dir(cfg, seed, stage0_dir)
    if shared and (cached / "rows.csv").exists():
        model.load_state_dict(torch.load(cached / "weights.pt", map_location=device, weights_only=True))
        loaded = pd.read_csv(cached / "rows.csv").astype({"seed_stage2": "Int64"}).astype({"seed_stage2": object})
        rows.extend(loaded.where(loaded.notna(), pd.NA).to_dict("records"))
        for i in range(len(shared)):
            for epoch in range(1, cfg.train.stage_epochs[i] + 1):
                report(f"seed {seed} stage {i + 1} epoch {epoch} (cached)")
    elif shared:
        suite = EvalSuite(suite_sets)
        for i in range(1, len(shared) + 1):
            phase(i, first, suite, derived_seed(seed, i), pd.NA)

        def write(tmp: Path) -> None:
            torch.save(model.state_dict(), tmp / "weights.pt")
            pd.DataFrame(rows, columns=METRIC_COLUMNS).to_csv(tmp / "rows.csv", index=False)

        atomic_write_folder(cached, write)
    after_shared = {k: v.clone() for k, v in model.state_dict().items()}

    examples = []
    last = len(stages)
    for s2, draw in draws.items():
        model.load_state_dict(after_shared)
        x2_sets = {f"{n}@{s2}": v for n, v in draw.eval_sets.items() if depends_on_stage2(n)}
        x2_sets.update({f"{n}@{s2}": v for n, v in stage0_sample.items()})  # after Stage 2 this depends on the Stage-2 run
        if not shared:  # one-stage runs learn the X1 sets in this same stage, under each Stage-2 draw
            x2_sets.update({f"{n}@{s2}": v for n, v in draw.eval_sets.items() if not depends_on_stage2(n)})
        for sub in ("d1consis", "d2consis", "d3consis"):  # are the new definitions themselves learned, and how fast per tag?
            x2_sets[f"train_defs_{sub}@{s2}"] = tuple(ex for ex in draw.train[stages[-1]] if ex.subset == sub and ex.kind == "definition")
        phase(last, draw, EvalSuite(x2_sets), last_stage_seed(seed, s2, last), s2)
        if s2 == 0:
            shown = EvalSuite({n: draw.eval_sets[n] for n in ("d1consis", "d2consis") if n in draw.eval_sets})
            for n in shown.sets:
                examples += [dict(seed=seed, subset=n, **p) for p in shown.predictions(model, tokenizer, n, limit=6)]
    return SeedResult(seed, rows, examples)


def run_experiment(
    cfg: ExperimentConfig, progress: bool = True, train=train_stage, score=EvalSuite.run
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stage 0 once, then every seed (in `n_jobs` processes). Returns (metrics, example predictions).

    `train` (train.train_stage's contract) and `score` (EvalSuite.run's) are the training loop and the evaluation; the benchmark
    swaps in the usual Trainer + generation pipeline through them. Both must be picklable when n_jobs > 1."""
    people = load_people(cfg)
    stage0_dir, stage0_rows = run_stage0(cfg, people, progress, train, score)
    epochs_per_seed = sum(cfg.train.stage_epochs[:-1]) + cfg.run.n_seeds_stage2 * cfg.train.stage_epochs[-1]
    results = run_seeds(
        functools.partial(run_seed, cfg, stage0_dir=str(stage0_dir), train=train, score=score),
        cfg.run,
        epochs_per_seed,
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
