"""Every command that writes a file claims it first (dymn_cli.writers.destination): an input, a file inside
an input folder or a folder as the target is refused before any work, with one line and exit 2, and the
input's bytes stay as they were. The walk covers every command of `COMMANDS`: a new command is added to
`WRITERS` (with the command lines that aim its outputs at an input) or to `NOT_WRITING`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dymn_cli.cli.commands import COMMANDS, TAG
from tests.audio_factory import tone
from tests.support import DYMN04_WEIGHTS, SAFETY_NET, dymn_tag
from tests.writers.test_output_rules import mounted_tmpfs


class Inputs:
    """A small world of inputs: a class folder of recordings, a results file, an archive, a truth file."""

    def __init__(self, root: Path) -> None:
        self.data = root / "good"
        for label, freq in (("tone", 440.0), ("hum", 120.0)):
            (self.data / label).mkdir(parents=True)
            tone(self.data / label / "f0.wav", freq=freq, seconds=0.3)
        self.recording = self.data / "tone" / "f0.wav"
        self.results = root / "results.jsonl"
        self.results.write_text('{"path": "a.wav", "labels": []}\n')
        self.results_csv = root / "results.csv"
        self.results_csv.write_text("path,label,score\na.wav,Speech,0.5\n")
        self.archive = root / "emb.npz"
        np.savez(self.archive, paths=np.array(["a.wav"]), clip_embeddings=np.ones((1, 4), np.float32))
        self.truth = root / "truth.csv"
        self.truth.write_text("path,label\na.wav,Speech\n")
        self.checkpoint = root / "dymn04.pt"
        self.checkpoint.write_bytes(DYMN04_WEIGHTS.read_bytes())

    def files(self) -> list[Path]:
        return [self.recording, self.results, self.results_csv, self.archive, self.truth, self.checkpoint]


ArgvBuilder = Callable[[Inputs], list[str]]

WRITERS: dict[str, list[ArgvBuilder]] = {
    TAG: [
        lambda w: [str(w.data), "-o", str(w.recording)],
        lambda w: [str(w.recording), "--embeddings", str(w.recording)],
        lambda w: ["--live", str(w.results), "--pcm", "s16le:32000:1", "-o", str(w.results), "--weights", str(DYMN04_WEIGHTS)],
        lambda w: ["--live", "-", "--pcm", "s16le:32000:1", "-o", str(w.data), "--weights", str(DYMN04_WEIGHTS)],
    ],
    "train": [
        lambda w: ["train", str(w.data), "-o", str(w.recording), "--weights", str(DYMN04_WEIGHTS)],
        lambda w: ["train", str(w.data), "-o", str(w.data / "tone"), "--weights", str(DYMN04_WEIGHTS)],
    ],
    "merge": [
        lambda w: ["merge", str(w.results), "-o", str(w.results)],
        lambda w: ["merge", str(w.archive), "-o", str(w.archive)],
        lambda w: ["merge", str(w.results), "-o", str(w.data)],
    ],
    "evaluate": [
        lambda w: ["evaluate", str(w.results), "--truth", str(w.truth), "-o", str(w.truth)],
        lambda w: ["evaluate", str(w.results), "--truth", str(w.truth), "--save-thresholds", str(w.results)],
        lambda w: ["evaluate", str(w.results), "--truth", str(w.data), "-o", str(w.recording)],
    ],
    "export": [
        lambda w: ["export", "--weights", str(DYMN04_WEIGHTS), "-o", str(w.data)],
        lambda w: ["export", "--weights", str(w.checkpoint), "-o", str(w.checkpoint)],
        lambda w: ["export", "--weights", str(DYMN04_WEIGHTS), "--int8", "--calibrate", str(w.data), "-o", str(w.recording)],
    ],
}
"""Each command that writes files, with command lines that aim one of its outputs at an input or a folder."""

NOT_WRITING = {
    "models": "prints the model list",
    "download": "writes only into the weights cache, under names of its own",
    "labels": "prints the label list",
    "search": "prints its hits",
}
"""Commands that write no file a user names, and why."""


def test_every_command_is_walked() -> None:
    commands = {TAG, *COMMANDS}
    assert commands == set(WRITERS) | set(NOT_WRITING), "place a new command in WRITERS or NOT_WRITING"
    assert not set(WRITERS) & set(NOT_WRITING)


def _digests(paths: list[Path]) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


CASES = [(command, n) for command, builders in WRITERS.items() for n in range(len(builders))]


@pytest.mark.parametrize(("command", "case"), CASES, ids=[f"{c}-{n}" for c, n in CASES])
def test_an_input_or_a_folder_is_refused_as_target(tmp_path: Path, command: str, case: int) -> None:
    world = Inputs(tmp_path)
    before = _digests(world.files())
    done = dymn_tag(WRITERS[command][case](world), timeout=SAFETY_NET)
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert _digests(world.files()) == before
    assert not [p for p in tmp_path.rglob(".*.part")], "no temporary file left behind"


def test_no_overwrite_is_honoured_by_train_and_merge(tmp_path: Path) -> None:
    world = Inputs(tmp_path)
    existing = tmp_path / "existing.jsonl"
    existing.write_text("keep\n")
    for argv in (
        ["merge", str(world.results), "-o", str(existing), "-n"],
        ["train", str(world.data), "-o", str(existing), "-n", "--weights", str(DYMN04_WEIGHTS)],
    ):
        done = dymn_tag(argv, timeout=SAFETY_NET)
        assert done.returncode == 2 and b"--no-overwrite" in done.stderr, done.stderr
        assert existing.read_text() == "keep\n"


def test_train_refuses_a_missing_folder_before_any_work(tmp_path: Path) -> None:
    world = Inputs(tmp_path)
    done = dymn_tag(["train", str(world.data), "-o", str(tmp_path / "no" / "head.safetensors"), "--weights", "absent.pt"])
    assert done.returncode == 2 and b"no such folder" in done.stderr, done.stderr


TOO_LONG = "q" * 260
NAMED_TOO_LONG = [
    [str(Path("a.wav")), "-o", f"{TOO_LONG}.jsonl"],
    ["merge", f"{TOO_LONG}.jsonl", "-o", "x.jsonl"],
    ["train", TOO_LONG, "-o", "head.safetensors"],
    ["search", "a.wav", "--index", f"{TOO_LONG}.npz"],
    ["evaluate", f"{TOO_LONG}.jsonl", "--truth", "t.csv"],
    ["a.wav", "--labels", f"@{TOO_LONG}"],
    ["a.wav", "--head", TOO_LONG],
    ["--files-from", TOO_LONG],
    ["a.wav", "-f", "raven", "--output-dir", TOO_LONG],
]


@pytest.mark.parametrize("argv", NAMED_TOO_LONG, ids=[a[0] if a[0] in COMMANDS else a[1] for a in NAMED_TOO_LONG])
def test_a_name_too_long_for_the_file_system_is_one_line(tmp_path: Path, argv: list[str]) -> None:
    tone(tmp_path / "a.wav", freq=440.0, seconds=0.3)
    done = dymn_tag([*argv, "--weights", str(DYMN04_WEIGHTS)] if argv[0] not in ("merge", "evaluate") else argv, cwd=tmp_path)
    stderr = done.stderr.decode()
    assert done.returncode == 2 and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr


def test_a_full_disk_keeps_the_earlier_merged_file(tmp_path: Path) -> None:
    shard = tmp_path / "shard.npz"
    np.savez(shard, paths=np.array([f"f{n:05d}.wav" for n in range(2000)]), clip_embeddings=np.ones((2000, 64), np.float32))
    with mounted_tmpfs(tmp_path / "disk", "size=128k") as disk:
        earlier = disk / "merged.npz"
        earlier.write_bytes(b"the earlier archive")
        done = dymn_tag(["merge", str(shard), "-o", str(earlier)], timeout=SAFETY_NET)
        assert done.returncode == 1 and b"No space left on device" in done.stderr, done.stderr
        assert earlier.read_bytes() == b"the earlier archive"
        assert [p.name for p in disk.iterdir()] == ["merged.npz"]
