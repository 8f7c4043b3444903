"""Fast unit tests for iml_nb.people_qa.people (paper §2.4: the CVDB people and their six questions)."""

import collections
import hashlib
import os
import subprocess
import sys

import pandas as pd
import pytest

from iml_nb.people_qa import people as people_mod
from iml_nb.people_qa.people import QUESTION_TYPES, Person, convert_year, load_cvdb, people_frame, qa_pairs, synthetic_people

N = 400


@pytest.fixture(scope="module")
def crowd():
    return synthetic_people(N, seed=3)


@pytest.fixture(scope="module")
def big_frame():
    return people_frame(synthetic_people(1000, seed=5))


def _digest(people) -> str:
    return hashlib.sha256(repr(people).encode()).hexdigest()


@pytest.mark.parametrize(
    "year, text",
    [
        (2020, "2020"),
        (1923, "1920s"),
        (1222, "13 century"),
        (-122, "2 century BC"),
        (2000, "2000"),
        (1900, "19 century"),
        (1901, "1900s"),
        (1999, "1990s"),
        (-1, "1 century BC"),
        (1, "1 century"),
        (100, "1 century"),
    ],
)
def test_convert_year(year, text):
    assert convert_year(year) == text


def test_synthetic_is_deterministic_and_seed_dependent(crowd):
    assert synthetic_people(N, seed=3) == crowd
    other = synthetic_people(N, seed=4)
    assert other != crowd
    assert {p.name for p in other} != {p.name for p in crowd}


@pytest.mark.slow
def test_synthetic_is_identical_in_a_fresh_process(crowd):
    code = (
        "import hashlib; from iml_nb.people_qa.people import synthetic_people; "
        f"print(hashlib.sha256(repr(synthetic_people({N}, seed=3)).encode()).hexdigest())"
    )
    # A different PYTHONHASHSEED: set/dict iteration over strings must not leak into the draws.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout.strip()
    assert out == _digest(crowd)


@pytest.mark.parametrize("n", [1, 2, 7, 50])
def test_gender_balance(n):
    genders = collections.Counter(p.gender for p in synthetic_people(n, seed=0))
    assert genders["male"] == n // 2
    assert genders["female"] == n - n // 2
    assert set(genders) <= {"male", "female"}


def test_names_unique_and_clean(crowd):
    names = [p.name for p in crowd]
    assert len(set(names)) == len(names) == N
    assert all(len(name.split(" ")) == 2 and name.replace(" ", "").isalpha() and name.isascii() for name in names)


def test_attributes_are_anonymised_years_and_known_values(crowd):
    assert all(p.birth.endswith(("century", "century BC", "0s")) for p in crowd)
    # Deaths from 2000 on are exact years (as convert_year gives); never a "2010s"-style decade, never after 2020.
    for p in crowd:
        if p.death.isdigit():
            assert 2000 <= int(p.death) <= 2020
        else:
            assert not p.death.startswith("20")
    assert all(p.death != "alive" for p in crowd)


def _century_ordinal(text: str) -> int:
    """Consecutive numbers for centuries, with no gap at year 0: 1 century BC -> 0, 1 century -> 1, 1950s -> 20."""
    if "century" in text:
        c = int(text.split()[0])
        return 1 - c if text.endswith("BC") else c
    return (int(text.rstrip("s")) + 99) // 100


def test_death_follows_birth(crowd):
    for p in crowd:
        if "century" in p.birth:  # same or next century
            assert _century_ordinal(p.death) - _century_ordinal(p.birth) in (0, 1), p
        else:  # 3 to 9 decades later
            assert 30 <= int(p.death.rstrip("s")) - int(p.birth.rstrip("s")) <= 99 + 9, p  # birth shown as its decade


def test_nationality_determines_region(crowd):
    regions_of = collections.defaultdict(set)
    for p in crowd:
        regions_of[p.nationality].add(p.region)
    assert all(len(r) == 1 for r in regions_of.values())
    assert len({p.region for p in crowd}) >= 10
    assert all(
        2 <= len({p.nationality for p in crowd if p.region == r}) <= 5
        for r in {p.region for p in crowd}
        if sum(p.region == r for p in crowd) >= 40
    )


def test_birth_era_skews_recent(big_frame):
    births = big_frame["birth"]
    modern = births.str.endswith("0s")
    assert 0.5 < modern.mean() < 0.7
    old = births[~modern].value_counts()
    assert old.index[0] in ("19 century", "18 century")
    assert old["19 century"] + old["18 century"] > 1.5 * (old.get("15 century", 0) + old.get("14 century", 0))
    assert births.str.endswith("BC").any()


def _majority_accuracy(frame: pd.DataFrame, target: str, by: list[str]) -> float:
    if not by:
        return frame[target].value_counts().iloc[0] / len(frame)
    return frame.groupby(by)[target].agg(lambda s: s.value_counts().iloc[0]).sum() / len(frame)


def test_occupation_guessable_from_era_and_gender(big_frame):
    frame = big_frame.copy()
    frame["era"] = frame["birth"].str.contains("century")
    base = _majority_accuracy(frame, "occupation", [])
    by_era = _majority_accuracy(frame, "occupation", ["era"])
    by_era_gender = _majority_accuracy(frame, "occupation", ["era", "gender"])
    assert by_era > base + 0.05
    assert by_era_gender > by_era + 0.02
    assert by_era_gender < 0.5  # guessing helps but is far from solving it
    old = set(frame.loc[frame.era, "occupation"])
    assert {"king", "philosopher"} <= old and not old & {"footballer", "actor", "film director"}


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10", True, None])
def test_bad_n_is_rejected(bad):
    with pytest.raises(ValueError, match=r"^n must be"):
        synthetic_people(bad, seed=0)


def test_bad_seed_is_rejected():
    with pytest.raises(ValueError, match="seed must be"):
        synthetic_people(4, seed=-1)


def test_too_few_unique_names_raises():
    with pytest.raises(ValueError, match=r"^n too large.*unique names"):
        people_mod._unique_names(lambda: "Ann Lee", 2, set(), max_tries=50)
    # Names with other characters are rejected, so they count as unavailable too.
    with pytest.raises(ValueError, match=r"^n too large.*unique names"):
        people_mod._unique_names(iter(["Ann O'Lee", "Ann  Lee", "Ann Lee2"] * 5).__next__, 1, set(), max_tries=15)


def test_qa_pairs_shape_and_subject():
    p = Person("Ada Stone", "female", "19 century", "1900s", "Northern Europe", "scientist", "United Kingdom")
    pairs = qa_pairs(p)
    assert [q for q, _, _ in pairs] == [q for q, _ in QUESTION_TYPES]
    assert pairs[0] == ("gender", "What was the gender of Ada Stone?", "female")
    assert pairs[5] == ("nationality", "What was the nationality of Ada Stone?", "United Kingdom")
    assert [a for _, _, a in pairs] == ["female", "19 century", "1900s", "Northern Europe", "scientist", "United Kingdom"]
    aliased = qa_pairs(p, subject="<|abcde|>")
    assert all("<|abcde|>" in question and "Ada" not in question for _, question, _ in aliased)
    with pytest.raises(ValueError, match="qtype"):
        p.answer("height")


def test_people_frame_columns(crowd):
    frame = people_frame(crowd[:5])
    assert list(frame.columns) == ["name", *[q for q, _ in QUESTION_TYPES]]
    assert frame["name"].tolist() == [p.name for p in crowd[:5]]
    assert people_frame([]).shape == (0, 7)


# ---------------------------------------------------------------- load_cvdb
_ROWS = [  # name, birth, death, gender, occupation, citizenship, region, readers
    ("Albert_Einstein", 1879.0, 1955.0, "Male", "scientist", "Germany_Switzerland", "Western Europe", 900),
    ("Marie_Curie", 1867.0, 1934.0, "Female", "scientist", "Poland_France", "Eastern Europe", 800),
    ("José_Martí", 1853.0, 1895.0, "Male", "writer", "Cuba", "Central America", 700),
    ("Cleopatra", -69.0, -30.0, "Female", "royal_family", "Egypt", "Northern Africa", 600),
    ("Frida_Kahlo", 1907.0, 1954.0, "Female", "painter", "Mexico", "Central America", 300),
    ("Isaac_Newton", 1643.0, 1727.0, "Male", "scientist", "England", "Northern Europe", 300),
    ("Nobody_Male", 1950.0, 2010.0, "Male", "actor", "Ireland", "Northern Europe", 10),
    ("Ama_Ata_Aidoo", 1942.0, 2023.0, "Female", "writer", "Côte d'Ivoire", "Western Africa", 20),
    # rows that must go:
    ("Albert_Einstein", 1900.0, 1990.0, "Male", "actor", "France", "Western Europe", 5000),  # duplicate name
    ("No_Birth", None, 1900.0, "Male", "king", "France", "Western Europe", 9000),  # NaN
    ("Jean-Paul_Sartre", 1905.0, 1980.0, "Male", "philosopher", "France", "Western Europe", 9999),  # '-' in name
    ("Odd_Job", 1905.0, 1980.0, "Female", "actor/singer", "France", "Western Europe", 9998),  # '/' in occupation
    ("Odd_Land", 1905.0, 1980.0, "Female", "actor", "France(old)", "Western Europe", 9997),  # '(' in citizenship
]
_COLUMNS = ["name", "birth", "death", "gender", "level3_main_occ", "string_citizenship_raw_d", "un_region", "wiki_readers_2015_2018"]


@pytest.fixture
def cvdb_csv(tmp_path):
    frame = pd.DataFrame(_ROWS, columns=_COLUMNS).assign(extra_column="x")
    path = tmp_path / "cvdb.csv"
    frame.to_csv(path, index=False, encoding="ISO-8859-1")
    return path


def test_load_cvdb_filters_balances_and_converts(cvdb_csv):
    people = load_cvdb(cvdb_csv, 4)
    assert [p.name for p in people] == ["Albert Einstein", "Marie Curie", "José Martí", "Cleopatra"]  # 900, 800, 700, 600
    assert collections.Counter(p.gender for p in people) == {"male": 2, "female": 2}
    einstein, curie, marti, cleopatra = people
    assert (einstein.birth, einstein.death) == ("19 century", "1950s")
    assert (cleopatra.birth, cleopatra.death) == ("1 century BC", "1 century BC")
    assert einstein.nationality == "Germany" and curie.nationality == "Poland"
    assert cleopatra.occupation == "royal family"
    assert einstein.region == "Western Europe" and einstein.occupation == "scientist"


def test_load_cvdb_readership_order_and_apostrophe(cvdb_csv):
    people = load_cvdb(cvdb_csv, 8)
    names = [p.name for p in people]
    # By readership; Frida Kahlo and Isaac Newton tie at 300, so by name.
    assert names == [
        "Albert Einstein",
        "Marie Curie",
        "José Martí",
        "Cleopatra",
        "Frida Kahlo",
        "Isaac Newton",
        "Ama Ata Aidoo",
        "Nobody Male",
    ]
    aidoo = people[-2]
    assert aidoo.nationality == "Côte d'Ivoire" and aidoo.death == "2023"
    assert not {"Jean-Paul Sartre", "Odd Job", "Odd Land", "No Birth"} & set(names)


def test_load_cvdb_too_few_of_a_gender(cvdb_csv):
    with pytest.raises(ValueError, match=r"n=10 needs 5 male"):
        load_cvdb(cvdb_csv, 10)


@pytest.mark.parametrize("bad", [0, 1, -2, 3.0])
def test_load_cvdb_bad_n(cvdb_csv, bad):
    with pytest.raises(ValueError, match=r"^n must be"):
        load_cvdb(cvdb_csv, bad)


def test_load_cvdb_missing_columns(tmp_path):
    path = tmp_path / "partial.csv"
    pd.DataFrame(_ROWS, columns=_COLUMNS).drop(columns=["un_region", "gender"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match="gender, un_region"):
        load_cvdb(path, 2)


@pytest.mark.parametrize("form", ["parquet", "saved_dataset"])
@pytest.mark.slow
def test_load_cvdb_reads_parquet_and_saved_datasets_like_the_csv(cvdb_csv, tmp_path, form):
    import datasets

    frame = pd.read_csv(cvdb_csv, encoding="ISO-8859-1")
    if form == "parquet":
        path = tmp_path / "cvdb.parquet"
        frame.to_parquet(path, index=False)
    else:
        path = tmp_path / "cvdb_dataset"
        datasets.Dataset.from_pandas(frame, preserve_index=False).save_to_disk(str(path))
    assert load_cvdb(path, 8) == load_cvdb(cvdb_csv, 8)


def test_other_people_are_from_the_same_source_and_never_the_experiments():
    from iml_nb.core.parameters import ConfigError
    from iml_nb.people_qa.config import build_config
    from iml_nb.people_qa.wordnet import WORDNET_DIR

    sources = ["synthetic"] + (["wordnet"] if (WORDNET_DIR / "data.noun").exists() else [])  # .ci/run installs WordNet
    for cfg, n in [(build_config(n_people=40, people_source=s), 15) for s in sources]:
        others = people_mod.other_people(cfg, n)
        assert len(others) == n and not {p.name for p in others} & {p.name for p in people_mod.load_people(cfg)}
        assert people_mod.other_people(cfg, n) == others and people_mod.other_people(cfg, 0) == ()
    with pytest.raises(ConfigError, match="warmup_people"):
        people_mod.other_people(cfg, -1)
