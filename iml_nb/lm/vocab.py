"""Word-level vocabulary for from-scratch models, built with the `tokenizers` library (our stand-in for a pretrained tokenizer)."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import AddedToken, Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK = "[PAD]", "[EOS]", "[UNK]"
SPECIALS = (PAD, EOS, UNK)


def _atom_tokens(atoms: Iterable[str]) -> list[AddedToken]:
    # single_word: "Ada Smith" must not match inside "Ada Smithson"; normalized=False: match the raw text.
    return [AddedToken(a, single_word=True, normalized=False) for a in atoms]


def build_word_tokenizer(texts: Iterable[str], atoms: Iterable[str]) -> PreTrainedTokenizerFast:
    """Every `atom` (alias, tag, person name, answer value) becomes ONE token; other text splits into words and punctuation.

    Single-token names and aliases are what let a tiny model tie an alias to a person through one embedding
    (docs/background.md, tied embeddings); a deviation from the paper, whose pretrained BPE splits them into pieces.
    """
    atoms = sorted(set(atoms))
    probe = Tokenizer(WordLevel({UNK: 0}, unk_token=UNK))
    probe.pre_tokenizer = Whitespace()
    probe.add_tokens(_atom_tokens(atoms))
    words: set[str] = set()
    for text in texts:
        enc = probe.encode(text)
        words.update(text[a:b] for tok, (a, b) in zip(enc.tokens, enc.offsets) if tok == UNK)
    vocab = {w: i for i, w in enumerate(list(SPECIALS) + atoms + sorted(words - set(atoms) - set(SPECIALS)))}
    tok = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = Whitespace()
    tok.add_special_tokens(list(SPECIALS))
    tok.add_tokens(_atom_tokens(atoms))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK)
