"""Live streams from other sources: `Tagger.stream` against offline tagging, FIFOs side by side, a
loopback HTTP server that drops the connection, headerless PCM from a URL, unreachable URLs and
missing paths, usage errors.

Scores of the random test checkpoint are chaotic (a float32 rounding difference flips sigmoids), so
live and offline are compared with `batch_size=1` on both sides: each window then goes through the
network alone, and nothing the batch composition or the arrival timing decides can change its
numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from dymn_cli import Tagger
from dymn_cli.audio.pcm import PcmFormat
from dymn_cli.errors import UsageError
from dymn_cli.events import EventSettings, detect_events
from dymn_cli.live_results import LiveEvent, LiveWindow, StreamEnd
from tests.cli.live_feed import RATE, noise_with_tones, s16
from tests.http_server import serve_directory
from tests.support import DYMN_TAG, SAFETY_NET


def test_live_events_equal_offline_events_and_windows_equal_offline_windows(weights, tmp_path):
    frames = noise_with_tones(12.3)
    path = tmp_path / "a.wav"
    soundfile.write(path, frames, RATE, subtype="PCM_16")
    tagger = Tagger(weights=weights, device="cpu", batch_size=1)
    offline = tagger.tag(path, window=2.0, hop=0.5)
    read, write = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(write, path.read_bytes()[44:]) and None, os.close(write)))
    writer.start()
    settings = EventSettings(threshold=0.5, min_duration=0.5)
    records = list(tagger.stream(read, pcm="s16le:32000:1", window=2.0, hop=0.5, events=settings))
    writer.join()
    os.close(read)
    windows = [r for r in records if isinstance(r, LiveWindow)]
    np.testing.assert_array_equal(np.stack([w.scores for w in windows]), offline.window_scores)
    np.testing.assert_array_equal([w.start for w in windows], offline.starts)
    live_events = [r.event for r in records if isinstance(r, LiveEvent)]
    expected = detect_events(offline, threshold=0.5, min_duration=0.5)
    assert expected and sorted(live_events, key=lambda e: (e.start, -e.peak, e.index)) == expected
    # each event is reported once, when it ends: after the window whose start follows its end
    for event in (r for r in records if isinstance(r, LiveEvent)):
        position = records.index(next(r for r in records if isinstance(r, LiveEvent) and r.event == event.event))
        seen = [r.start for r in records[:position] if isinstance(r, LiveWindow)]
        assert event.event.end == offline.duration or max(seen) >= event.event.end
    assert isinstance(records[-1], StreamEnd) and records[-1].duration == pytest.approx(12.3)


@pytest.mark.slow
def test_several_fifos_side_by_side_each_record_names_its_source(weights, tmp_path):
    fifos = [tmp_path / "one", tmp_path / "two"]
    for fifo in fifos:
        os.mkfifo(fifo)
    process = subprocess.Popen(
        [DYMN_TAG, "--live", *map(str, fifos), "--pcm", "s16le:32000:1", "--weights", weights, "--window", "1", "--hop", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def feed(fifo: Path, seconds: float) -> None:
        with open(fifo, "wb") as pipe:
            pipe.write(s16(noise_with_tones(seconds)))

    feeders = [threading.Thread(target=feed, args=(f, s)) for f, s in zip(fifos, (3.0, 5.0))]
    for feeder in feeders:
        feeder.start()
    out, err = process.communicate(timeout=SAFETY_NET)
    assert process.returncode == 0, err.decode()
    records = [json.loads(line) for line in out.decode().splitlines()]
    starts = {str(f): [r["start"] for r in records if r["type"] == "window" and r["source"] == str(f)] for f in fifos}
    assert starts == {str(fifos[0]): [0.0, 1.0, 2.0], str(fifos[1]): [0.0, 1.0, 2.0, 3.0, 4.0]}
    assert sorted((r["source"], r["duration"]) for r in records if r["type"] == "end") == [
        (str(fifos[0]), 3.0),
        (str(fifos[1]), 5.0),
    ]


@pytest.mark.slow
def test_a_dropped_http_stream_is_reopened_and_stream_time_goes_on(weights, tmp_path):
    soundfile.write(tmp_path / "radio.wav", noise_with_tones(4.0), RATE, subtype="PCM_16")
    with serve_directory(tmp_path) as server:
        server.drop_after = 44 + 2 * RATE * 2  # every response: the header and 2 s of audio, then the connection closes
        process = subprocess.Popen(
            [DYMN_TAG, "--live", server.url + "radio.wav", "--weights", weights, "--window", "1", "--hop", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        records: list[dict] = []
        reader = threading.Thread(target=lambda: records.extend(json.loads(line) for line in process.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 90
        while sum(r["type"] == "gap" for r in records) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stderr = process.stderr.read().decode()
        assert process.wait(SAFETY_NET) == 130, stderr
        reader.join(10)
    gaps = [r for r in records if r["type"] == "gap"]
    assert len(gaps) >= 2 and server.request_count("radio.wav") >= 3
    assert gaps[0]["start"] == 2.0 and gaps[1]["start"] == 4.0 and gaps[0]["time"] < gaps[0]["resumed"]
    starts = [r["start"] for r in records if r["type"] == "window"]
    assert starts[:6] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # stream time goes on across the gaps
    assert stderr.count("reconnected") == len(gaps)  # each gap once on stderr
    assert records[-1]["type"] == "end"


@pytest.mark.slow
def test_an_unreachable_url_and_a_missing_path_fail_with_one_line(weights, tmp_path):
    done = subprocess.run(
        [DYMN_TAG, "--live", "http://127.0.0.1:9/none.wav", str(tmp_path / "missing"), "--weights", weights],
        capture_output=True,
        timeout=SAFETY_NET,
    )
    assert done.returncode == 1
    errors = [
        line for line in done.stderr.decode().splitlines() if "error" not in line and ("none.wav" in line or "missing" in line)
    ]
    assert any("cannot open the stream" in line for line in errors) and any("file not found" in line for line in errors)
    assert b"Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pcm", "s16:32000:1"], b"FORMAT:RATE:CHANNELS"),
        (["--timeline"], b"--timeline cannot be used with --live"),
        (["--format", "csv"], b"JSON Lines"),
    ],
)
@pytest.mark.slow
def test_usage_errors(args, message, weights):
    done = subprocess.run(
        [DYMN_TAG, "--live", "-", *args, "--weights", weights], capture_output=True, input=b"", timeout=SAFETY_NET
    )
    assert done.returncode == 2 and message in done.stderr and b"Traceback" not in done.stderr
    with pytest.raises(UsageError):
        PcmFormat.parse("s16le:0:1")


@pytest.mark.slow
def test_headerless_pcm_from_a_url_ends_with_its_file(weights, tmp_path):
    (tmp_path / "a.raw").write_bytes(s16(noise_with_tones(5.0)))
    with serve_directory(tmp_path) as server:
        done = subprocess.run(
            [DYMN_TAG, "--live", server.url + "a.raw", "--pcm", "s16le:32000:1", "--weights", weights, "--window", "1"],
            capture_output=True,
            timeout=SAFETY_NET,
        )
    assert done.returncode == 0, done.stderr.decode()
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["start"] for r in records if r["type"] == "window"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert records[-1] == {"type": "end", "source": server.url + "a.raw", "duration": 5.0}
