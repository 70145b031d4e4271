"""The embeddings index names its network (#21): `search` uses it with no option, refuses another one
of the same width (dymn04 and mn04 are both 384 wide) naming both, and `merge` refuses archives of two
networks. Runs of the real `dymn-tag` on the golden checkpoints."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dymn_cli.errors import UsageError
from dymn_cli.writers.merge import merge_outputs
from tests.audio_factory import make_audio_file
from tests.support import GOLDEN, dymn_tag

FAST = ["--device", "cpu", "--window", "1", "--hop", "1", "-b", "1", "-j", "0", "-q"]


@pytest.fixture(scope="module")
def indexes(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Three sounds, and their indexes by dymn04 (from a copy of its checkpoint) and by mn04."""
    root = tmp_path_factory.mktemp("indexes")
    for n in range(3):
        make_audio_file(root / f"{n}.wav", seconds=1.0, seed=n, kind="noise" if n % 2 else "sine")
    weights = root / "net" / "dymn04.pt"
    weights.parent.mkdir()
    shutil.copy(GOLDEN / "dymn04_seed0.pt", weights)
    made = []
    for name, checkpoint in (("dymn04", weights), ("mn04", GOLDEN / "mn04_seed0.pt")):
        index = root / f"{name}.npz"
        done = dymn_tag(
            [*FAST, *map(str, root.glob("*.wav")), "-w", str(checkpoint), "--embeddings", str(index), "-o", "/dev/null"]
        )
        assert done.returncode == 0, done.stderr
        made.append(index)
    return root, made[0], made[1]


def _search(root: Path, index: Path, *args: str) -> subprocess.CompletedProcess:
    return dymn_tag(["search", str(root / "1.wav"), "--index", str(index), "--top", "1", "-f", "jsonl", *args, *FAST[:2]])


def test_an_index_made_with_weights_is_searched_with_no_option_and_another_network_is_refused(indexes):
    root, dymn04, _ = indexes
    with np.load(dymn04) as archive:
        assert str(archive["model"]).startswith("dymn04.pt@sha256:7f196060a893")
        assert archive["checkpoints"].tolist() == [
            ["dymn04.pt", _sha256(root / "net" / "dymn04.pt"), str(root / "net" / "dymn04.pt")]
        ]
    found = _search(root, dymn04)
    assert found.returncode == 0 and b'"similarity": 1.0' in found.stdout, found.stderr
    for other, named in ((["-w", str(GOLDEN / "mn04_seed0.pt")], "mn04_seed0.pt@sha256:"), (["-m", "mn04_as"], "not by mn04_as")):
        refused = _search(root, dymn04, *other)
        stderr = refused.stderr.decode()
        assert refused.returncode == 2 and "made by dymn04.pt@sha256:7f196060a893" in stderr and named in stderr, stderr
        assert not refused.stdout


def test_an_index_whose_checkpoint_moved_or_that_names_no_network_needs_one_named(indexes, tmp_path):
    root, dymn04, _ = indexes
    moved = tmp_path / "moved.npz"
    with np.load(dymn04) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["checkpoints"] = np.array([[*arrays["checkpoints"][0][:2], str(tmp_path / "gone.pt")]])
    np.savez(moved, **arrays)
    refused = _search(root, moved)
    assert (
        refused.returncode == 2
        and f"which is no longer at {tmp_path / 'gone.pt'}: name it with --weights" in refused.stderr.decode()
    )
    assert _search(root, moved, "-w", str(GOLDEN / "dymn04_seed0.pt")).returncode == 0  # (the same content, another name)
    older = tmp_path / "older.npz"
    np.savez(older, **{k: v for k, v in arrays.items() if k not in ("model", "checkpoints")})
    refused = _search(root, older)
    assert refused.returncode == 2 and "does not record the network" in refused.stderr.decode()


def test_merge_of_archives_of_two_networks_is_refused(indexes, tmp_path):
    _, dymn04, mn04 = indexes
    with pytest.raises(UsageError, match=r"mn04\.npz was made by mn04_seed0\.pt@sha256:\w+, .*dymn04\.npz by dymn04\.pt@sha256"):
        merge_outputs([dymn04, mn04], tmp_path / "merged.npz")
    assert not (tmp_path / "merged.npz").exists()


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_python_api_refuses_a_tagger_of_another_network_too(indexes):
    from dymn_cli.tagger import Tagger
    from dymn_cli.transfer.similarity import load_index, search_audio

    root, dymn04, _ = indexes
    with pytest.raises(UsageError, match=r"made by dymn04\.pt@sha256:\w+, not by mn04_seed0\.pt@sha256"):
        search_audio(Tagger(weights=GOLDEN / "mn04_seed0.pt", device="cpu"), [root / "1.wav"], load_index(dymn04))
