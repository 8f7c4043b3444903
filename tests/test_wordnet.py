"""WordNet people: parsed from a data.noun in WordNet's format (a fixture here; Debian's wordnet-base in CI), no gender, five
questions each, a clear error naming `people_source` and the install command where WordNet is missing."""

import pytest

from iml_nb.core.parameters import ConfigError
from iml_nb.people_qa import wordnet
from iml_nb.people_qa.config import build_config
from iml_nb.people_qa.people import qa_pairs

HEADER = "  1 This software and database is being provided to you, the LICENSEE, by Princeton University\n"
LINES = [
    "10301261 18 n 01 mathematician 0 001 @ 10560637 n 0000 | a person skilled in mathematics  ",
    "10466918 18 n 01 physicist 0 001 @ 10560637 n 0000 | a scientist trained in physics  ",
    "10807197 18 n 03 Abel 1 Niels_Abel 0 Niels_Henrik_Abel 0 001 @i 10301261 n 0000 | Norwegian mathematician (1802-1829)  ",
    "11145898 18 n 02 Newton 0 Isaac_Newton 0 001 @i 10466918 n 0000 | English mathematician and physicist (1642-1727)  ",
    "11000001 18 n 01 Nobody 0 001 @i 10466918 n 0000 | Martian physicist (1900-1950)  ",  # unknown nationality: left out
    "11000002 18 n 01 Someone 0 001 @ 10466918 n 0000 | English physicist (1900-1950)  ",  # not an instance: left out
    "11000003 18 n 01 Undated 0 001 @i 10466918 n 0000 | English physicist  ",  # no life span: left out
]


@pytest.fixture
def fake_wordnet(tmp_path, monkeypatch):
    (tmp_path / "data.noun").write_text(HEADER + "\n".join(LINES) + "\n")
    monkeypatch.setattr(wordnet, "WORDNET_DIR", tmp_path)
    return tmp_path


def test_people_are_parsed_with_five_attributes(fake_wordnet):
    people = wordnet.all_people()
    assert [p.name for p in people] == ["Niels Abel", "Isaac Newton"]
    abel, newton = people
    assert (abel.occupation, abel.nationality, abel.region, abel.birth, abel.death) == (
        "mathematician",
        "Norwegian",
        "Northern Europe",
        "19 century",
        "19 century",
    )
    assert newton.nationality == "English" and newton.birth == "17 century" and newton.gender == ""
    assert [q for q, _, _ in qa_pairs(newton)] == ["birth", "death", "region", "occupation", "nationality"]
    assert wordnet.wordnet_people(1, 0) in ((abel,), (newton,))
    with pytest.raises(ValueError, match="`n_people`: WordNet has 2"):
        wordnet.wordnet_people(3, 0)


def test_missing_wordnet_names_the_parameter_and_the_install(tmp_path, monkeypatch):
    monkeypatch.setattr(wordnet, "WORDNET_DIR", tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"people_source.*apt-get install wordnet-base"):
        build_config(people_source="wordnet")
    with pytest.raises(ConfigError, match="people_source"):
        build_config(people_source="no/such/file.csv")


@pytest.mark.skipif(not (wordnet.WORDNET_DIR / "data.noun").is_file(), reason=f"WordNet is not installed ({wordnet.INSTALL})")
def test_debian_wordnet_gives_about_two_thousand_people():
    people = wordnet.all_people()
    assert 1900 <= len(people) <= 2300 and len({p.name for p in people}) == len(people)
    assert {"Isaac Newton", "Leo Tolstoy", "Niels Abel"} <= {p.name for p in people}
