"""What --top means live (README, Live streams): the K best labels of each window record; events are
not limited, so a stream gives the event list of the same audio tagged as a file with --top all."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from tests.support import DYMN04_WEIGHTS, dymn_tag

pytestmark = pytest.mark.slow  # dymn-tag runs


def test_live_top_limits_each_window_and_events_equal_the_files_with_top_all(tmp_path):
    rate = 32_000
    rng = np.random.default_rng(0)
    t = np.arange(rate * 8) / rate
    audio = (0.2 * rng.standard_normal(t.size) + 0.5 * np.sin(2 * np.pi * 880 * t) * (t > 3)).astype(np.float32)
    clip = tmp_path / "a.wav"
    soundfile.write(clip, audio, rate, subtype="PCM_16")
    common = ["-w", str(DYMN04_WEIGHTS), "--window", "2", "--hop", "1", "--events", "-t", "0.55", "-q"]
    live = dymn_tag(["--live", "-", "--pcm", "s16le:32000:1", "--top", "2", *common], stdin=clip.read_bytes()[44:])
    assert live.returncode == 0, live.stderr
    records = [json.loads(line) for line in live.stdout.splitlines()]
    windows = [r for r in records if r["type"] == "window"]
    assert windows and all(len(w["labels"]) <= 2 for w in windows)
    offline = dymn_tag([str(clip), "--top", "all", "-f", "json", *common])
    assert offline.returncode == 0, offline.stderr
    expected = json.loads(offline.stdout)["files"][0]["events"]
    streamed = [{k: v for k, v in r.items() if k not in ("type", "source", "time")} for r in records if r["type"] == "event"]
    key = lambda e: (e["start"], e["index"])  # noqa: E731
    assert len(expected) > 2 and sorted(streamed, key=key) == sorted(expected, key=key)
