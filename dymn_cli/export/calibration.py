"""The user's calibration audio for `--int8 --calibrate FOLDER`: windows of every audio file in a
folder, cut as the tagger cuts them, split into windows that calibrate and windows held out for the
agreement report. Every file is read defensively: one that cannot be decoded is named in one warning
line and skipped, the others are used."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dymn_cli.audio.decode import load_audio
from dymn_cli.audio.paths import is_audio_path, walk_order_key
from dymn_cli.errors import AudioError, UsageError
from dymn_cli.wording import counted

log = logging.getLogger("dymn_cli")

MAX_WINDOWS = 120
"""At most this many windows are used (taken evenly over the audio): calibration runs the float graph
on every one, and the agreement report runs both graphs on the held-out ones."""
ENOUGH_WINDOWS = 4 * MAX_WINDOWS
"""Files are decoded until this many windows are in hand (a folder of thousands of files is not read whole)."""
HELD_OUT_EVERY = 4
"""Every 4th window is held out of the calibration, for the agreement report (25 %)."""
MIN_WINDOWS = 8


@dataclass(frozen=True)
class CalibrationSet:
    calibrate: list[np.ndarray]
    held_out: list[np.ndarray]
    files: int


def audio_files(folder: Path) -> list[Path]:
    """The audio files under `folder`, in the order a folder walk visits them."""
    if not folder.exists():
        raise UsageError(f"--calibrate {folder}: no such folder")
    if not folder.is_dir():
        raise UsageError(f"--calibrate {folder}: not a folder (give a folder of your own audio)")
    found: list[str] = []
    for root, dirs, files in os.walk(folder, onerror=_unreadable):
        dirs.sort()
        found += [os.path.join(root, name) for name in files if is_audio_path(name)]
    if not found:
        raise UsageError(f"--calibrate {folder}: no audio files in this folder")
    return [Path(p) for p in sorted(found, key=walk_order_key)]


def _unreadable(error: OSError) -> None:
    log.warning("warning: %s: cannot read this folder: %s", error.filename, error.strerror or error)


def windows_of(waveform: np.ndarray, window: int) -> list[np.ndarray]:
    """Windows of `window` samples every half window, the last one zero-padded (as the tagger pads)."""
    hop = max(window // 2, 1)
    starts = range(0, max(len(waveform) - window, 0) + 1, hop)
    windows = [waveform[s : s + window] for s in starts]
    last = starts[-1] + window
    if last < len(waveform):
        windows.append(waveform[len(waveform) - min(window, len(waveform)) :])
    return [np.pad(w, (0, window - len(w))).astype(np.float32) for w in windows]


def calibration_set(folder: Path, *, window: int, sample_rate: int) -> CalibrationSet:
    """Windows of `window` samples from the audio under `folder`, every `HELD_OUT_EVERY`th held out."""
    windows: list[np.ndarray] = []
    used = 0
    for path in audio_files(folder):
        if len(windows) >= ENOUGH_WINDOWS:
            log.info("int8: calibrating on the first %d files of %s (enough windows)", used, folder)
            break
        try:
            waveform = load_audio(path, sample_rate=sample_rate)
        except AudioError as error:
            log.warning("warning: %s (skipped for calibration)", error)
            continue
        if not len(waveform):
            log.warning("warning: %s: no audio in it (skipped for calibration)", path)
            continue
        windows += windows_of(waveform, window)
        used += 1
    if len(windows) < MIN_WINDOWS:
        raise UsageError(
            f"--calibrate {folder}: {counted(len(windows), 'window')} of audio in {counted(used, 'readable file')}; int8 calibration "
            f"needs at least {MIN_WINDOWS} (about {MIN_WINDOWS * window / sample_rate / 2:g} s of audio)"
        )
    if len(windows) > MAX_WINDOWS:
        picks = np.linspace(0, len(windows) - 1, MAX_WINDOWS).round().astype(int)
        windows = [windows[i] for i in picks]
    held = [w for i, w in enumerate(windows) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    calibrate = [w for i, w in enumerate(windows) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    return CalibrationSet(calibrate=calibrate, held_out=held, files=used)
