"""What a run reports when it ends: counts, audio and wall time, and where the time went."""

from __future__ import annotations

from dataclasses import dataclass, field

from dymn_cli.errors import Interrupted, OutputClosed, UsageError
from dymn_cli.inference.pipeline import PipelineStats
from dymn_cli.results import TagFailure, TagResult
from dymn_cli.run.inputs import InputProblem

__all__ = ["RunSummary", "clock"]


@dataclass
class RunSummary:
    tagged: int = 0
    failed: int = 0
    skipped: int = 0
    audio_seconds: float = 0.0
    elapsed: float = 0.0
    failures: list[TagFailure] = field(default_factory=list)
    problems: list[InputProblem] = field(default_factory=list)
    interrupted: Interrupted | None = None
    output_closed: bool = False  # the reader of a stream output went away: the run stopped there
    load_seconds: float = 0.0  # loading the model (0: a tagger was passed in ready)
    pipeline: PipelineStats = field(default_factory=PipelineStats)

    @property
    def exit_code(self) -> int:
        if self.output_closed:
            return OutputClosed.exit_code
        if self.interrupted is not None:
            return self.interrupted.exit_code
        if self.problems:
            return UsageError.exit_code
        return 1 if self.failures else 0

    def count(self, outcome: TagResult | TagFailure) -> None:
        """Add one input's outcome to the counts."""
        if isinstance(outcome, TagFailure):
            self.failed += 1
            self.failures.append(outcome)
        else:
            self.tagged += 1
            self.audio_seconds += outcome.duration

    def line(self, width: int = 90) -> str:
        """One line of at most `width` characters (100 columns with the `dymn-tag: ` before it): counts,
        audio and wall time as h:mm:ss, and where the time went for as much as fits."""
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        stopped = f", {self.interrupted}" if self.interrupted else ""
        base = (
            f"{self.tagged} tagged, {self.failed} failed{skipped}, {clock(self.audio_seconds)} of audio in {clock(self.elapsed)}"
        )
        candidates = [f"{base} ({detail}){stopped}" for detail in self.timings()] + [f"{base}{stopped}"]
        return next((line for line in candidates if len(line) <= width), candidates[-1])

    def timings(self) -> list[str]:
        """Where the time went, longest first, when the run tagged anything on this machine: loading
        the model, the network, and waiting for decoded audio (if that limited the speed)."""
        stats = self.pipeline
        if not stats.windows or self.elapsed <= 0:
            return []
        speed = f"{self.audio_seconds / self.elapsed:.0f}x realtime"
        load = f"load {self.load_seconds:.1f} s, " if self.load_seconds else ""
        network, waiting = f"network {stats.inference:.1f} s", f"waiting for audio {stats.decoding:.1f} s"
        bottleneck = waiting if stats.decoding > stats.inference else network
        return [f"{speed}; {load}{network}, {waiting}", f"{speed}; {load}{bottleneck}", speed]


def clock(seconds: float) -> str:
    """h:mm:ss, rounded to the second."""
    total = max(0, round(seconds))
    return f"{total // 3600}:{total // 60 % 60:02d}:{total % 60:02d}"
