"""A run's outcomes handed to its outputs in input order, tagged or carried over (`--resume`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from dymn_cli.results import TagFailure, TagResult
from dymn_cli.run.inputs import Input
from dymn_cli.run.summary import RunSummary
from dymn_cli.writers.previous import PreviousRecords

__all__ = ["InputOrder"]


class InputOrder:
    """Hands outcomes to every output in input order: the records known without the tagger (carried
    over from the earlier outputs, or failed because the input does not exist) go in between the
    tagged ones where they belong. An output that held a record of an input already keeps it (with
    several -o, an input is tagged again when another output lacks it): no output gets one twice."""

    def __init__(
        self, plan: Any, outputs: Any, summary: RunSummary, on_outcome: Callable[[TagResult | TagFailure], None] | None
    ) -> None:
        self.plan, self.outputs, self.summary, self.on_outcome = plan, outputs, summary, on_outcome
        self.carried = deque(i for i in plan.inputs if plan.done(i.path) or i.path in plan.missing)
        self.position = {i.path: n for n, i in enumerate(plan.inputs)}
        self.reached = -1  # the position of the last input whose records are written

    def tagged(self, item: Input, outcome: TagResult | TagFailure) -> None:
        while self.carried and self.position[self.carried[0].path] < self.position[item.path]:
            self._settle(self.carried.popleft())
        outcome.source = item.path
        self._deliver(item, outcome)

    def settle_the_rest(self) -> None:
        while self.carried:
            self._settle(self.carried.popleft())

    def unreached_records(self) -> list[tuple[Any, deque[Input], PreviousRecords]]:
        """For each output, what it held that this run has not written yet (not the missing inputs: not reached)."""
        unreached = self.plan.inputs[self.reached + 1 :]
        return [(writer, deque(i for i in unreached if i.path in held), held) for writer, held in self.outputs.files]

    def _settle(self, done: Input) -> None:
        if done.path in self.plan.missing:
            self._deliver(done, TagFailure(done.path, "file not found"))  # (the decoder's words for a file gone later)
        else:
            for writer, held in self.outputs.files:
                writer.write_existing(done.path, held[done.path])
            self.reached = self.position[done.path]

    def _deliver(self, item: Input, outcome: TagResult | TagFailure) -> None:
        self.summary.count(outcome)
        held = {id(writer): earlier for writer, earlier in self.outputs.files}
        for sink in self.outputs.sinks:
            earlier = held.get(id(sink))
            if earlier is not None and item.path in earlier:
                sink.write_existing(item.path, earlier[item.path])
            else:
                sink.write(outcome)
        self.reached = self.position[item.path]
        if self.on_outcome is not None:
            self.on_outcome(outcome)
