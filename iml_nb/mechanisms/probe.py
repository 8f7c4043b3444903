"""Linear probes on the residual stream after Stage 1 (paper §9.2): can the tag that defined an alias be read off the
model's activations on a question about that alias, whose context holds no definition?

Inputs are one question per alias ("Q: What is the name of <alias>?\\nA:"), classes balanced; features are transformers' hidden
states (embeddings, then the output of every block) at every token position; the probe is scikit-learn's L2 logistic regression,
cross-validated with folds grouped by alias, so no alias is in both the training and the test part of a fold.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections import Counter

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from iml_nb.analysis.stats import mean_ci
from iml_nb.core.parallel import run_seeds
from iml_nb.core.parameters import require, require_int, require_number
from iml_nb.core.results import metrics_frame
from iml_nb.lm import model as models
from iml_nb.people_qa.config import ExperimentConfig, grid
from iml_nb.people_qa.define import EA_TEMPLATE, DefineData, make_define_data
from iml_nb.people_qa.experiment import run_seed
from iml_nb.people_qa.people import load_people
from iml_nb.people_qa.stage0 import run_stage0, shared_stages_dir

PROBES = {  # name -> (class-0 subsets, class-1 subsets)
    "tag": (("qd1consis",), ("qd2incons",)),  # which tag defined the alias (the paper's probe)
    "defined": (("q",), ("qd1consis", "qd2incons")),  # was the alias defined at all (Stage-1 aliases with QA only vs defined)
}


def stage1_model(cfg: ExperimentConfig, seed: int, progress: bool = True):
    """(model, tokenizer, data) after the stages before the last, for Stage-1 seed `seed`: the experiment's cached checkpoint, or
    trained now and cached (with a one-epoch last stage, which the cache does not depend on)."""
    people = load_people(cfg)
    stage0_dir, _ = run_stage0(cfg, people, progress)
    cached = shared_stages_dir(cfg, seed, str(stage0_dir))
    if not (cached / "weights.pt").exists():
        quick = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, stage_epochs=(*cfg.train.stage_epochs[:-1], 1)))
        run_seed(quick, seed, str(stage0_dir))
    model, tokenizer = models.load_saved(stage0_dir)
    device = models.resolve_device(cfg.run.device)
    model.load_state_dict(torch.load(cached / "weights.pt", map_location=device, weights_only=True))
    return model.to(device).eval(), tokenizer, make_define_data(people, cfg.data, seed, 0)


def probe_inputs(data: DefineData, probe: str, seed: int = 0) -> pd.DataFrame:
    """One question per alias of the probe's two classes, the larger class subsampled to the smaller (chance = 0.5).

    Columns: text, label (0/1), alias (the group), subset."""
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; known: {sorted(PROBES)}")
    classes = [[(data.alias_of[e], s) for s in subsets for e in data.subsets.get(s, ())] for subsets in PROBES[probe]]
    n = min(len(c) for c in classes)
    if n < 2:
        raise ValueError(f"probe {probe!r} needs at least 2 aliases per class, got {[len(c) for c in classes]}: check the subset fractions")
    rng = random.Random(seed)
    rows = [
        {"text": f"Q: {EA_TEMPLATE.format(alias)}\nA:", "label": label, "alias": alias, "subset": subset}
        for label, members in enumerate(classes)
        for alias, subset in rng.sample(sorted(members), n)
    ]
    return pd.DataFrame(rows)


@torch.no_grad()
def hidden_states(model, tokenizer, texts: list[str], batch_size: int = 256) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Residual stream of every text: (states [n_kept, n_layers + 1, T, d] float32, the tokens of the first kept text, kept mask).

    Layer 0 is the embeddings, layer i the output of block i. Texts whose token count differs from the most common one are dropped
    (a subword tokenizer splits some aliases into more pieces), so that positions line up, as the reference keeps 3-token aliases only."""
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    length = Counter(len(i) for i in ids).most_common(1)[0][0]
    kept = np.array([len(i) == length for i in ids])
    rows = [i for i, k in zip(ids, kept) if k]
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(rows), batch_size):
        batch = torch.tensor(rows[start : start + batch_size], device=device)
        hs = model(input_ids=batch, output_hidden_states=True).hidden_states
        out.append(torch.stack(hs, dim=1).float().cpu().numpy())
    return np.concatenate(out), tokenizer.convert_ids_to_tokens(rows[0]), kept


def grouped_folds(labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds in which every group (alias) falls wholly in one test part."""
    if len(set(groups)) < n_folds:
        raise ValueError(f"n_folds={n_folds} needs at least that many aliases, got {len(set(groups))}")
    return list(StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels, groups))


def probe_grid(
    states: np.ndarray, labels: np.ndarray, groups: np.ndarray, tokens: list[str], C: float = 0.01, n_folds: int = 5, seed: int = 0
) -> pd.DataFrame:
    """Cross-validated accuracy of a probe at every (layer, position): columns layer, position, token, accuracy, sd (over folds)."""
    folds = grouped_folds(labels, groups, n_folds, seed)
    rows = []
    for layer in range(states.shape[1]):
        for pos in range(states.shape[2]):
            x = states[:, layer, pos, :]
            scores = []
            for train, test in folds:
                clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
                scores.append(clf.fit(x[train], labels[train]).score(x[test], labels[test]))
            rows.append(
                {"layer": layer, "position": pos, "token": tokens[pos], "accuracy": float(np.mean(scores)), "sd": float(np.std(scores))}
            )
    return pd.DataFrame(rows)


def run_probes(
    cfg: ExperimentConfig, seed: int, probes=("tag", "defined"), C: float = 0.01, n_folds: int = 5, progress: bool = True
) -> pd.DataFrame:
    """Every probe on the Stage-1 model of one seed: probe_grid rows plus probe, word_order, seed, n (aliases per class)."""
    model, tokenizer, data = stage1_model(cfg, seed, progress)
    frames = []
    for probe in probes:
        inputs = probe_inputs(data, probe, seed)
        states, tokens, kept = hidden_states(model, tokenizer, inputs["text"].tolist(), cfg.run.eval_batch_size)
        inputs = inputs[kept]
        # The alias's tokens: after the question's opening words, up to the end of "Q: What is the name of <alias>" tokenized.
        n_tokens = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
        alias_start = n_tokens("Q: " + EA_TEMPLATE.split("{}")[0].rstrip())
        alias_end = n_tokens("Q: " + EA_TEMPLATE.format(inputs["alias"].iloc[0]).rstrip("?"))
        tokens = [t if not alias_start <= i < alias_end else "<alias>" for i, t in enumerate(tokens)]  # the same label for every seed
        grid = probe_grid(states, inputs["label"].to_numpy(), inputs["alias"].to_numpy(), tokens, C, n_folds, seed)
        frames.append(
            grid.assign(
                probe=probe,
                word_order=cfg.data.word_order,
                seed=seed,
                after_alias=grid["position"] >= alias_end,
                n=int(inputs["label"].value_counts().min()),
            )
        )
    return pd.concat(frames, ignore_index=True)


def _probe_seed(cfg: ExperimentConfig, probes, C: float, n_folds: int, seed: int, report=lambda msg: None) -> pd.DataFrame:
    frame = run_probes(cfg, seed, probes, C, n_folds, progress=False)
    report(f"{cfg.data.word_order} seed {seed}")
    return frame


def probe_configs(params: dict, word_orders, probes, C: float, n_folds: int) -> list[ExperimentConfig]:
    """One experiment config per word order, and the probe settings checked: every bad value named before any compute."""
    configs = grid(params, "word_order", word_orders, name="word_orders")
    require(
        isinstance(probes, (list, tuple)) and len(probes) > 0 and set(probes) <= set(PROBES),
        "probes",
        f"must be a non-empty list of {sorted(PROBES)}, got {probes!r}",
    )
    require_number(C, "probe_C", 0.0, 1e6, low_open=True)
    require_int(n_folds, "n_folds", minimum=2)
    return configs


def run_probe_experiment(
    configs: list[ExperimentConfig], probes=("tag", "defined"), C: float = 0.01, n_folds: int = 5, progress: bool = True
) -> pd.DataFrame:
    """run_probes for every config (word order) and Stage-1 seed (seeds in `n_jobs` processes; Stage 0 first, shared)."""
    frames = []
    for cfg in configs:
        run_stage0(cfg, load_people(cfg), progress)
        fn = functools.partial(_probe_seed, cfg, tuple(probes), C, n_folds)
        frames += run_seeds(fn, cfg.run, 1, f"Stage 1 + probes, order {cfg.data.word_order}", progress)
    return pd.concat(frames, ignore_index=True)


def as_metrics(frame: pd.DataFrame, stage1_epochs: int) -> pd.DataFrame:
    """The probe results as the package's tidy metrics frame (subset "probe_<probe>@<order>", metric "acc_l<layer>_p<position>",
    at the end of Stage 1), so run folders, results.read_metrics and report read them like any run's."""
    rows = [
        dict(
            seed=r.seed,
            seed_stage2=pd.NA,
            stage=1,
            epoch=stage1_epochs,
            subset=f"probe_{r.probe}@{r.word_order}",
            metric=f"acc_l{r.layer}_p{r.position}",
            value=r.accuracy,
        )
        for r in frame.itertuples()
    ]
    return metrics_frame(rows)


def preview(configs: list[ExperimentConfig], probes) -> pd.DataFrame:
    """Per word order and probe: the two classes, how many aliases each, one question, and that alias's Stage-1 definition."""
    rows = []
    for cfg in configs:
        data = make_define_data(load_people(cfg), cfg.data, cfg.run.seed, 0)
        definition = {ex.alias: f"{ex.prompt} → {ex.answer}" for ex in data.train[cfg.stages[0]] if ex.kind == "definition"}
        for name in probes:
            inputs = probe_inputs(data, name, cfg.run.seed)
            for label, g in inputs.groupby("label"):
                first = g.iloc[0]
                rows.append(
                    {
                        "word_order": cfg.data.word_order,
                        "probe": name,
                        "class": label,
                        "subsets": ", ".join(PROBES[name][label]),
                        "aliases": len(g),
                        "question": first["text"],
                        "its definition": definition.get(first["alias"], "(none)"),
                    }
                )
    return pd.DataFrame(rows)


def probe_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and t-CI across seeds of probe accuracy per (word_order, probe, layer, position, token)."""
    keys = ["word_order", "probe", "layer", "position", "token"]
    return pd.DataFrame([{**dict(zip(keys, k)), **mean_ci(g["accuracy"])} for k, g in frame.groupby(keys, sort=False)])


def probe_summary(frame: pd.DataFrame) -> dict:
    """Headline numbers per word order and probe, fixed in advance (no picking the best cell, which would favour noise):
    accuracy at the last token of the last layer, and the mean over the positions after the alias at the last layer."""
    out = {}
    for (order, probe), g in frame.groupby(["word_order", "probe"], sort=False):
        last_layer = g["layer"].max()
        at_last = g[(g["layer"] == last_layer) & (g["position"] == g["position"].max())]["accuracy"]
        per_seed_after = g[(g["layer"] == last_layer) & g["after_alias"]].groupby("seed")["accuracy"].mean()
        out[f"{order}/{probe}"] = {
            "last_token_last_layer": mean_ci(at_last),
            "after_alias_last_layer": mean_ci(per_seed_after),
            "aliases_per_class": int(g["n"].min()),
            "layers": int(last_layer),
        }
    return out


def summary_table(summary: dict) -> pd.DataFrame:
    """probe_summary as a table: per word order and probe, aliases per class and the two headline accuracies with their CIs."""
    from iml_nb.analysis.stats import format_ci

    names = ("last_token_last_layer", "after_alias_last_layer")
    return pd.DataFrame(
        [
            {"order/probe": k, "aliases per class": v["aliases_per_class"], **{n: format_ci(v[n], ".3f", full=False) for n in names}}
            for k, v in summary.items()
        ]
    )


__all__ = [
    "summary_table",
    "PROBES",
    "as_metrics",
    "grouped_folds",
    "hidden_states",
    "probe_configs",
    "probe_curves",
    "probe_grid",
    "probe_inputs",
    "probe_summary",
    "preview",
    "run_probe_experiment",
    "run_probes",
    "stage1_model",
]
