"""The thresholds file (`--thresholds`): matching rows to classes, and one clear error for every bad file,
fuzzed with hypothesis."""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dymn_cli.audioset.thresholds import MAX_THRESHOLDS_BYTES, ClassThresholds, load_thresholds, parse_thresholds
from dymn_cli.audioset.vocabulary import Vocabulary
from dymn_cli.errors import UsageError

AUDIOSET = Vocabulary.audioset()
SPEECH, DOG = AUDIOSET[0], next(c for c in AUDIOSET if c.name == "Dog")
BIRD_CALL = next(c for c in AUDIOSET if c.name == "Bird vocalization, bird call, bird song")  # (a comma: quoted)


def table(rows: list[list[str]], header: str = "label,mid,threshold") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header.split(","))
    writer.writerows(rows)
    return buffer.getvalue().encode()


def parse(data: bytes, vocabulary: Vocabulary = AUDIOSET) -> ClassThresholds:
    return parse_thresholds(data, vocabulary, name="t.csv")


def test_rows_match_by_mid_else_label():
    found = parse(table([[SPEECH.name, SPEECH.mid, "0.3"], ["", DOG.mid, "0.25"], [BIRD_CALL.name, "", "0.7"]]))
    assert found.pairs == ((SPEECH.index, 0.3), (DOG.index, 0.25), (BIRD_CALL.index, 0.7))
    levels = found.levels(527, default=0.5)
    assert levels[SPEECH.index] == 0.3 and levels[BIRD_CALL.index] == 0.7 and levels[1] == 0.5
    assert np.isneginf(found.levels(527, default=None)[1])  # (no --threshold: the classes without a row are not cut)


def test_what_evaluate_writes_reads_back():
    """`label,mid,threshold` for every class, as `evaluate --save-thresholds` writes them (CRLF and a BOM too)."""
    rows = [[c.name, c.mid, f"{(c.index % 100) / 100:.6f}"] for c in AUDIOSET]
    data = table(rows).replace(b"\n", b"\r\n")
    found = parse(b"\xef\xbb\xbf" + data)
    assert len(found.pairs) == 527 and found.pairs[99] == (99, 0.99)


def test_label_only_columns_case_and_extra_columns():
    found = parse(table([["dog", "0.4", "0.9"]], header="Label,threshold,best_f1"))
    assert found.pairs == ((DOG.index, 0.4),)


def test_head_classes_by_name_and_id():
    vocabulary = Vocabulary.with_head(["frog", "toad"], audioset=True)
    found = parse(table([["frog", "", "0.2"], ["", "head:toad", "0.9"], ["Speech", "", "0.1"]]), vocabulary)
    assert found.pairs == ((0, 0.1), (527, 0.2), (528, 0.9))
    with pytest.raises(UsageError, match="'Speech' is not one of this run's classes"):
        parse(table([["Speech", "", "0.1"]]), Vocabulary.with_head(["frog"]))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\n\n", "empty"),
        (b"label,mid,threshold\n", "a header but no thresholds"),
        (b"name,score\nDog,0.5\n", "the header is 'name,score'; expected label,mid,threshold"),
        (b"label,mid\nDog,/m/0bt9lr\n", "expected label,mid,threshold"),
        (b"label,label,threshold\nDog,Dog,0.5\n", "the header has label twice"),
        (table([["Dog", "", "high"]]), "line 2: threshold 'high' is not a number"),
        (table([["Dog", "", ""]]), "line 2: threshold '' is not a number"),
        (table([["Dog", "", "1.5"]]), "line 2: threshold 1.5 is not between 0 and 1"),
        (table([["Dog", "", "-0.1"]]), "not between 0 and 1"),
        (table([["Dog", "", "nan"]]), "not between 0 and 1"),
        (table([["Dog", "", "inf"]]), "not between 0 and 1"),
        (table([["Dgo", "", "0.5"]]), "line 2: 'Dgo' is not one of this run's classes \\(did you mean 'Dog'\\?\\)"),
        (table([["", "/m/nope", "0.5"]]), "line 2: mid '/m/nope' is not one of this run's classes"),
        (table([["Cat", DOG.mid, "0.5"]]), f"line 2: mid {DOG.mid} is 'Dog', not 'Cat'"),
        (table([["", "", "0.5"]]), "line 2: neither a label nor a mid"),
        (table([["Dog", "", "0.5"], ["", DOG.mid, "0.6"]]), "line 3: 'Dog' again \\(first on line 2\\)"),
        (b"label,mid,threshold\nDog,,0.5,extra\n", "line 2 has 4 fields, the header 3"),
        (b'label,mid,threshold\n"Dog,,0.5\n', "not a readable CSV file"),
        (b"label,mid,threshold\nDog,\x00,0.5\n", "binary data \\(a NUL byte at offset 24\\)"),
        (b"\x89PNG\r\n\x1a\n\xff\xfe", "binary data|not UTF-8"),
        (b"label,mid,threshold\n\xffDog,,0.5\n", "not UTF-8 text \\(byte 20\\)"),
    ],
)
def test_bad_files_are_one_clear_error(data, message):
    with pytest.raises(UsageError, match=message) as caught:
        parse(data)
    text = str(caught.value)
    assert text.startswith("t.csv: ") and "\n" not in text and len(text) < 300


def test_files_that_are_not_files(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        load_thresholds(tmp_path / "missing.csv", AUDIOSET)
    with pytest.raises(UsageError, match="a folder, not a thresholds file"):
        load_thresholds(tmp_path, AUDIOSET)
    huge = tmp_path / "huge.csv"
    huge.write_bytes(b"label,mid,threshold\n" + b"Dog,,0.5\n" * (MAX_THRESHOLDS_BYTES // 9 + 1))
    with pytest.raises(UsageError, match="larger than 4 MiB"):
        load_thresholds(huge, AUDIOSET)
    good = tmp_path / "good.csv"
    good.write_bytes(table([["Dog", "", "0.5"]]))
    assert load_thresholds(good, AUDIOSET).source.startswith("good.csv@")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    locked = tmp_path / "locked.csv"
    locked.write_bytes(table([["Dog", "", "0.5"]]))
    locked.chmod(0)
    with pytest.raises(UsageError, match="permission denied"):
        load_thresholds(locked, AUDIOSET)


NAMES = st.sampled_from([c.name for c in AUDIOSET[:40]] + ["Dgo", "", "head:x", "Speech ", "SPEECH"])
MIDS = st.sampled_from([c.mid for c in AUDIOSET[:40]] + ["", "/m/nope", "/m/09x0r "])
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "0", "1", "1.0000001", "-0", "1e-3", "0x1p-2", " 0.5 ", "½", "0,5"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(NAMES, MIDS, VALUES), max_size=12))
def test_fuzzed_tables_load_or_fail_with_one_line(rows):
    """Any table of plausible cells: thresholds within [0, 1] for distinct classes, or one UsageError line."""
    try:
        found = parse(table([list(row) for row in rows]))
    except UsageError as error:
        assert str(error).startswith("t.csv: ") and "\n" not in str(error)
        return
    indices = [index for index, _ in found.pairs]
    assert len(set(indices)) == len(indices) == len(rows)
    assert all(0.0 <= value <= 1.0 for _, value in found.pairs)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzzed_bytes_never_escape_as_another_error(data):
    try:
        parse(b"label,mid,threshold\n" + data)
    except UsageError as error:
        assert str(error).startswith("t.csv: ") and "\n" not in str(error)
