"""The define experiment's data as a Hugging Face `datasets.DatasetDict`: exactly the examples a run trains and evaluates on, one
split per stage and test set, Parquet files with a dataset card, for people who train with their own stack.

Training splits are built by experiment.stage_training_examples, the function the training loop itself uses, so the export and a
run cannot disagree; test splits are the run's test sets. No model is needed: this runs in seconds for any configuration."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from iml_nb.people_qa.config import ExperimentConfig
from iml_nb.people_qa.define import make_define_data, stage0_examples
from iml_nb.people_qa.experiment import depends_on_stage2, stage_training_examples
from iml_nb.people_qa.people import load_people

COLUMNS = ["prompt", "answer", "kind", "subset", "alias", "entity", "seed", "seed_stage2"]
SHARED = -1  # seed_stage2 of examples shared by every Stage-2 draw (the stages before the last, and the test sets of X1 aliases)


def frames(cfg: ExperimentConfig) -> dict[str, pd.DataFrame]:
    """{split: frame} for every Stage-1 seed and Stage-2 draw of `cfg`: `stage0` (the facts by name, from scratch only),
    `train_<stage>` (what each define stage trains on, replayed facts included, kind "qa" for them) and `test_<set>` (each test set)."""
    people = load_people(cfg)
    facts = stage0_examples(people)
    rows: dict[str, list[dict]] = {}

    def add(split: str, examples, seed: int, s2: int) -> None:
        rows.setdefault(split, []).extend(
            {
                "prompt": ex.prompt,
                "answer": ex.answer,
                "kind": ex.kind,
                "subset": ex.subset,
                "alias": ex.alias,
                "entity": ex.entity,
                "seed": seed,
                "seed_stage2": s2,
            }
            for ex in examples
        )

    if cfg.model.from_scratch and cfg.train.stage0_epochs:
        add("stage0", facts, SHARED, SHARED)
    last = len(cfg.stages)
    for seed in range(cfg.run.seed, cfg.run.seed + cfg.run.n_seeds):
        draws = {s2: make_define_data(people, cfg.data, seed, s2) for s2 in range(cfg.run.n_seeds_stage2)}
        for stage_no, stage in enumerate(cfg.stages, start=1):
            if stage_no < last:
                add(f"train_{stage}", stage_training_examples(cfg, facts, draws[0], seed, stage_no, pd.NA), seed, SHARED)
            else:
                for s2, draw in draws.items():
                    add(f"train_{stage}", stage_training_examples(cfg, facts, draw, seed, stage_no, s2), seed, s2)
        for s2, draw in draws.items():
            for name, examples in draw.eval_sets.items():
                shared = not depends_on_stage2(name)  # Stage-1 aliases: the same under every Stage-2 draw
                if s2 == 0 or not shared:
                    add(f"test_{name}", examples, seed, SHARED if shared else s2)
    return {split: pd.DataFrame(r, columns=COLUMNS) for split, r in rows.items()}


def to_dataset_dict(cfg: ExperimentConfig):
    """The frames as a datasets.DatasetDict (one Dataset per split)."""
    from datasets import Dataset, DatasetDict

    return DatasetDict({split: Dataset.from_pandas(frame, preserve_index=False) for split, frame in frames(cfg).items()})


def _card(cfg: ExperimentConfig, splits: dict[str, pd.DataFrame]) -> str:
    files = "\n".join(f"  - split: {s}\n    path: {s}.parquet" for s in splits)
    counts = "\n".join(f"| `{s}` | {len(f)} |" for s, f in splits.items())
    return f"""---
configs:
- config_name: default
  data_files:
{files}
---
# IML define-experiment data

The examples of one configuration of the define experiment of *Implicit meta-learning may lead language models to trust more
reliable sources* (Krasheninnikov et al., ICML 2024), as `iml_nb` trains and evaluates on them. Made by `iml_nb.people_qa.export` from the
configuration in `config.json`; no model was trained to make it.

- `stage0`: every person's facts by real name (our stand-in for pretraining; from-scratch configurations only).
- `train_<stage>`: what each define stage trains on, in the stage's own order before shuffling: definitions (`kind`
  `definition`), QA about aliases (`qa`), entity-association questions (`ent_assoc`) and the replayed Stage-0 facts (`qa`, empty
  `alias`). Stages before the last are shared by every Stage-2 draw (`seed_stage2` {SHARED}).
- `test_<set>`: each test set; X1 sets (Stage-1 aliases) do not depend on the Stage-2 draw (`seed_stage2` {SHARED}).

Features: `prompt` (what the model reads), `answer` (what it must produce, then end of text), `kind`, `subset` (the paper's
data subset, e.g. `d1consis` = new Define-dot definitions), `alias`, `entity` (the person the answer is about), `seed` (Stage-1
seed), `seed_stage2`. Seeds {cfg.run.seed}–{cfg.run.seed + cfg.run.n_seeds - 1}, {cfg.run.n_seeds_stage2} Stage-2 draw(s),
{cfg.data.n_people} people (`{cfg.data.people_source}`, people seed {cfg.data.people_seed}).

| split | rows |
|---|---|
{counts}
"""


def write(cfg: ExperimentConfig, folder: str | os.PathLike) -> Path:
    """Parquet per split, the dataset card (README.md) and config.json into `folder`; `datasets.load_dataset(folder)` reads it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    splits = frames(cfg)
    for split, frame in splits.items():
        frame.to_parquet(folder / f"{split}.parquet", index=False)
    (folder / "README.md").write_text(_card(cfg, splits))
    (folder / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True, default=str) + "\n")
    return folder


__all__ = ["COLUMNS", "SHARED", "frames", "to_dataset_dict", "write"]
