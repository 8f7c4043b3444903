"""Models: Pythia-architecture (GPT-NeoX) networks built from scratch in named sizes, or pretrained causal LMs (paper §2.6, §6.3)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerBase

from iml_nb.core.config import SCRATCH_SIZES, SHIPPED, shipped_location
from iml_nb.core.env import project_path
from iml_nb.core.results import atomic_write_folder, file_digest

DEQUANTIZED_CACHE = "outputs/.cache/dequantized"  # float32 copies of GGUF files: SmolLM2's file takes ~36 s to read, its copy ~1 s
MAX_POSITIONS = 64  # our longest example is ~16 word-level tokens; the paper's block size for CVDB is 48


def resolve_device(name: str = "auto") -> torch.device:
    """ "auto": the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_scratch_model(name: str, tokenizer: PreTrainedTokenizerBase, tie_embeddings: bool, init_seed: int) -> GPTNeoXForCausalLM:
    """A randomly initialised Pythia-style network (parallel residual, 25% rotary), no dropout."""
    d, layers, heads = SCRATCH_SIZES[name]
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=d,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * d,
        max_position_embeddings=MAX_POSITIONS,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        tie_word_embeddings=tie_embeddings,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # HF initialises from the global RNG; fork it so building a model neither depends on nor disturbs other draws.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = GPTNeoXForCausalLM(config)
    return model


def dequantized_copy(gguf_path: Path) -> Path:
    """Where the float32 copy of a local GGUF file is kept: named by the file's content, so a changed file gets a new copy."""
    return project_path(DEQUANTIZED_CACHE) / f"{gguf_path.stem}-{file_digest(gguf_path)}"


def load_pretrained(name_or_path: str, gguf_file: str = "") -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """A Hugging Face id, a local folder (optionally a GGUF file inside it), or a SHIPPED name. Offline runs need the files on disk.

    A local GGUF file is dequantized once and kept as an ordinary float32 checkpoint (DEQUANTIZED_CACHE): the same tensors and
    tokenizer, read ~25x faster by every later load (each seed, notebook and test process loads the model afresh)."""
    if name_or_path in SHIPPED:
        name_or_path, gguf_file = shipped_location(name_or_path)
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    path = Path(name_or_path)
    if path.exists() and not (path.is_dir()):
        raise ValueError(f"parameter `model`: {name_or_path!r} is a file; give its folder as `model` and the file name as `gguf_file`")
    copy = dequantized_copy(path / gguf_file) if gguf_file and (path / gguf_file).is_file() else None
    if copy is not None and (copy / "config.json").is_file():
        return _with_pad(*load_saved(copy))
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=torch.float32, **kwargs)
    except OSError as err:  # offline and not in the local cache, or a folder without model files
        raise ValueError(
            f"parameter `model`: cannot load {name_or_path!r} (named sizes: {list(SCRATCH_SIZES)}; a Hugging Face id "
            f"needs the hub or a filled cache, HF_HUB_OFFLINE is {os.environ.get('HF_HUB_OFFLINE')!r}): {err}"
        ) from err
    if gguf_file:
        # transformers dequantizes a GGUF file to plain float32 weights but keeps a "gguf quantizer" on the model, which makes
        # save_pretrained refuse it; the weights are ordinary tensors now, so the model is saved like any other (Stage-0 cache).
        model.hf_quantizer = None
        model.config.quantization_config = None
        if hasattr(model.config, "_pre_quantization_dtype"):
            del model.config._pre_quantization_dtype
    if copy is not None:
        _save_once(model, tokenizer, copy)
    return _with_pad(model, tokenizer)


def _with_pad(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    if tokenizer.pad_token_id is None:  # Pythia and Llama-style tokenizers have no pad; the reference uses EOS
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _save_once(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """The copy is written whole or not at all (results.atomic_write_folder). One that cannot be written (a read-only project, a
    full disk) is skipped: the model in memory is complete, and later loads read the GGUF file."""
    try:
        atomic_write_folder(folder, lambda tmp: save(model, tokenizer, tmp))
    except OSError:
        pass


def save(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, folder: str | os.PathLike) -> None:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def load_saved(folder: str | os.PathLike) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), AutoTokenizer.from_pretrained(folder)


def n_params(model: torch.nn.Module, non_embedding: bool = False) -> int:
    params = {id(p): p for p in model.parameters()}  # tied weights count once
    total = sum(p.numel() for p in params.values())
    if non_embedding:
        total -= model.get_input_embeddings().weight.numel()
    return total
