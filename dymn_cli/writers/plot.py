"""Pictures of a result: the top labels' scores over time as a heat map, the loudness above it.

Needs matplotlib (`pip install 'dymn-cli[plot]'`), imported only when a picture is asked for. Figures
are drawn with the Agg canvas directly (no pyplot, no change to the process's matplotlib backend).

The heat map shows, for each label, the same per-slot scores that sound events are cut from
(`dymn_cli.events.slot_scores`: the time axis cut at every window edge, each slot scored by the
lowest of the windows covering it), so edges line up with the events, which are outlined on it. The
loudness panel is the RMS level in dB (full scale) of short frames of the audio the model saw
(mono, 32 kHz), re-read from the input file; inputs that cannot be re-read (standard input, arrays)
get no loudness panel.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dymn_cli.errors import AudioError, UsageError
from dymn_cli.events import SoundEvent, slot_scores
from dymn_cli.results import TagFailure, TagResult, rank_classes
from dymn_cli.writers.output_file import written

__all__ = ["MAX_LABELS", "PlotWriter", "loudness", "loudness_of_waveform", "plot_timeline", "require_matplotlib"]

MAX_LABELS = 25
FLOOR_DB = -80.0


def require_matplotlib() -> Any:
    """Import matplotlib, or raise a `UsageError` that says how to install it."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError as error:
        raise UsageError("pictures (--plot) need matplotlib: pip install 'dymn-cli[plot]'") from error
    return matplotlib


def _frame_length(duration: float, sample_rate: int) -> int:
    """About 20 ms frames, longer for long inputs so that a picture gets at most ~3000 of them."""
    return max(int(sample_rate * 0.02), int(math.ceil(duration * sample_rate / 3000)))


def loudness_of_waveform(waveform: np.ndarray, sample_rate: int, *, frame: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`(times, db)`: frame centres in seconds and each frame's RMS level in dBFS (floored at -80 dB)."""
    wave = np.asarray(waveform, dtype=np.float64).reshape(-1)
    frame = frame or _frame_length(len(wave) / sample_rate, sample_rate)
    n = max(1, math.ceil(len(wave) / frame))
    padded = np.zeros(n * frame)
    padded[: len(wave)] = wave
    counts = np.full(n, frame, dtype=np.float64)
    counts[-1] = len(wave) - (n - 1) * frame or frame
    power = (padded.reshape(n, frame) ** 2).sum(axis=1) / counts
    return _times(n, frame, len(wave), sample_rate), _db(power)


def loudness(
    source: str | os.PathLike[str], *, sample_rate: int = 32_000, duration: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Loudness (see `loudness_of_waveform`) of an audio file, streamed in blocks: flat memory."""
    from dymn_cli.audio.decode import audio_info, stream_audio

    if duration is None:
        duration = audio_info(source).duration_seconds
    frame = _frame_length(duration, sample_rate)
    power: list[np.ndarray] = []
    carry = np.zeros(0)
    total = 0
    for block in stream_audio(source, sample_rate=sample_rate, block_seconds=30.0):
        total += len(block)
        data = np.concatenate([carry, block.astype(np.float64)])
        whole = len(data) // frame * frame
        if whole:
            power.append((data[:whole].reshape(-1, frame) ** 2).mean(axis=1))
        carry = data[whole:]
    if len(carry) or not power:
        power.append(np.array([(carry**2).mean() if len(carry) else 0.0]))
    values = np.concatenate(power)
    return _times(len(values), frame, total, sample_rate), _db(values)


def _times(n: int, frame: int, n_samples: int, sample_rate: int) -> np.ndarray:
    starts = np.arange(n) * frame
    ends = np.minimum(starts + frame, max(n_samples, 1))
    return (starts + ends) / 2 / sample_rate


def _db(power: np.ndarray) -> np.ndarray:
    return np.maximum(10 * np.log10(np.maximum(power, 1e-12)), FLOOR_DB)


def _clock(seconds: float, _: Any = None) -> str:
    seconds = max(0.0, seconds)
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{rest:02d}" if minutes >= 60 else f"{minutes}:{rest:02d}"


def plot_timeline(
    result: TagResult,
    path: str | os.PathLike[str],
    *,
    top: int = 10,
    classes: Sequence[int] | None = None,
    events: Sequence[SoundEvent] | None = None,
    audio: Any = "auto",
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Draw the `top` labels (by clip score, among `classes`) of one result as a PNG at `path`.

    `audio` gives the loudness panel: "auto" re-reads `result.source` when it is a file, a 1-D array
    is a 32 kHz waveform, None leaves the panel out. `events` are outlined on the heat map. The file
    is written atomically. Returns its path.
    """
    require_matplotlib()
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    target = Path(path)
    top = max(1, min(int(top), MAX_LABELS))
    picked = rank_classes(result.scores, top=top, classes=classes)
    duration = float(result.duration)
    level = _loudness_for(result, audio)

    n = max(len(picked), 1)
    heat_height = 0.34 * n + 0.3
    loud_height = 1.3 if level is not None else 0.0
    figure = Figure(figsize=(12, heat_height + loud_height + 1.2), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    if level is not None:
        grid = figure.add_gridspec(2, 1, height_ratios=[loud_height, heat_height])
        loud_axes = figure.add_subplot(grid[0])
        heat_axes = figure.add_subplot(grid[1], sharex=loud_axes)
    else:
        loud_axes = None
        heat_axes = figure.add_subplot(1, 1, 1)

    name = os.path.basename(result.source) or result.source
    window = float(result.ends[0] - result.starts[0]) if len(result.starts) else 0.0
    hop = float(result.starts[1] - result.starts[0]) if len(result.starts) > 1 else window
    figure.suptitle(
        title or f"{name}   ({_clock(duration)}, {len(result.starts)} windows of {window:g} s every {hop:g} s)",
        fontsize=13,
        fontweight="bold",
    )

    if loud_axes is not None and level is not None:
        times, db = level
        loud_axes.fill_between(times, FLOOR_DB, db, color="#4c72b0", alpha=0.6, linewidth=0)
        loud_axes.plot(times, db, color="#2b4f86", linewidth=0.6)
        low = max(FLOOR_DB, float(np.floor(db.min() / 10) * 10) - 5)
        loud_axes.set_ylim(low, max(0.0, float(db.max()) + 3))
        loud_axes.set_ylabel("loudness\n(dBFS)")
        loud_axes.grid(True, axis="y", alpha=0.3)
        loud_axes.tick_params(labelbottom=False)

    if picked:
        slots = slot_scores(result.starts, result.ends, result.window_scores, duration, classes=picked)
        values = np.ma.masked_invalid(slots.scores.T)
        cmap = colormaps["magma"].with_extremes(bad="#d9d9d9")
        mesh = heat_axes.pcolormesh(
            slots.edges, np.arange(len(picked) + 1), values, cmap=cmap, vmin=0.0, vmax=1.0, shading="flat", rasterized=True
        )
        row_of = {index: row for row, index in enumerate(picked)}
        for event in events or ():
            if event.index in row_of:
                heat_axes.add_patch(
                    Rectangle(
                        (event.start, row_of[event.index] + 0.06),
                        event.end - event.start,
                        0.88,
                        fill=False,
                        edgecolor="#00e5ff",
                        linewidth=1.4,
                    )
                )
        bar = figure.colorbar(mesh, ax=[a for a in (loud_axes, heat_axes) if a is not None], pad=0.01, fraction=0.03)
        bar.set_label("score")
        labels = [f"{result.classes[i].name}  {float(result.scores[i]):.2f}" for i in picked]
        heat_axes.set_yticks(np.arange(len(picked)) + 0.5, labels)
        heat_axes.set_ylabel("label  (clip score)")
        heat_axes.set_ylim(len(picked), 0)  # best label on top
        for row in range(1, len(picked)):
            heat_axes.axhline(row, color="white", linewidth=0.5, alpha=0.6)
    else:
        heat_axes.text(0.5, 0.5, "no label selected", ha="center", va="center", transform=heat_axes.transAxes)
        heat_axes.set_yticks([])
    heat_axes.set_xlim(0.0, duration)
    heat_axes.tick_params(axis="y", length=0)
    if duration >= 120:
        step = next((s for s in (15, 30, 60, 120, 300, 600, 900, 1800, 3600) if duration / s <= 12), 7200)
        heat_axes.xaxis.set_major_locator(MultipleLocator(step))
        heat_axes.xaxis.set_major_formatter(FuncFormatter(_clock))
        heat_axes.set_xlabel("time (m:ss)")
    else:
        heat_axes.set_xlabel("time (s)")
    if events:
        heat_axes.set_title("outlined: sound events", loc="right", fontsize=9, color="#555555")

    with written(Path(target), make_folders=True) as stream:
        figure.savefig(stream, format="png", dpi=dpi)
    return target


def _loudness_for(result: TagResult, audio: Any) -> tuple[np.ndarray, np.ndarray] | None:
    if audio is None:
        return None
    if isinstance(audio, str) and audio == "auto":
        if not os.path.isfile(result.source):
            return None
        try:
            return loudness(result.source, duration=result.duration)
        except (AudioError, OSError):
            return None
    return loudness_of_waveform(np.asarray(audio), 32_000)


class PlotWriter:
    """A result sink: one picture per input, into `target` (a `.png` file for a single input, else a
    folder that mirrors the inputs' paths like `--output-dir`: `DIR/<path>/<stem>.png`)."""

    def __init__(self, target: str | os.PathLike[str], *, options: Any = None, single: bool | None = None) -> None:
        require_matplotlib()
        self.target = Path(target)
        self.single = self.target.suffix.lower() == ".png" if single is None else single
        self.path = self.target if self.single else None  # (the file checked with the run's other outputs)
        self.option = "--plot"
        self.options = options
        self.written: list[Path] = []
        self._used: dict[Path, str] = {}

    def write(self, outcome: TagResult | TagFailure) -> None:
        from dymn_cli.writers.editors import per_input_target

        if not isinstance(outcome, TagResult):
            return
        if self.single:
            if self.written:
                raise UsageError(f"{self.target}: one picture file takes one input; give a folder for several")
            path = self.target
        else:
            path = per_input_target(outcome.source, suffix=".png", directory=self.target, used=self._used)
        top = getattr(self.options, "top", 10) or MAX_LABELS
        classes = getattr(self.options, "classes", None)
        settings = getattr(self.options, "events", None)
        events = None
        if settings is not None:
            from dymn_cli.events import detect_events

            levels = settings.levels(len(outcome.classes))
            events = detect_events(outcome, threshold=levels, min_duration=settings.min_duration, classes=classes)
        self.written.append(plot_timeline(outcome, path, top=top, classes=classes, events=events))

    def close(self) -> None:
        pass
