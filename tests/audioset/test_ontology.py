"""Label selection over the AudioSet ontology: names, mids, subtrees, exclusions, suggestions."""

from __future__ import annotations

import pytest

from dymn_cli.audioset.labels import audioset_classes
from dymn_cli.audioset.ontology import find_classes, ontology, parse_label_terms, select_classes
from dymn_cli.errors import UsageError


def names(indices):
    return {audioset_classes()[i].name for i in indices}


def test_a_node_selects_its_subtree():
    animal = names(select_classes(labels="Animal"))
    assert {"Animal", "Dog", "Bark", "Cat", "Bird", "Insect", "Whimper (dog)"} <= animal
    assert "Speech" not in animal and "Music" not in animal


def test_abstract_nodes_select_the_classes_below_them():
    human = ontology().lookup("Human sounds")
    assert human and "abstract" in ontology().nodes[human[0]].restrictions
    selected = names(select_classes(labels="human sounds"))
    assert {"Speech", "Laughter", "Cough"} <= selected and "Human sounds" not in selected


def test_names_and_mids_case_insensitive_and_names_with_commas():
    selected = select_classes(labels="DOG, male speech,man speaking, /M/09X0R")
    assert {"Dog", "Bark", "Male speech, man speaking", "Speech"} <= names(selected)
    assert parse_label_terms("Dog, Male speech, man speaking,cat") == ["Dog", "Male speech, man speaking", "cat"]


def test_exclude_removes_a_subtree():
    selected = names(select_classes(labels="Animal", exclude="Dog,Insect"))
    assert "Cat" in selected and not {"Dog", "Bark", "Insect", "Mosquito"} & selected
    everything_but_music = select_classes(exclude="Music")
    assert len(everything_but_music) < 527 and "Speech" in names(everything_but_music)
    assert select_classes() is None


def test_label_file(tmp_path):
    listing = tmp_path / "labels.txt"
    listing.write_text("# my classes\nDog\n\nMale speech, man speaking\n/m/09x0r\n")
    assert names(select_classes(labels=f"@{listing}")) == names(select_classes(labels="Dog,Male speech, man speaking,Speech"))
    with pytest.raises(UsageError, match="missing.txt: no such file"):
        select_classes(labels=f"@{tmp_path / 'missing.txt'}")


def test_unknown_names_suggest_the_closest():
    with pytest.raises(UsageError, match="did you mean 'Dog'") as error:
        select_classes(labels="Cat,dgo")
    assert "dgo" in str(error.value)
    with pytest.raises(UsageError, match="Guitar"):
        select_classes(exclude="guittar")


def test_nothing_left_and_nodes_without_outputs():
    with pytest.raises(UsageError, match="no AudioSet class is left"):
        select_classes(labels="Dog", exclude="Animal")
    with pytest.raises(UsageError, match="no model output"):
        select_classes(labels="Yawn")  # in the ontology, but no model output


def test_find_classes_for_the_labels_command():
    found = find_classes("dog")
    assert [c.name for c in found][:2] == ["Dog", "Bark"]
    assert {"Dog", "Bark", "Whimper (dog)", "Canidae, dogs, wolves", "Growling"} <= {c.name for c in found}
    bark = next(c for c in found if c.name == "Bark")
    assert bark.parent_path == "Animal > Domestic animals, pets > Dog" and bark.mid == "/m/05tny_"
    speech = find_classes("/m/09x0r")  # a mid names a node too: its subtree
    assert speech[0].name == "Speech" and "Male speech, man speaking" in {c.name for c in speech}
    assert len(find_classes()) == 527
    with pytest.raises(UsageError, match="did you mean"):
        find_classes("dgo")
