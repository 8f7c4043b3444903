"""People with six attributes and their QA pairs: the CVDB source of paper §2.4 (reference code §2.1), real or synthetic."""

from __future__ import annotations

import dataclasses
import numbers
import os
import random
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from faker import Faker

from iml_nb.core.parameters import require, require_int

if TYPE_CHECKING:
    from iml_nb.people_qa.config import ExperimentConfig

QUESTION_TYPES: tuple[tuple[str, str], ...] = (
    ("gender", "What was the gender of {}?"),
    ("birth", "When was {} born?"),
    ("death", "When did {} die?"),
    ("region", "In which region did {} live?"),
    ("occupation", "What did {} do?"),
    ("nationality", "What was the nationality of {}?"),
)
_QTYPES = tuple(q for q, _ in QUESTION_TYPES)


@dataclasses.dataclass(frozen=True)
class Person:
    name: str
    gender: str
    birth: str
    death: str
    region: str
    occupation: str
    nationality: str

    def answer(self, qtype: str) -> str:
        if qtype not in _QTYPES:
            raise ValueError(f"qtype must be one of {_QTYPES}, got {qtype!r}")
        return getattr(self, qtype)


def convert_year(year: int) -> str:
    """Anonymise a year as CVDB does: centuries up to 1900, decades in the 1900s, exact years from 2000."""
    if year <= 1900:
        century = (abs(year) + 99) // 100
        return f"{century} century" + (" BC" if year < 0 else "")
    if year < 2000:
        return f"{year // 10 * 10}s"
    return str(year)


def qa_pairs(person: Person, subject: str | None = None) -> list[tuple[str, str, str]]:
    """(qtype, question, answer) for the question types the person has an answer to (six for CVDB-like people; WordNet people
    have no gender); `subject` replaces the name (e.g. an alias)."""
    who = person.name if subject is None else subject
    return [(q, template.format(who), person.answer(q)) for q, template in QUESTION_TYPES if person.answer(q)]


def people_frame(people: Iterable[Person]) -> pd.DataFrame:
    """One row per person, columns name + the six attributes in QUESTION_TYPES order."""
    return pd.DataFrame([dataclasses.asdict(p) for p in people], columns=["name", *_QTYPES])


def _check_n(n: object, minimum: int = 1) -> None:
    # bool is an Integral too, but n=True is surely a mistake.
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < minimum:
        raise ValueError(f"n must be an int >= {minimum}, got {n!r}")


# ---------------------------------------------------------------- synthetic people
# Weights are made up, but shaped like CVDB: Europe and North America dominate, most people are from the 1900s,
# occupations depend on era and (mildly) on gender, so a model that knows nothing about a person can beat uniform guessing.
_REGIONS: dict[str, tuple[float, tuple[str, ...]]] = {
    "Western Europe": (16, ("France", "Germany", "Netherlands", "Belgium", "Switzerland")),
    "Northern Europe": (14, ("United Kingdom", "Sweden", "Norway", "Denmark", "Ireland")),
    "Southern Europe": (12, ("Italy", "Spain", "Greece", "Portugal")),
    "Eastern Europe": (10, ("Russia", "Poland", "Hungary", "Czechia")),
    "Northern America": (14, ("United States", "Canada")),
    "South America": (6, ("Brazil", "Argentina", "Chile", "Colombia")),
    "Central America": (4, ("Mexico", "Cuba", "Guatemala")),
    "Eastern Asia": (8, ("China", "Japan", "Korea")),
    "Southern Asia": (6, ("India", "Iran", "Pakistan")),
    "Western Asia": (4, ("Turkey", "Israel", "Lebanon")),
    "Northern Africa": (3, ("Egypt", "Morocco", "Algeria")),
    "Australia and New Zealand": (3, ("Australia", "New Zealand")),
}
# (occupation, weight if male, weight if female)
_OLD_OCCUPATIONS = (("king", 3, 1), ("philosopher", 3, 2), ("painter", 3, 4), ("military", 4, 1), ("religious", 3, 5), ("composer", 2, 2))
_MODERN_OCCUPATIONS = (
    ("actor", 3, 6),
    ("footballer", 4, 1),
    ("film director", 3, 1),
    ("musician", 3, 3),
    ("politician", 4, 3),
    ("scientist", 3, 2),
    ("singer", 2, 5),
    ("writer", 3, 4),
)
_P_MODERN = 0.6  # share born 1901..1975; later births could not have died by 2020 at 30+
_CENTURIES = (*range(-5, 0), *range(1, 20))  # 5 century BC .. 19 century, oldest first
_LAST_DEATH = 2020
_NAME_RE = re.compile(r"[A-Za-z]+ [A-Za-z]+")


def _cumulative(weights: Iterable[float]) -> np.ndarray:
    c = np.cumsum(np.asarray(list(weights), dtype=float))
    return c / c[-1]


def _probabilities(weights: Iterable[float]) -> np.ndarray:
    w = np.asarray(list(weights), dtype=float)
    return w / w.sum()


_CENTURY_P = _probabilities(1.25 ** np.arange(len(_CENTURIES)))  # each century 1.25x as many as the one before


def _pick(cum: np.ndarray, u: float) -> int:
    # Inverse-CDF with one uniform per person: one vectorised rng draw instead of a per-person rng.choice.
    return int(np.searchsorted(cum, u, side="right"))


def _unique_names(draw: Callable[[], str], count: int, taken: set[str], max_tries: int) -> list[str]:
    """Draw `count` new full names (letters and one space) not in `taken`; adds them to `taken`."""
    names: list[str] = []
    for _ in range(max_tries):
        if len(names) == count:
            break
        name = draw()
        if _NAME_RE.fullmatch(name) and name not in taken:
            taken.add(name)
            names.append(name)
    if len(names) < count:
        raise ValueError(f"n too large: Faker produced only {len(names)} of {count} unique names in {max_tries} tries")
    return names


def synthetic_people(n: int, seed: int) -> tuple[Person, ...]:
    """`n` fake people, deterministic in (n, seed): n//2 male, n - n//2 female (odd n gives one extra female)."""
    _check_n(n)
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    n_male, n_female = n // 2, n - n // 2
    fake = Faker("en_US")
    fake.seed_instance(int(seed))
    taken: set[str] = set()
    tries = 10 * n + 1000
    names = _unique_names(lambda: f"{fake.first_name_female()} {fake.last_name()}", n_female, taken, tries) + _unique_names(
        lambda: f"{fake.first_name_male()} {fake.last_name()}", n_male, taken, tries
    )
    genders = ["female"] * n_female + ["male"] * n_male

    rng = np.random.default_rng(seed)
    modern = rng.random(n) < _P_MODERN
    century = np.asarray(_CENTURIES)[rng.choice(len(_CENTURIES), size=n, p=_CENTURY_P)]
    # Century c spans 100(c-1)+1 .. 100c AD, and -100|c| .. -100(|c|-1)-1 BC.
    old_birth = np.where(century > 0, 100 * (century - 1) + 1, 100 * century) + rng.integers(0, 100, n)
    old_death = old_birth + rng.integers(20, 91, n)
    old_death = np.where((old_birth < 0) & (old_death >= 0), old_death + 1, old_death)  # there is no year 0
    modern_birth = rng.integers(1901, 1976, n)
    modern_death = modern_birth + rng.integers(30, np.minimum(100, _LAST_DEATH + 1 - modern_birth))
    birth = np.where(modern, modern_birth, old_birth)
    death = np.where(modern, modern_death, old_death)

    region_names = list(_REGIONS)
    region_idx = rng.choice(len(region_names), size=n, p=_probabilities([w for w, _ in _REGIONS.values()]))
    # Within a region the first-listed countries are more common (weights k, k-1, ..., 1).
    nation_cum = {r: _cumulative(range(len(c), 0, -1)) for r, (_, c) in _REGIONS.items()}
    occ_cum = {
        (era, g): _cumulative(row[1 if g == "male" else 2] for row in table)
        for era, table in ((False, _OLD_OCCUPATIONS), (True, _MODERN_OCCUPATIONS))
        for g in ("male", "female")
    }
    u_nation, u_occ = rng.random(n), rng.random(n)

    people = []
    for i in range(n):
        region = region_names[region_idx[i]]
        countries = _REGIONS[region][1]
        table = _MODERN_OCCUPATIONS if modern[i] else _OLD_OCCUPATIONS
        people.append(
            Person(
                name=names[i],
                gender=genders[i],
                birth=convert_year(int(birth[i])),
                death=convert_year(int(death[i])),
                region=region,
                nationality=countries[_pick(nation_cum[region], u_nation[i])],
                occupation=table[_pick(occ_cum[(bool(modern[i]), genders[i])], u_occ[i])][0],
            )
        )
    # Names were drawn all-female then all-male; shuffle so any prefix of the tuple is roughly balanced.
    return tuple(people[i] for i in rng.permutation(n))


# ---------------------------------------------------------------- the real CVDB file
_CVDB_COLUMNS = ("name", "birth", "death", "gender", "level3_main_occ", "string_citizenship_raw_d", "un_region", "wiki_readers_2015_2018")
_READERS = "wiki_readers_2015_2018"


def _read_people_table(path: str | os.PathLike) -> pd.DataFrame:
    """The CVDB columns of a people table: a CSV (the CVDB release's ISO-8859-1 file), a Parquet file, or a folder saved by
    `datasets` (Dataset.save_to_disk; a DatasetDict's first split). Parquet and saved datasets are read through `datasets`."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".parquet":
        import datasets

        loaded = datasets.load_from_disk(str(path)) if path.is_dir() else datasets.Dataset.from_parquet(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            loaded = loaded[next(iter(loaded))]
        header = loaded.column_names
    else:
        header = pd.read_csv(path, encoding="ISO-8859-1", nrows=0).columns
    missing = [c for c in _CVDB_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"CVDB file {os.fspath(path)!r} lacks required columns: {', '.join(missing)}")
    if path.is_dir() or path.suffix == ".parquet":
        return loaded.select_columns(list(_CVDB_COLUMNS)).to_pandas()
    # usecols: the real file has ~2M rows and many more columns; reading only these keeps memory small.
    return pd.read_csv(path, encoding="ISO-8859-1", usecols=list(_CVDB_COLUMNS), low_memory=False)


def load_cvdb(path: str | os.PathLike, n: int) -> tuple[Person, ...]:
    """The n//2 most-read men and n//2 most-read women of a CVDB table (CSV, Parquet or saved dataset), filtered as the
    reference code does."""
    # n=1 would select nobody (n//2 = 0 per gender), so at least 2.
    _check_n(n, minimum=2)
    df = _read_people_table(path)
    for col in ("birth", "death", _READERS):
        df[col] = pd.to_numeric(df[col], errors="coerce")  # a stray text value becomes NaN and is dropped below
    df = df.dropna(subset=list(_CVDB_COLUMNS))
    df = df.assign(name=df["name"].astype(str).str.replace("_", " "))
    # Dedupe on the displayed name (the reference dedupes raw names), so names stay unique even if raw ones differ only in '_'.
    df = df.drop_duplicates(subset="name", keep="first")
    occupation = df["level3_main_occ"].astype(str).str.replace("_", " ")
    citizenship = df["string_citizenship_raw_d"].astype(str)
    ok = df["name"].str.fullmatch(r"[\w _]+") & occupation.str.fullmatch(r"[\w _]+") & citizenship.str.fullmatch(r"[\w _']+")
    df = df.assign(level3_main_occ=occupation, gender=df["gender"].astype(str).str.lower())[ok.astype(bool)]
    df = df.sort_values([_READERS, "name"], ascending=[False, True], kind="mergesort")

    per_gender = n // 2
    chosen = []
    for gender in ("male", "female"):
        top = df[df["gender"] == gender].head(per_gender)
        if len(top) < per_gender:
            raise ValueError(f"n={n} needs {per_gender} {gender} people but the filtered file has only {len(top)}")
        chosen.append(top)
    df = pd.concat(chosen).sort_values([_READERS, "name"], ascending=[False, True], kind="mergesort")
    return tuple(
        Person(
            name=r.name,
            gender=r.gender,
            birth=convert_year(int(r.birth)),
            death=convert_year(int(r.death)),
            region=str(r.un_region),
            occupation=r.level3_main_occ,
            # As the reference: split the raw citizenship on '_' and keep the first item.
            nationality=r.string_citizenship_raw_d.split("_")[0],
        )
        for r in df.itertuples(index=False)
    )


def load_people(cfg: ExperimentConfig) -> tuple[Person, ...]:
    """The people database a config names: synthetic, WordNet's people, or a CVDB-style table (file or saved dataset)."""
    src = cfg.data.people_source
    if src == "synthetic":
        return synthetic_people(cfg.data.n_people, cfg.data.people_seed)
    if src == "wordnet":
        from iml_nb.people_qa.wordnet import wordnet_people

        return wordnet_people(cfg.data.n_people, cfg.data.people_seed)
    return load_cvdb(src, cfg.data.n_people)


def other_people(cfg: ExperimentConfig, n: int) -> tuple[Person, ...]:
    """`n` people from the same source who are not among the config's: whom a format warm-up may train on without teaching the
    experiment's people's facts (knowledge.knowledge_check). Synthetic: another people seed; WordNet: drawn from the rest with
    the people seed; a CVDB table: the next most-read people."""
    require_int(n, "warmup_people", minimum=0)
    if n == 0:
        return ()
    src = cfg.data.people_source
    taken = {p.name for p in load_people(cfg)}  # by name: the knowledge check refuses a warm-up person named like a checked one
    if src == "synthetic":
        return tuple(p for p in synthetic_people(n + len(taken), cfg.data.people_seed + 1) if p.name not in taken)[:n]
    if src == "wordnet":
        from iml_nb.people_qa.wordnet import all_people

        rest = [p for p in all_people() if p.name not in taken]
        require(n <= len(rest), "warmup_people", f"only {len(rest)} WordNet people are left beside the experiment's {len(taken)}")
        return tuple(random.Random(cfg.data.people_seed).sample(rest, n))
    return tuple(p for p in load_cvdb(src, cfg.data.n_people + n) if p.name not in taken)[:n]
