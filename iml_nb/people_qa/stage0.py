"""Stage 0, the stand-in for pretraining (one model per people database and Stage-0 seed, shared by every Stage-1 seed), and the
caches: Stage 0, each seed's stages before the last, and each seed's finished result, keyed by everything they depend on
(docs/background.md)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from iml_nb.core.env import log_progress, project_path
from iml_nb.core.results import METRIC_COLUMNS, atomic_write_folder, file_digest, metric_rows, train_rows
from iml_nb.lm import model as models
from iml_nb.lm.encode import encode
from iml_nb.lm.evaluate import EvalSuite
from iml_nb.lm.train import train_stage
from iml_nb.lm.vocab import build_word_tokenizer
from iml_nb.people_qa.config import ExperimentConfig
from iml_nb.people_qa.define import EA_TEMPLATE, Example, make_define_data, replay_sample, stage0_examples, string_pools
from iml_nb.people_qa.people import QUESTION_TYPES, Person, load_people

CACHE_VERSION = 1  # bump when data generation or training changes what a cached checkpoint means
STAGE0_SAMPLE = 600  # Stage-0 facts re-scored every epoch to watch for forgetting


def _key(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_digest(path: str) -> str:
    return file_digest(path) if Path(path).is_file() else path


def _device_part(cfg: ExperimentConfig) -> dict:
    """Cache-key entry for the device: another device gives other floats; on the CPU it is absent, so older keys stay valid."""
    kind = models.resolve_device(cfg.run.device).type
    return {} if kind == "cpu" else {"device": kind}


def stage0_key(cfg: ExperimentConfig) -> str:
    train = dataclasses.asdict(cfg.train)
    train.pop("stage_epochs")
    train.pop("batch_size")  # define stages only; Stage 0 trains with stage0_batch_size
    train.pop("steps_batch_size")  # define stages only
    if not train["stage0_target_em"]:
        train.pop("stage0_target_em")  # unset: the key Stage 0 had before the setting existed
    data = {"source": _file_digest(cfg.data.people_source), "n": cfg.data.n_people, "seed": cfg.data.people_seed}
    model = dataclasses.asdict(cfg.model)
    model.pop("lora_rank")  # define stages only
    key = {"v": CACHE_VERSION, "data": data, "model": model, "train": train, "stage0_seed": cfg.run.stage0_seed}
    key.update(_device_part(cfg))
    if cfg.model.from_scratch:  # the vocabulary holds this run's aliases and tags
        key["atoms"] = _key({"atoms": run_atoms(cfg, load_people(cfg))})
    return _key(key)


# Settings added after Stage-1 caches existed, with the value that reproduces the behaviour from before (full fine-tuning, random
# tags, trained definitions, every epoch scored, no per-question views): a config at that value hashes as it did then.
ADDED_SETTINGS = (
    ("model", "lora_rank", 0),
    ("data", "tags", "random"),
    ("data", "definitions", "trained"),
    ("train", "steps_batch_size", 0),
    ("train", "stage0_target_em", 0.0),
    ("run", "eval_every", 1),
    ("run", "score_by_question", False),
)


EXECUTION_SETTINGS = ("seed", "n_seeds", "n_jobs", "output_dir", "cache_dir", "device")  # how a run executes, not what a seed computes


def _computed_settings(d: dict, cfg: ExperimentConfig) -> dict:
    """The settings dict `d` without how the run executes, plus the device where it changes the floats."""
    for name in EXECUTION_SETTINGS:
        d["run"].pop(name)
    d.update(_device_part(cfg))
    return d


def shared_stages_key(cfg: ExperimentConfig, seed: int, stage0_dir: str) -> str:
    """Everything the stages before the last depend on: all settings but the last stage's epochs and how the run is executed."""
    d = cfg.to_dict()
    d["train"]["stage_epochs"] = d["train"]["stage_epochs"][:-1]
    d["data"].pop("stage2_replay_frac")  # the last stage's replay does not change the stages before it (and keeps older keys)
    for section, name, before in ADDED_SETTINGS:
        if d[section][name] == before:
            d[section].pop(name)  # set as before the setting existed: older keys stay valid
    return _key({"v": CACHE_VERSION, "config": _computed_settings(d, cfg), "seed": seed, "stage0": Path(stage0_dir).name})


COMPUTING_PACKAGES = ("core", "lm", "mechanisms", "people_qa")  # the code a seed's numbers come from


def code_digest() -> str:
    """A hash of the computing modules' source: a seed's finished result is reused only by the code that produced it, so an edit
    to training or scoring can never be hidden by a cached result (the checkpoint caches, which hold weights, use CACHE_VERSION)."""
    root = Path(__file__).resolve().parents[1]
    files = sorted(f for pkg in COMPUTING_PACKAGES for f in (root / pkg).rglob("*.py"))
    return _key({str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files})


def _result_dir(cfg: ExperimentConfig, kind: str, seed: int, **depends_on) -> Path:
    """A cache folder for numbers (no weights) computed by this code: keyed by every setting but how the run executes, the seed,
    what else they `depends_on` and the computing code's hash."""
    key = {"v": CACHE_VERSION, "config": _computed_settings(cfg.to_dict(), cfg), "seed": seed, **depends_on, "code": code_digest()}
    return project_path(cfg.run.cache_dir) / f"{kind}-{_key(key)}"


def seed_result_dir(cfg: ExperimentConfig, seed: int, stage0_dir: str) -> Path:
    """Where one seed's finished result (every stage's metric rows and its example answers) is cached, so a run stopped between
    seeds resumes after the last finished one. Keyed by every setting but how the run executes, the Stage-0 model and the code."""
    return _result_dir(cfg, "seed", seed, stage0=Path(stage0_dir).name)


def checks_dir(cfg: ExperimentConfig, warmup: tuple[Person, ...], warmup_epochs: int) -> Path:
    """Where a pretrained model's knowledge and two-hop checks (knowledge.checks) are cached, so a resumed run skips their
    minutes of generation. Keyed like a seed's result, with the first seed (whose draw the two-hop check asks) and the warm-up."""
    return _result_dir(cfg, "checks", cfg.run.seed, warmup=_key({"people": [p.name for p in warmup], "epochs": warmup_epochs}))


def shared_stages_dir(cfg: ExperimentConfig, seed: int, stage0_dir: str) -> Path:
    """Where one seed's checkpoint after the stages before the last is cached (weights.pt, rows.csv)."""
    return project_path(cfg.run.cache_dir) / f"shared-{shared_stages_key(cfg, seed, stage0_dir)}"


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
            return epoch >= cfg.train.stage0_epochs and res["stage0_facts"]["em"] >= cfg.train.stage0_target_em

        # A long Stage 0 (a larger model trained to a facts target) can outlast the process running it: it resumes from its last
        # epoch. Only from scratch: a pretrained model's optimiser state is gigabytes, and its Stage 0 is short.
        resume = folder.with_name(folder.name + ".resume.pt") if cfg.model.from_scratch else None
        if cfg.train.stage0_epochs:
            stage0_train = dataclasses.replace(cfg.train, batch_size=cfg.train.stage0_batch_size)
            most = cfg.train.stage0_epochs * (4 if cfg.train.stage0_target_em else 1)
            encoded = encode(facts, tokenizer, cfg.train.loss_on)
            train(model, encoded, stage0_train, most, cfg.run.stage0_seed, on_epoch_end, checkpoint=resume, extra={"rows": rows})
        bar.close()

        def write(tmp: Path) -> None:
            models.save(model, tokenizer, tmp)
            pd.DataFrame(rows, columns=METRIC_COLUMNS).to_csv(tmp / "metrics.csv", index=False)

        atomic_write_folder(folder, write)
        if resume:
            resume.unlink(missing_ok=True)
    return folder, pd.read_csv(folder / "metrics.csv")
