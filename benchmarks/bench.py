"""`python -m benchmarks.bench` (from the repository root): speed figures, each a ratio measured in one process (noise cancels).

1. utilisation: training model-FLOP/s ÷ this machine's fp32 matmul peak, measured just before, per model size;
2. the usual pipeline: the same main experiment through a Hugging Face Trainer with greedy-generation evaluation every epoch
   (the reference's way) vs ours, end to end, with the metrics of both compared cell by cell;
3. fast (teacher-forced) exact match vs greedy generation on a trained model: identical scores, and the speed ratio;
4. peak memory (resident, summed over the run's processes) of a main-experiment run through the notebook;
5. (`--pretrained`, alone) SmolLM2-135M on WordNet people: tokens/s of full fine-tuning and of LoRA at a few ranks, and what one
   Stage-1 epoch then takes.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from iml_nb.core.config import TrainConfig
from iml_nb.lm import evaluate, lora
from iml_nb.lm import model as models
from iml_nb.lm.encode import IGNORE, Encoded, encode
from iml_nb.lm.evaluate import EvalSuite
from iml_nb.lm.train import lr_lambda, make_optimizer, train_stage
from iml_nb.people_qa import experiment, stage0
from iml_nb.people_qa.config import ExperimentConfig, build_config
from iml_nb.people_qa.define import make_define_data, replay_sample, stage0_examples
from iml_nb.people_qa.people import load_people

BENCH_SCALE = dict(n_people=200, stage0_epochs=10, stage1_epochs=5, stage2_epochs=3, n_seeds=1, n_jobs=1)  # minutes, not hours


def matmul_peak(threads: int, sizes=(512, 1024, 2048), seconds: float = 0.5) -> float:
    """Best fp32 FLOP/s of square matmuls at `threads` threads (the ceiling our training is compared with)."""
    torch.set_num_threads(threads)
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # warm-up
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            reps += 1
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - start))
    return best


def model_flops(model: torch.nn.Module, data: Encoded) -> float:
    """FLOPs one training pass over `data` needs: 6 x non-embedding parameters x non-pad tokens, plus 6 x d x vocab per
    target token for the LM head, which our loop applies only where a target is (so 6 x all parameters x tokens would overcount)."""
    non_embedding = models.n_params(model, non_embedding=True)
    head = model.get_output_embeddings().weight
    if head is not model.get_input_embeddings().weight:  # untied: the head is a separate matrix, counted at targets only
        non_embedding -= head.numel()
    tokens = int(data.lengths.sum())
    targets = int((data.targets != IGNORE).sum())
    return 6 * non_embedding * tokens + 6 * head.numel() * targets


def stage1_training(model_name: str, **params) -> tuple[ExperimentConfig, torch.nn.Module, Encoded]:
    """The default config at this model size (with `params` on top), its fresh network, and the main experiment's Stage-1
    training data (with replay)."""
    cfg = build_config(model=model_name, **params)
    people = load_people(cfg)
    model, tokenizer = stage0.base_model(cfg, people)
    draw = make_define_data(people, cfg.data, cfg.run.seed, 0)
    data = encode(draw.train[cfg.stages[0]] + replay_sample(stage0_examples(people), cfg.data.replay_frac, 1), tokenizer, cfg.train.loss_on)
    return cfg, model, data


def timed_epochs(model: torch.nn.Module, data: Encoded, cfg: TrainConfig, epochs: int = 1, loss_fn=None) -> tuple[float, float, float]:
    """(warm-up seconds, seconds for `epochs` epochs after it, their mean loss): one warm-up epoch first (allocator, kernels,
    compilation), then the timed ones."""
    start = time.perf_counter()
    train_stage(model, data, cfg, 1, 0, loss_fn=loss_fn)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    losses = train_stage(model, data, cfg, epochs, 1, loss_fn=loss_fn)
    return warm, time.perf_counter() - start, sum(losses) / len(losses)


def utilisation(model_name: str, threads: int = 1, epochs: int = 1) -> dict:
    """Train the main experiment's Stage-1 data (default config, this model size) and compare model-FLOP/s with the peak."""
    cfg, model, data = stage1_training(model_name)
    peak = matmul_peak(threads)
    torch.set_num_threads(threads)
    _, seconds, _ = timed_epochs(model, data, cfg.train, epochs)
    flops = model_flops(model, data) * epochs / seconds
    tokens = int(data.lengths.sum()) * epochs / seconds
    naive = 6 * models.n_params(model, non_embedding=True) * tokens
    return {
        "model": model_name,
        "threads": threads,
        "non_embedding_params": models.n_params(model, non_embedding=True),
        "tokens_per_s": tokens,
        "model_gflops": flops / 1e9,
        "peak_gflops": peak / 1e9,
        "utilisation": flops / peak,
        "utilisation_6N": naive / peak,
    }


# -- the usual pipeline: Hugging Face Trainer + generation every epoch -------------------------------------------------------


class _Rows(torch.utils.data.Dataset):
    """Our encoded rows as the Trainer expects them: input_ids with the final EOS appended, labels aligned to them (HF shifts)."""

    def __init__(self, data: Encoded, eos: int):
        self.data, self.eos = data, eos

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict:
        n = int(self.data.lengths[i])
        ids = torch.cat([self.data.input_ids[i, :n], torch.tensor([self.eos])])
        labels = torch.cat([torch.tensor([IGNORE]), self.data.targets[i, :n]])  # position t predicts labels[t + 1]
        return {"input_ids": ids, "labels": labels}


class _SameBatches(torch.utils.data.Sampler):
    """The batches our loop draws (a generator seeded once per stage, a permutation per epoch), so both pipelines see one order."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.generator = n, batch_size, torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self):
        order = torch.randperm(self.n, generator=self.generator)
        for start in range(0, self.n, self.batch_size):
            yield order[start : start + self.batch_size].tolist()


def trainer_stage(
    model,
    data: Encoded,
    cfg: TrainConfig,
    epochs: int,
    seed: int,
    on_epoch_end=lambda epoch, loss, steps: None,
    checkpoint=None,
    extra=None,
) -> list[float]:
    """train_stage's contract through transformers' Trainer: the same optimiser, schedule, clipping and batches; the loss is the
    model's own (logits at every position, labels masked), as the reference computes it. It never resumes (`checkpoint` is
    ignored): the benchmark times one uninterrupted pass in a fresh cache."""
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    pad_id, eos_id = model.config.pad_token_id, model.config.eos_token_id
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)

    def collate(rows: list[dict]) -> dict:
        width = max(len(r["input_ids"]) for r in rows)
        out = {
            "input_ids": torch.full((len(rows), width), pad_id),
            "labels": torch.full((len(rows), width), IGNORE),
            "attention_mask": torch.zeros((len(rows), width), dtype=torch.long),
        }
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            out["input_ids"][i, :n], out["labels"][i, :n], out["attention_mask"][i, :n] = r["input_ids"], r["labels"], 1
        return out

    step_losses: list[float] = []
    epoch_losses: list[float] = []

    class Recorded(Trainer):
        def get_train_dataloader(self):
            return torch.utils.data.DataLoader(
                self.train_dataset, batch_sampler=_SameBatches(len(data), cfg.batch_size, seed), collate_fn=collate
            )

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            step_losses.append(float((out[0] if return_outputs else out).detach()))
            return out

    class EveryEpoch(TrainerCallback):
        def on_epoch_end(self, args, state, control, **kwargs):
            epoch_losses.append(sum(step_losses[-steps_per_epoch:]) / steps_per_epoch)
            on_epoch_end(len(epoch_losses), epoch_losses[-1], len(epoch_losses) * steps_per_epoch)

    optimizer = make_optimizer(model, cfg)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, steps_per_epoch * epochs))
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            num_train_epochs=epochs,
            per_device_train_batch_size=cfg.batch_size,
            max_grad_norm=cfg.grad_clip,
            logging_strategy="no",
            save_strategy="no",
            report_to="none",
            use_cpu=next(model.parameters()).device.type == "cpu",
            disable_tqdm=True,
            seed=seed,
            remove_unused_columns=False,
            dataloader_num_workers=0,
        )
        trainer = Recorded(
            model=model, args=args, train_dataset=_Rows(data, eos_id), callbacks=[EveryEpoch()], optimizers=(optimizer, schedule)
        )
        trainer.remove_callback(PrinterCallback)  # its end-of-training dict on stdout
        trainer.train()
    return epoch_losses


def reference_eval(suite: EvalSuite, model, tokenizer, mode: str = "generate", batch_size: int = 512, max_new_tokens: int = 8) -> dict:
    """EvalSuite.run's contract the reference's way: every test set generated on its own, greedily, in left-padded batches
    (an item in several sets is decoded once per set), EM and F1 from the text.

    transformers' text-generation pipeline, which the reference wrapped around generate, is not used: its return_full_text=False
    cuts the prompt off by the length of the *decoded* prompt, which for our word-level tokenizer is not the prompt's length,
    and 9 of 14 test sets then scored differently (measured). Decoding goes through evaluate.generate, so scores are comparable."""
    out = {}
    for name, items in suite.sets.items():
        preds = evaluate.generate(model, tokenizer, [ex.prompt for ex in items], batch_size, max_new_tokens)
        out[name] = {
            "em": sum(evaluate.exact_match(p, ex.answer) for p, ex in zip(preds, items)) / len(items),
            "f1": sum(evaluate.f1(p, ex.answer) for p, ex in zip(preds, items)) / len(items),
        }
    return out


def _timed(fn, total: list):
    """fn, adding the seconds spent in it to total[0] (a plain function, so it binds as a method where fn was one)."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            total[0] += time.perf_counter() - start

    return wrapper


def pipeline_comparison(cfg: ExperimentConfig) -> dict:
    """The same main experiment twice, end to end and one after the other: ours (fast EM every epoch, generation at each stage's
    end) and the usual pipeline (Trainer, generation of every test set every epoch). Both wall times, the part spent evaluating,
    and how far their trajectories agree."""
    results = {}
    for name in ("ours", "trainer+generate"):
        with tempfile.TemporaryDirectory() as cache:  # each pipeline trains everything itself, Stage 0 included
            run = dataclasses.replace(cfg.run, cache_dir=cache, eval_mode="fast" if name == "ours" else "generate", n_jobs=1)
            this = dataclasses.replace(cfg, run=run)
            evaluating = [0.0]
            timed = _timed(EvalSuite.run if name == "ours" else reference_eval, evaluating)
            train = experiment.train_stage if name == "ours" else trainer_stage
            start = time.perf_counter()
            metrics, _ = experiment.run_experiment(this, progress=False, train=train, score=timed)
            results[name] = (time.perf_counter() - start, evaluating[0], metrics)
    keys = ["seed", "seed_stage2", "stage", "epoch", "subset"]

    def cells(frame, metric):
        return frame[frame["metric"] == metric].set_index(keys)["value"]

    (ours_s, ours_eval, ours), (theirs_s, theirs_eval, theirs) = results["ours"], results["trainer+generate"]
    # Training: both losses are the mean cross-entropy over the same targets, after the same batches, optimiser and clipping, but
    # the Trainer's is summed over full-vocabulary logits at every position: float rounding differs in the last bits and, over
    # hundreds of steps, the trajectories drift apart. Scores: at each stage's last epoch ours also decodes greedily ("em_generate"),
    # which is what the usual pipeline scores every epoch.
    loss = pd.concat({"ours": cells(ours, "loss"), "theirs": cells(theirs, "loss")}, axis=1, join="inner")
    rel = (loss["ours"] - loss["theirs"]).abs() / loss["theirs"]
    ends = pd.concat({"ours": cells(ours, "em_generate"), "theirs": cells(theirs, "em")}, axis=1, join="inner")
    return {
        "ours_s": ours_s,
        "ours_eval_s": ours_eval,
        "trainer_generate_s": theirs_s,
        "trainer_generate_eval_s": theirs_eval,
        "speedup": theirs_s / ours_s,
        "eval_speedup": theirs_eval / ours_eval,
        "loss_epochs": len(loss),
        "loss_first_epoch_rel_diff": float(rel.iloc[0]),
        "loss_max_rel_diff": float(rel.max()),
        "stage_end_em_cells": len(ends),
        "stage_end_em_mean_abs_diff": float((ends["ours"] - ends["theirs"]).abs().mean()),
    }


def fast_vs_generate(cfg: ExperimentConfig) -> dict:
    """A model after Stage 1 of this config (trained here), then every test set scored three ways: teacher-forced (ours), our batched
    greedy generation (items shared by sets decoded once), and the reference's way (reference_eval): agreement and speed."""
    people = load_people(cfg)
    with tempfile.TemporaryDirectory() as cache:
        cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, cache_dir=cache, n_jobs=1))
        stage0_dir, _ = stage0.run_stage0(cfg, people, progress=False)
        model, tokenizer = models.load_saved(stage0_dir)
        draw = make_define_data(people, cfg.data, cfg.run.seed, 0)
        train_stage(model, encode(draw.train[cfg.stages[0]], tokenizer, cfg.train.loss_on), cfg.train, cfg.train.stage_epochs[0], 0)
    suite = EvalSuite(draw.eval_sets)
    timings, scores = {}, {}
    for mode, run in (("fast", EvalSuite.run), ("generate", EvalSuite.run), ("pipeline", reference_eval)):
        start = time.perf_counter()
        scores[mode] = run(
            suite, model, tokenizer, "fast" if mode == "fast" else "generate", cfg.run.eval_batch_size, cfg.run.max_new_tokens
        )
        timings[mode] = time.perf_counter() - start
    # Equal to within float32 rounding: the teacher-forced EM is a float32 mean, reference_eval's a Python float of the same count.
    same = {m: sum(abs(scores["fast"][k]["em"] - scores[m][k]["em"]) < 1e-6 for k in scores["fast"]) for m in ("generate", "pipeline")}
    # The same on the untrained network, which never emits EOS: generation then runs all max_new_tokens steps, as a half-trained
    # model does early in every stage, while the teacher-forced pass costs what it always costs.
    # (From-scratch sizes only: a pretrained model has no untrained state to compare.)
    if cfg.model.from_scratch:
        untrained = models.build_scratch_model(cfg.model.name, tokenizer, cfg.model.tie_embeddings, cfg.run.stage0_seed)
        for mode in ("fast", "generate"):
            start = time.perf_counter()
            EvalSuite.run(suite, untrained, tokenizer, mode, cfg.run.eval_batch_size, cfg.run.max_new_tokens)
            timings[f"untrained_{mode}"] = time.perf_counter() - start
    else:
        timings["untrained_fast"] = timings["untrained_generate"] = math.nan
    return {
        "items": len(suite.items),
        "sets": len(suite.sets),
        "sets_identical": same["generate"],
        "untrained_fast_s": timings["untrained_fast"],
        "untrained_generate_s": timings["untrained_generate"],
        "untrained_speedup": timings["untrained_generate"] / timings["untrained_fast"],
        "sets_identical_pipeline": same["pipeline"],
        "fast_s": timings["fast"],
        "generate_s": timings["generate"],
        "pipeline_s": timings["pipeline"],
        "speedup": timings["generate"] / timings["fast"],
        "speedup_pipeline": timings["pipeline"] / timings["fast"],
        "mean_em": sum(v["em"] for v in scores["fast"].values()) / len(scores["fast"]),
    }


def peak_memory(params: dict, interval: float = 0.2) -> dict:
    """Run 01_main_two_stage through the CLI (papermill, kernel, seed workers) and sample the resident memory of its whole process
    tree: the peak of the sum, and of the largest single process."""
    import psutil

    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "iml_nb", "run", "01_main_two_stage", "--outputs", tmp]
        for name, value in {**params, "cache_dir": str(Path(tmp) / "cache")}.items():
            argv += ["-p", name, str(value)]
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        root, peak_sum, peak_one = psutil.Process(proc.pid), 0, 0
        while proc.poll() is None:
            try:
                rss = [p.memory_info().rss for p in [root, *root.children(recursive=True)]]
            except psutil.Error:  # a process ended between listing and reading
                continue
            peak_sum, peak_one = max(peak_sum, sum(rss)), max(peak_one, max(rss))
            time.sleep(interval)
        _, err = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"the main run failed: {err[-2000:]}")
    return {
        "peak_rss_total_gb": peak_sum / 2**30,
        "peak_rss_largest_process_gb": peak_one / 2**30,
        "wall_s": time.perf_counter() - start,
        **params,
    }


PRETRAINED_SCALE = dict(  # the pretrained experiment's setting: real people, no Stage 0, the paper's fresh random aliases
    model="smollm2-135m", people_source="wordnet", n_people=400, stage0_epochs=0, alias_pool=0, batch_size=16, lr=5e-5, n_jobs=1
)


def pretrained_fine_tuning(ranks=(0, 8, 32), steps: int = 12, scale: dict | None = None) -> list[dict]:
    """Stage-1 training speed of the pretrained model at each LoRA rank (0: full fine-tuning) on the main experiment's Stage-1 data:
    one warm-up pass and one timed pass over the same `steps` batches, on all cores; the epoch time is extrapolated by tokens."""
    params = {**PRETRAINED_SCALE, **(scale or {})}
    cfg, model, data = stage1_training(params.pop("model"), **params)
    take = torch.arange(min(len(data), steps * cfg.train.batch_size))
    part = Encoded(data.input_ids[take], data.targets[take], data.lengths[take], data.prompt_lengths[take])
    out = []
    for rank in ranks:
        with lora.adapters(model, rank):
            share = lora.trainable_share(model)
            _, seconds, loss = timed_epochs(model, part, cfg.train)
        tokens_per_s = int(part.lengths.sum()) / seconds
        out.append(
            {
                "lora_rank": rank,
                "trainable_share": share,
                "tokens_per_s": tokens_per_s,
                "stage1_examples": len(data),
                "stage1_epoch_min": int(data.lengths.sum()) / tokens_per_s / 60,
                "timed_steps": math.ceil(len(part) / cfg.train.batch_size),
                "loss": loss,
            }
        )
    return out


def run_all(
    sizes=("pythia-tiny", "pythia-small", "pythia-base"), scale: dict | None = None, memory_params: dict | None = None, report=print
) -> dict:
    """Every figure, printed as it is measured; returns them all (the CLI writes them to a JSON file when asked)."""
    scale = {**BENCH_SCALE, **(scale or {})}
    out: dict = {"machine": {"cpus": os.cpu_count(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}, "scale": scale}
    report(f"bench on {os.cpu_count()} CPUs ({out['machine']['cpu_capability']}); main-experiment scale {scale}")
    out["utilisation"] = []
    for name in sizes:
        for threads in sorted({1, os.cpu_count() or 1}):
            u = utilisation(name, threads)
            out["utilisation"].append(u)
            report(
                f"[1] {name:13s} {threads} thread(s): {u['tokens_per_s']:8.0f} tok/s, {u['model_gflops']:6.1f} model GFLOP/s of a "
                f"{u['peak_gflops']:6.1f} GFLOP/s matmul peak = utilisation {u['utilisation']:.2f} "
                f"(6N·tokens only: {u['utilisation_6N']:.2f})"
            )
    torch.set_num_threads(os.cpu_count() or 1)
    cfg = build_config(**scale)
    p = pipeline_comparison(cfg)
    out["pipeline"] = p
    report(
        f"[2] same main experiment: ours {p['ours_s']:.1f} s (evaluation {p['ours_eval_s']:.1f} s), Trainer + generation every "
        f"epoch {p['trainer_generate_s']:.1f} s (evaluation {p['trainer_generate_eval_s']:.1f} s): {p['speedup']:.1f}x end to end, "
        f"{p['eval_speedup']:.1f}x on evaluation; training loss: first epoch equal to {p['loss_first_epoch_rel_diff']:.0e}, drifting "
        f"to {p['loss_max_rel_diff']:.1%} over {p['loss_epochs']} epochs; greedy EM at stage ends differ by "
        f"{p['stage_end_em_mean_abs_diff']:.3f} on average ({p['stage_end_em_cells']} cells)"
    )
    f = fast_vs_generate(cfg)
    out["fast_em"] = f
    report(
        f"[3] fast EM vs generation on a trained model ({f['items']} items in {f['sets']} test sets): identical EM in "
        f"{f['sets_identical']} sets vs our batched generation, {f['sets_identical_pipeline']} vs per-set generation as the reference; "
        f"{f['fast_s']:.2f} s vs {f['generate_s']:.2f} s ({f['speedup']:.1f}x) "
        f"and {f['pipeline_s']:.2f} s ({f['speedup_pipeline']:.1f}x)"
        + (
            ""
            if math.isnan(f["untrained_speedup"])
            else f"; on the untrained network (never stops) {f['untrained_fast_s']:.2f} s vs "
            f"{f['untrained_generate_s']:.2f} s ({f['untrained_speedup']:.1f}x)"
        )
    )
    m = peak_memory(memory_params if memory_params is not None else {k: v for k, v in scale.items() if k != "n_jobs"})
    out["memory"] = m
    report(
        f"[4] main run through the notebook: peak resident memory {m['peak_rss_total_gb']:.2f} GB summed over its processes "
        f"(largest single process {m['peak_rss_largest_process_gb']:.2f} GB), {m['wall_s']:.0f} s"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    """The command line: options checked (and named) before anything is measured; figures printed, and written with --json."""
    from iml_nb.__main__ import collect_parameters
    from iml_nb.core.config import SCRATCH_SIZES
    from iml_nb.core.results import atomic_write_json

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="pythia-tiny,pythia-small,pythia-base", help="model sizes for the utilisation figure")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a main-experiment parameter for figures 2-4, on top of BENCH_SCALE (200 people, 10+5+3 epochs, 1 seed)",
    )
    parser.add_argument(
        "--memory-defaults",
        action="store_true",
        help="figure 4 on the main experiment at its full defaults (~14 min) instead of the bench scale",
    )
    parser.add_argument(
        "--pretrained",
        metavar="RANKS",
        help="only figure 5: SmolLM2-135M Stage-1 speed at these LoRA ranks, comma-separated (0: full fine-tuning), e.g. 0,8,32",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    try:
        sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
        unknown = [s for s in sizes if s not in SCRATCH_SIZES]
        if not sizes or unknown:
            raise ValueError(f"--sizes: named from-scratch sizes among {list(SCRATCH_SIZES)}, got {args.sizes!r}")
        scale = {**BENCH_SCALE, **collect_parameters([], args.parameter)}
        build_config(**scale)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.pretrained is not None:
        try:
            ranks = [int(r) for r in args.pretrained.split(",")]
            if not ranks or min(ranks) < 0:
                raise ValueError
            build_config(**PRETRAINED_SCALE)  # the model wheel and WordNet are here, or the error names what is missing
        except ValueError as exc:
            print(f"error: --pretrained: comma-separated LoRA ranks >= 0, got {args.pretrained!r} {exc}".rstrip(), file=sys.stderr)
            return 1
        print(f"bench on {os.cpu_count()} CPUs ({torch.backends.cpu.get_cpu_capability()}); {PRETRAINED_SCALE}")
        figures = {"pretrained": pretrained_fine_tuning(ranks)}
        for f in figures["pretrained"]:
            print(
                f"[5] lora_rank {f['lora_rank']:3d} ({f['trainable_share']:.2%} of the weights train): {f['tokens_per_s']:6.0f} tok/s, "
                f"a Stage-1 epoch ({f['stage1_examples']} examples) {f['stage1_epoch_min']:.1f} min"
            )
    else:
        figures = run_all(sizes, scale, memory_params={} if args.memory_defaults else None)
    if args.json:
        atomic_write_json(args.json, figures)
    return 0


__all__ = [
    "BENCH_SCALE",
    "fast_vs_generate",
    "matmul_peak",
    "model_flops",
    "peak_memory",
    "pipeline_comparison",
    "pretrained_fine_tuning",
    "run_all",
    "stage1_training",
    "timed_epochs",
    "trainer_stage",
    "utilisation",
]


if __name__ == "__main__":
    sys.exit(main())
