"""Sound events cut from window scores: constructed results whose sounds sit at known times."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dymn_cli.audio.windows import WindowGrid
from dymn_cli.audioset.labels import audioset_classes
from dymn_cli.events import EventSettings, detect_events, slot_scores
from dymn_cli.tagger import TagResult

RATE = 32_000
DOG, BARK, SPEECH = 74, 75, 0


def grid_times(duration: float, window: float, hop: float) -> tuple[np.ndarray, np.ndarray]:
    """Window starts and ends exactly as the tagger computes them."""
    grid = WindowGrid.from_seconds(window=window, hop=hop, sample_rate=RATE)
    starts = grid.starts(round(duration * RATE)) / RATE
    return starts, starts + grid.window / RATE


def result_with_sounds(
    duration: float,
    window: float,
    hop: float,
    sounds: dict[int, list[tuple[float, float]]],
    *,
    high: float = 0.9,
    low: float = 0.1,
) -> TagResult:
    """A result whose windows score `high` for a class whenever one of its sounds overlaps the window
    (what a tagger trained on clip-level labels does) and `low` otherwise."""
    starts, ends = grid_times(duration, window, hop)
    scores = np.full((len(starts), 527), low, dtype=np.float32)
    for index, spans in sounds.items():
        for a, b in spans:
            scores[(starts < b) & (ends > a), index] = high
    return TagResult(
        source="synthetic.wav",
        duration=duration,
        scores=scores.mean(axis=0),
        starts=starts,
        ends=ends,
        window_scores=scores,
        embeddings=np.zeros((len(starts), 4), dtype=np.float32),
    )


def test_hop_equal_to_window_gives_whole_windows_clipped_at_the_end():
    result = result_with_sounds(23.7, 10.0, 10.0, {DOG: [(12.0, 14.0)], SPEECH: [(21.0, 23.7)]})
    events = detect_events(result, threshold=0.5)
    assert [(e.label, e.start, e.end) for e in events] == [("Dog", 10.0, 20.0), ("Speech", 20.0, 23.7)]
    assert all(e.peak == pytest.approx(0.9) and e.mean == pytest.approx(0.9) for e in events)
    assert events[0].mid == "/m/0bt9lr" and events[0].index == DOG


def test_overlapping_windows_recover_the_edges_on_the_hop_grid():
    # 10 s windows every second: whole windows would smear this bark over 19 s.
    result = result_with_sounds(60.0, 10.0, 1.0, {BARK: [(23.3, 31.7)]})
    (event,) = detect_events(result, threshold=0.5)
    assert (event.start, event.end) == (23.0, 32.0)


def test_two_sounds_of_one_label_are_two_events_and_sorted_by_start():
    result = result_with_sounds(60.0, 4.0, 1.0, {DOG: [(40.0, 45.0), (10.0, 12.5)], SPEECH: [(20.0, 30.0)]})
    events = detect_events(result, threshold=0.5)
    assert [(e.label, e.start, e.end) for e in events] == [("Dog", 10.0, 13.0), ("Speech", 20.0, 30.0), ("Dog", 40.0, 45.0)]


def test_min_duration_drops_short_events():
    result = result_with_sounds(60.0, 2.0, 0.5, {DOG: [(10.0, 10.3), (30.0, 35.0)]})
    assert len(detect_events(result, threshold=0.5)) == 2
    (kept,) = detect_events(result, threshold=0.5, min_duration=1.0)
    assert (kept.start, kept.end) == (30.0, 35.0)
    assert detect_events(result, threshold=0.5, min_duration=5.0)[0].duration == pytest.approx(5.0)  # exactly 5 s is kept


def test_peak_and_duration_weighted_mean():
    # hop == window: slots are the windows; the last one is cut at the duration (7 s of 10).
    starts = np.array([0.0, 10.0, 20.0])
    scores = np.zeros((3, 527), dtype=np.float32)
    scores[:, DOG] = [0.6, 0.9, 0.7]
    result = TagResult("x", 27.0, scores.mean(axis=0), starts, starts + 10, scores, np.zeros((3, 2)))
    (event,) = detect_events(result, threshold=0.5)
    assert (event.start, event.end) == (0.0, 27.0)
    assert event.peak == pytest.approx(0.9)
    assert event.mean == pytest.approx((0.6 * 10 + 0.9 * 10 + 0.7 * 7) / 27)
    assert detect_events(result, threshold=0.65)[0].start == 10.0


def test_a_slot_takes_the_lowest_of_its_covering_windows():
    starts = np.array([0.0, 1.0, 2.0])  # 2 s windows every second over 4 s
    scores = np.zeros((3, 527), dtype=np.float32)
    scores[:, DOG] = [0.2, 0.8, 0.6]
    grid = slot_scores(starts, starts + 2, scores, 4.0, classes=[DOG])
    np.testing.assert_allclose(grid.edges, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(grid.scores[:, 0], [0.2, 0.2, 0.6, 0.6])


def test_hop_longer_than_window_leaves_gaps_that_are_never_events():
    result = result_with_sounds(10.0, 1.0, 2.0, {DOG: [(0.0, 10.0)]})
    events = detect_events(result, threshold=0.5)
    assert [(e.start, e.end) for e in events] == [(0.0, 1.0), (2.0, 3.0), (4.0, 5.0), (6.0, 7.0), (8.0, 9.0)]


def test_classes_restrict_and_threshold_is_inclusive():
    result = result_with_sounds(20.0, 10.0, 10.0, {DOG: [(0.0, 5.0)], SPEECH: [(0.0, 5.0)]}, high=0.5)
    assert {e.label for e in detect_events(result, threshold=0.5)} == {"Dog", "Speech"}
    assert {e.label for e in detect_events(result, threshold=0.5, classes=[SPEECH])} == {"Speech"}
    assert detect_events(result, threshold=0.51) == []


def test_as_dict_and_settings_validation():
    event = detect_events(result_with_sounds(10.0, 10.0, 10.0, {DOG: [(1, 2)]}), threshold=0.5)[0]
    assert set(event.as_dict()) == {"label", "mid", "index", "start", "end", "peak", "mean"}
    with pytest.raises(ValueError):
        EventSettings(threshold=1.5)
    with pytest.raises(ValueError):
        detect_events(result_with_sounds(10.0, 10.0, 10.0, {}), min_duration=-1)
    with pytest.raises(ValueError):
        slot_scores(np.array([1.0, 0.0]), np.array([2.0, 1.0]), np.zeros((2, 3)), 2.0)


@settings(max_examples=150, deadline=None)
@given(
    window=st.sampled_from([1.0, 2.0, 3.0, 5.0, 10.0]),
    ratio=st.sampled_from([1, 2, 3, 4, 10]),
    onset=st.floats(0.0, 50.0),
    length=st.floats(0.05, 30.0),
    extra=st.floats(0.0, 20.0),
)
def test_edges_within_one_hop_of_the_truth(window, ratio, onset, length, extra):
    """Any sound whose onset comes after the first window ends and whose end comes before the last
    window starts is found with both edges less than one hop from the truth; nearer the ends of the
    file, the event reaches the file's start or end (the windows cannot tell more)."""
    hop = window / ratio
    a, b = onset, onset + length
    duration = b + extra + 0.01
    result = result_with_sounds(duration, window, hop, {DOG: [(a, b)]})
    events = detect_events(result, threshold=0.5)
    assert len(events) == 1
    event = events[0]
    last_start = float(result.starts[-1])
    if a >= window:
        assert abs(event.start - a) < hop + 1e-6
    else:
        assert event.start == 0.0 or abs(event.start - a) < hop + 1e-6
    if b <= last_start:
        assert abs(event.end - b) < hop + 1e-6
    else:
        assert event.end == pytest.approx(duration) or abs(event.end - b) < hop + 1e-6
    assert 0.0 <= event.start < event.end <= duration + 1e-9
    assert math.isclose(event.peak, 0.9, rel_tol=1e-6)


def test_on_a_real_result_events_match_the_window_scores(golden_dir, frontend_golden):
    from dymn_cli import Tagger

    tagger = Tagger(weights=golden_dir / "dymn04_seed0.pt", device="cpu")
    result = tagger.tag(frontend_golden["long_23.7s"], sample_rate=32_000, window=10.0, hop=10.0)
    threshold = float(np.quantile(result.window_scores, 0.9))
    events = detect_events(result, threshold=threshold)
    assert events
    for e in events:
        windows = [k for k, s in enumerate(result.starts) if e.start <= s < e.end]
        assert all(result.window_scores[k, e.index] >= threshold for k in windows)
        assert e.end == 23.7 or result.window_scores[int(round(e.end / 10)), e.index] < threshold
        assert e.peak == pytest.approx(float(result.window_scores[windows, e.index].max()))
    assert events == sorted(events, key=lambda e: (e.start, -e.peak, e.index))
    assert audioset_classes()[events[0].index].name == events[0].label
