"""The sliding-window grid, whole and streamed."""

import numpy as np
import pytest

from dymn_cli.audio.windows import WindowCutter, WindowGrid
from dymn_cli.errors import UsageError
from dymn_cli.models.frontend_config import FrontEndConfig

SR = 32_000


def reference_windows(x: np.ndarray, grid: WindowGrid) -> list[np.ndarray]:
    out = []
    for start in grid.starts(len(x)):
        piece = x[start : start + grid.window]
        out.append(np.pad(piece, (0, grid.window - len(piece))))
    return out


def test_golden_grid_23_7_s_every_2_5_s():
    grid = WindowGrid.from_seconds(window=10, hop=2.5, sample_rate=SR)
    assert grid.count(758_400) == 7
    np.testing.assert_allclose(grid.starts(758_400) / SR, [0, 2.5, 5, 7.5, 10, 12.5, 15])


@pytest.mark.parametrize("n", [1, 105_600, 320_000, 320_001])
def test_short_audio_is_one_padded_window_until_it_exceeds_the_window(n):
    grid = WindowGrid.from_seconds(window=10, hop=10, sample_rate=SR)
    windows = grid.cut(np.ones(n, dtype=np.float32))
    assert len(windows) == (2 if n > 320_000 else 1)
    assert windows[0][: min(n, 320_000)].sum() == min(n, 320_000)
    assert windows[-1][n - (len(windows) - 1) * 320_000 :].sum() == 0


@pytest.mark.parametrize(
    "window,hop,n,block",
    [(10, 2.5, 758_400, 12_345), (1, 3, 200_000, 777), (2, 2, 64_001, 64_000), (10, 10, 5, 1), (0.5, 0.1, 50_000, 3_000)],
)
def test_streamed_windows_equal_whole_windows(window, hop, n, block):
    grid = WindowGrid.from_seconds(window=window, hop=hop, sample_rate=SR)
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    cutter = WindowCutter(grid)
    streamed = []
    for i in range(0, n, block):
        streamed += list(cutter.feed(x[i : i + block]))
    streamed += list(cutter.finish())
    expected = reference_windows(x, grid)
    assert [k for k, _ in streamed] == list(range(len(expected)))
    for (_, got), want in zip(streamed, expected):
        np.testing.assert_array_equal(got, want)


def test_cutter_keeps_only_what_later_windows_need():
    grid = WindowGrid.from_seconds(window=1, hop=1, sample_rate=SR)
    cutter = WindowCutter(grid)
    for _ in range(100):
        list(cutter.feed(np.zeros(10_000, dtype=np.float32)))
    assert len(cutter._buffer) < grid.window


@pytest.mark.parametrize("window,hop", [(0, 1), (10, 0), (-1, 1), (float("nan"), 1), (0.01, 1)])
def test_bad_window_settings_are_usage_errors(window, hop):
    with pytest.raises(UsageError):
        FrontEndConfig().window_grid(window=window, hop=hop)


def test_the_shortest_window_is_the_front_ends_nine_frames():
    config = FrontEndConfig()
    assert config.window_grid(window=0.09, hop=1).window == 9 * config.hop_length
    with pytest.raises(UsageError, match=r"at least 0.09 s \(9 log-mel frames\)"):
        config.window_grid(window=0.089, hop=1)
