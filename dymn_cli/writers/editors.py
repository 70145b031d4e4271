"""Sound-event files for audio editors, one per input: Audacity label tracks and Raven selection tables.

`--format audacity` writes `<stem>.labels.txt` (`start<TAB>end<TAB>label`, what Audacity's
File > Import > Labels reads); `--format raven` writes `<stem>.Table.1.selections.txt`, a Raven
selection table (File > Open Selection Table). Each goes next to its input, or under `--output-dir`
mirroring the input's path (see `per_input_target`). Events are cut by `dymn_cli.events`. Files are
written by the rules of `dymn_cli.writers.targets`: to a temporary name, renamed into place (through a link),
so none is ever half-written; a run replaces the files of an earlier one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from dymn_cli.atomic import fitted_name, name_limit
from dymn_cli.audio.decode import audio_info
from dymn_cli.audio.paths import STDIN
from dymn_cli.errors import DymnError, UsageError
from dymn_cli.events import DEFAULT_THRESHOLD, EventSettings, SoundEvent, detect_events, strongest_labels
from dymn_cli.results import TagFailure, TagResult
from dymn_cli.writers.base import OutputOptions, Writer
from dymn_cli.writers.output_file import written
from dymn_cli.writers.targets import check_folder

__all__ = ["AudacityWriter", "EventFileWriter", "RavenWriter", "per_input_target", "event_settings"]


def per_input_target(source: str, *, suffix: str, directory: Path | None, used: dict[Path, str] | None = None) -> Path:
    """Where the file made for input `source` goes: `<stem><suffix>`, next to the input or under `directory`.

    Under `directory` the input's path is mirrored: relative to the current folder when the input is
    inside it (`rec/a/x.wav` -> `DIR/rec/a/x<suffix>`), else its absolute path without the root
    (`/data/x.wav` -> `DIR/data/x<suffix>`); standard input becomes `DIR/stdin<suffix>`. `used` maps the
    targets already given out in this run to their input: a second input with the same stem in the
    same folder (`a.wav`, `a.flac`) gets its full name instead (`a.flac<suffix>`), then a number.
    """
    if source == STDIN:
        if directory is None:
            raise UsageError("audio from standard input (-) needs --output-dir for its per-input files")
        place, stem, name = directory, "stdin", "stdin"
    else:
        path = Path(source)
        if directory is None:
            place = path.parent
        else:
            absolute = Path(os.path.abspath(source))
            try:
                relative = absolute.relative_to(Path.cwd())
            except ValueError:
                relative = absolute.relative_to(absolute.anchor)
            place = directory / relative.parent
        stem, name = path.stem or path.name, path.name
    candidates = [_fitting(place, f"{stem}{suffix}", suffix), _fitting(place, f"{name}{suffix}", suffix)]
    candidates += [_fitting(place, f"{name}.{n}{suffix}", suffix) for n in range(2, 10_000)]
    for target in candidates:
        if used is None or used.get(target, source) == source:
            if used is not None:
                used[target] = source
            return target
    raise UsageError(f"too many inputs named like {source!r}")  # pragma: no cover


def _fitting(place: Path, name: str, suffix: str) -> Path:
    """`place / name`, the name shortened (`fitted_name`, the suffix kept) when it is longer than the
    file system takes: an input with a long name still gets its file, and costs no other input its own."""
    existing = place
    while not existing.is_dir() and existing != existing.parent:
        existing = existing.parent
    limit = name_limit(existing)
    if len(os.fsencode(name)) <= limit:
        return place / name
    shortened = fitted_name(name.removesuffix(suffix), limit=limit, reserve=len(os.fsencode(suffix)))
    return place / f"{shortened}{suffix}"


def event_settings(options: OutputOptions) -> EventSettings:
    """The options' event settings, else events at `--threshold` (or the default threshold)."""
    if options.events is not None:
        return options.events
    return EventSettings(
        threshold=options.threshold if options.threshold is not None else DEFAULT_THRESHOLD, per_class=options.thresholds
    )


class EventFileWriter(Writer):
    """Base of the per-input event exports; `target` is the output folder (None: next to each input)."""

    per_input = True
    resumable = False
    extension = ".txt"
    suffix: ClassVar[str]

    def __init__(self, target: Path | None, *, options: OutputOptions, header: dict[str, Any], append: bool = False) -> None:
        super().__init__(target, options=options, header=header, append=append)
        self.settings = event_settings(options)
        self.sample_rate = int(header.get("settings", {}).get("sample_rate", 32_000))
        self.written: list[Path] = []
        self._used: dict[Path, str] = {}

    @classmethod
    def validate(cls, *, options: OutputOptions, target: Path | None, inputs: Sequence[Any]) -> None:
        super().validate(options=options, target=target, inputs=inputs)
        if target is not None and target.exists() and not target.is_dir():
            raise UsageError(f"{target}: --format {cls.name} writes one file per input: give a folder (--output-dir)")
        if target is not None:
            check_folder(target, option="--output-dir")
        if target is None and any(getattr(i, "path", i) == STDIN for i in inputs):
            raise UsageError(f"--format {cls.name} writes one file per input: audio from standard input (-) needs --output-dir")

    def target_for(self, source: str) -> Path:
        return per_input_target(source, suffix=self.suffix, directory=self.target, used=self._used)

    def events(self, result: TagResult) -> list[SoundEvent]:
        levels = self.settings.levels(len(result.classes))
        found = detect_events(result, threshold=levels, min_duration=self.settings.min_duration, classes=self.options.classes)
        return strongest_labels(found, self.options.top)

    def render(self, events: list[SoundEvent]) -> str:
        raise NotImplementedError

    def write(self, outcome: TagResult | TagFailure) -> None:
        if isinstance(outcome, TagFailure):
            return  # reported on stderr; no file, so that a failed input is not mistaken for a quiet one
        path = self.target_for(outcome.source)
        with written(path, make_folders=True) as out:
            out.write(self.render(self.events(outcome)))
        self.written.append(path)


def _seconds(value: float) -> str:
    return f"{value:.6f}"


class AudacityWriter(EventFileWriter):
    """Audacity label track: `start<TAB>end<TAB>label` a line, times in seconds."""

    name = "audacity"
    suffix = ".labels.txt"

    def render(self, events: list[SoundEvent]) -> str:
        return "".join(f"{_seconds(e.start)}\t{_seconds(e.end)}\t{_clean(e.label)}\n" for e in events)


class RavenWriter(EventFileWriter):
    """Raven selection table: one selection per event on the spectrogram view, full band."""

    name = "raven"
    suffix = ".Table.1.selections.txt"
    COLUMNS = (
        "Selection",
        "View",
        "Channel",
        "Begin Time (s)",
        "End Time (s)",
        "Low Freq (Hz)",
        "High Freq (Hz)",
        "Label",
        "MID",
        "Peak Score",
        "Mean Score",
    )

    def write(self, outcome: TagResult | TagFailure) -> None:
        if isinstance(outcome, TagResult):
            self._band = self.band(outcome.source)
        super().write(outcome)

    def band(self, source: str) -> float:
        """The highest frequency of the selections: the input's own Nyquist frequency (its spectrogram in
        Raven ends there), at most the model's (the network hears nothing above it)."""
        model_nyquist = self.sample_rate / 2
        if source == STDIN:
            return model_nyquist  # (read once, and gone)
        try:
            return min(audio_info(source).sample_rate / 2, model_nyquist)
        except (DymnError, OSError):  # (gone since it was tagged: the model's band, which it heard)
            return model_nyquist

    def render(self, events: list[SoundEvent]) -> str:
        nyquist = f"{getattr(self, '_band', self.sample_rate / 2):.1f}"
        lines = ["\t".join(self.COLUMNS)]
        for number, e in enumerate(events, start=1):
            lines.append(
                "\t".join(
                    [
                        str(number),
                        "Spectrogram 1",
                        "1",
                        _seconds(e.start),
                        _seconds(e.end),
                        "0.0",
                        nyquist,
                        _clean(e.label),
                        e.mid,
                        f"{e.peak:.6f}",
                        f"{e.mean:.6f}",
                    ]
                )
            )
        return "\n".join(lines) + "\n"


def _clean(text: str) -> str:
    """A label on one line without tabs (the AudioSet names have none; be safe anyway)."""
    return " ".join(text.split())
