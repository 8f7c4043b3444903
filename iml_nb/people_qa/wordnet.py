"""Real people, offline: WordNet 3.0's `noun.person` instances with a life span, from Debian's `wordnet-base` (BSD-style licence).

A synset such as `Abel | Niels_Abel | Niels_Henrik_Abel -- @i mathematician -- "Norwegian mathematician (1802-1829)"` gives a
name, an occupation (its instance hypernym), a nationality (the gloss's first words, looked up in NATIONALITIES, which also gives the
region) and birth and death years (the gloss's `(YYYY-YYYY)`, anonymised to centuries/decades as CVDB does). Gender is left out:
WordNet does not state it, and guessing it from names or pronouns in glosses would put errors into the answers (qa_pairs skips an
empty attribute, so WordNet people have five questions, not six). Parsing the data file takes a few dozen lines; no nltk."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

from iml_nb.core.parameters import ConfigError
from iml_nb.people_qa.people import Person, convert_year

WORDNET_DIR = Path(os.environ.get("IML_NB_WORDNET_DIR", "/usr/share/wordnet"))
INSTALL = "sudo apt-get install wordnet-base"
PERSON_LEXFILE = "18"  # noun.person
_LIFESPAN = re.compile(r"\((\d{3,4})-(\d{3,4})\)\s*$")

# gloss prefix -> (nationality, region); longest prefixes are tried first. Regions follow the UN's geoscheme, as CVDB's do.
NATIONALITIES = {
    "United States": ("American", "Northern America"),
    "American": ("American", "Northern America"),
    "Canadian": ("Canadian", "Northern America"),
    "English": ("English", "Northern Europe"),
    "British": ("British", "Northern Europe"),
    "Scottish": ("Scottish", "Northern Europe"),
    "Welsh": ("Welsh", "Northern Europe"),
    "Irish": ("Irish", "Northern Europe"),
    "Swedish": ("Swedish", "Northern Europe"),
    "Norwegian": ("Norwegian", "Northern Europe"),
    "Danish": ("Danish", "Northern Europe"),
    "Finnish": ("Finnish", "Northern Europe"),
    "Icelandic": ("Icelandic", "Northern Europe"),
    "French": ("French", "Western Europe"),
    "German": ("German", "Western Europe"),
    "Prussian": ("German", "Western Europe"),
    "Dutch": ("Dutch", "Western Europe"),
    "Flemish": ("Belgian", "Western Europe"),
    "Belgian": ("Belgian", "Western Europe"),
    "Swiss": ("Swiss", "Western Europe"),
    "Austrian": ("Austrian", "Western Europe"),
    "Italian": ("Italian", "Southern Europe"),
    "Florentine": ("Italian", "Southern Europe"),
    "Venetian": ("Italian", "Southern Europe"),
    "Spanish": ("Spanish", "Southern Europe"),
    "Portuguese": ("Portuguese", "Southern Europe"),
    "Greek": ("Greek", "Southern Europe"),
    "Roman": ("Roman", "Southern Europe"),
    "Russian": ("Russian", "Eastern Europe"),
    "Polish": ("Polish", "Eastern Europe"),
    "Czech": ("Czech", "Eastern Europe"),
    "Hungarian": ("Hungarian", "Eastern Europe"),
    "Romanian": ("Romanian", "Eastern Europe"),
    "Bulgarian": ("Bulgarian", "Eastern Europe"),
    "Ukrainian": ("Ukrainian", "Eastern Europe"),
    "Serbian": ("Serbian", "Southern Europe"),
    "Croatian": ("Croatian", "Southern Europe"),
    "Mexican": ("Mexican", "Latin America"),
    "Brazilian": ("Brazilian", "Latin America"),
    "Argentine": ("Argentine", "Latin America"),
    "Chilean": ("Chilean", "Latin America"),
    "Cuban": ("Cuban", "Latin America"),
    "Peruvian": ("Peruvian", "Latin America"),
    "Venezuelan": ("Venezuelan", "Latin America"),
    "Colombian": ("Colombian", "Latin America"),
    "Japanese": ("Japanese", "Eastern Asia"),
    "Chinese": ("Chinese", "Eastern Asia"),
    "Korean": ("Korean", "Eastern Asia"),
    "Indian": ("Indian", "Southern Asia"),
    "Persian": ("Persian", "Southern Asia"),
    "Israeli": ("Israeli", "Western Asia"),
    "Turkish": ("Turkish", "Western Asia"),
    "Arabian": ("Arab", "Western Asia"),
    "Egyptian": ("Egyptian", "Africa"),
    "South African": ("South African", "Africa"),
    "Australian": ("Australian", "Oceania"),
    "New Zealand": ("New Zealander", "Oceania"),
}
_BY_LENGTH = sorted(NATIONALITIES, key=len, reverse=True)
_NAME_OK = re.compile(r"[\w ]+")


def data_file() -> Path:
    path = WORDNET_DIR / "data.noun"
    if not path.is_file():
        raise ConfigError(
            f"parameter `people_source`: 'wordnet' needs WordNet 3.0 at {WORDNET_DIR} (Debian's wordnet-base: "
            f"`{INSTALL}`; or set IML_NB_WORDNET_DIR to a folder holding data.noun)"
        )
    return path


def _name(lemmas: list[str]) -> str:
    """The first multi-word lemma ("Niels Abel"), which is how most people are known; a one-word lemma where there is none."""
    multi = [lemma for lemma in lemmas if "_" in lemma]
    return (multi[0] if multi else lemmas[0]).replace("_", " ")


def all_people() -> tuple[Person, ...]:
    """Every WordNet person with a life span, a known nationality and an occupation, in the data file's order; names unique."""
    first_lemma: dict[str, str] = {}
    candidates = []
    for line in data_file().read_text(encoding="utf-8").splitlines():
        if line.startswith(" "):  # the licence header
            continue
        fields, _, gloss = line.partition(" | ")
        parts = fields.split()
        offset, lexfile, n_words = parts[0], parts[1], int(parts[3], 16)
        lemmas = parts[4 : 4 + 2 * n_words : 2]
        first_lemma[offset] = lemmas[0].split("(")[0]
        if lexfile != PERSON_LEXFILE:
            continue
        n_ptr_at = 4 + 2 * n_words
        pointers = parts[n_ptr_at + 1 :]
        instance_of = [pointers[i + 1] for i in range(0, len(pointers) - 3, 4) if pointers[i] == "@i"]
        span = _LIFESPAN.search(gloss.strip())
        nationality = next((p for p in _BY_LENGTH if gloss.startswith(p + " ")), None)
        if instance_of and span and nationality:
            candidates.append((lemmas, instance_of[0], int(span.group(1)), int(span.group(2)), nationality))
    people, seen = [], set()
    for lemmas, hypernym, born, died, prefix in candidates:
        name, occupation = _name(lemmas), first_lemma.get(hypernym, "").replace("_", " ")
        if name in seen or not occupation or not _NAME_OK.fullmatch(name) or not _NAME_OK.fullmatch(occupation) or died < born:
            continue
        seen.add(name)
        nationality, region = NATIONALITIES[prefix]
        people.append(
            Person(
                name=name,
                gender="",
                birth=convert_year(born),
                death=convert_year(died),
                region=region,
                occupation=occupation,
                nationality=nationality,
            )
        )
    return tuple(people)


def wordnet_people(n: int, seed: int) -> tuple[Person, ...]:
    """n of them, drawn with Random(seed) (the people_seed), in the data file's order."""
    people = all_people()
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(people):
        raise ValueError(f"parameter `n_people`: WordNet has {len(people)} usable people, got {n!r}")
    chosen = sorted(random.Random(seed).sample(range(len(people)), n))
    return tuple(people[i] for i in chosen)


__all__ = ["INSTALL", "NATIONALITIES", "WORDNET_DIR", "all_people", "wordnet_people"]
