"""examples/web in a real headless Chromium: the page loads a graph, tags a dropped file with
onnxruntime-web, decoding and resampling in the browser, and shows what dymn-tag computes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile

from dymn_cli.audio.decode import load_audio
from dymn_cli.audio.windows import WindowGrid
from tests.examples.browser import headless_chromium, served, which_node_modules
from tests.onnx_graphs import tiny_metadata, tiny_reference, write_tiny_graph
from tests.support import dymn_tag

PAGE = Path(__file__).parents[2] / "examples" / "web"
RATE = 32_000
pytestmark = pytest.mark.slow  # a browser


def reference_scores(waveform: np.ndarray) -> np.ndarray:
    """The clip scores dymn-tag computes with the tiny graph: windows, sigmoid, mean."""
    metadata = tiny_metadata()
    grid = WindowGrid.from_seconds(window=metadata.window, hop=metadata.hop, sample_rate=RATE)
    logits, _ = tiny_reference(grid.cut(waveform))
    return (1 / (1 + np.exp(-logits))).mean(axis=0)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    for name in ("index.html", "page.js", "tagger.js"):
        (folder / name).symlink_to(PAGE / name)
    (folder / "node_modules").symlink_to(which_node_modules(PAGE))
    write_tiny_graph(folder / "model.onnx")
    graph = (folder / "model.onnx").read_bytes()
    (folder / "truncated.onnx").write_bytes(graph[: len(graph) // 2])
    other = onnx.load(folder / "model.onnx")
    del other.metadata_props[:]
    onnx.save(other, folder / "other.onnx")
    (folder / "text.onnx").write_text("<html>a page, not a graph</html>")
    return folder


@pytest.fixture(scope="module")
def browser(site):
    with served(site) as url, headless_chromium() as driver:
        driver.base_url, driver.site = url, site
        yield driver


def open_page(browser, query: str = "") -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(browser.base_url + "index.html" + query)
    wait = WebDriverWait(browser, 120)
    wait.until(lambda d: d.find_element("id", "status").text not in ("", "Loading the model…"))
    return browser.find_element("id", "status").text


def tag_in_page(browser, path: Path) -> dict:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.execute_script("window.dymnResult = null")
    browser.find_element("id", "audio-file").send_keys(str(path))
    WebDriverWait(browser, 120).until(lambda d: d.execute_script("return window.dymnResult"))
    return browser.execute_script("return window.dymnResult")


def test_the_page_tags_a_32k_file_exactly_as_dymn_tag_scores_it(browser, tmp_path):
    assert open_page(browser) == "Ready: drop an audio file."
    t = np.arange(int(3.3 * RATE)) / RATE
    waveform = (0.3 * np.sin(2 * np.pi * 440 * t) * (t > 1.2) + 0.05 * np.random.default_rng(1).normal(size=t.size)).astype(
        np.float32
    )
    soundfile.write(tmp_path / "tone.wav", waveform, RATE, subtype="FLOAT")
    result = tag_in_page(browser, tmp_path / "tone.wav")
    expected = reference_scores(load_audio(tmp_path / "tone.wav"))
    np.testing.assert_allclose(result["scores"], expected, rtol=1e-5, atol=1e-6)
    assert [entry["index"] for entry in result["labels"]] == list(np.argsort(-expected, kind="stable"))
    assert len(result["windows"]) == 6 and result["windows"][-1]["start"] == 2.5
    rows = browser.find_elements("css selector", "#top tbody tr")
    assert [row.text.split()[1:3] for row in rows[:2]] == [
        ["class", str(np.argmax(expected))],
        ["class", str(np.argsort(-expected)[1])],
    ]
    assert "tone.wav: 3.3 s of audio, 6 windows" in browser.find_element("id", "status").text
    cli = dymn_tag([str(tmp_path / "tone.wav"), "--weights", str(browser.site / "model.onnx"), "--top", "5", "-f", "jsonl"])
    assert cli.returncode == 0, cli.stderr
    labels = json.loads(cli.stdout)["labels"]
    assert [entry["label"] for entry in labels] == [entry["label"] for entry in result["labels"][:5]]
    np.testing.assert_allclose(
        [entry["score"] for entry in labels], [entry["score"] for entry in result["labels"][:5]], atol=1e-5
    )
    assert browser.find_element("id", "timeline").is_displayed()


def test_the_browser_resamples_44k_stereo_to_the_models_rate(browser, tmp_path):
    open_page(browser)
    t = np.arange(int(2.0 * 44_100)) / 44_100
    left = 0.4 * np.sin(2 * np.pi * 300 * t)
    right = 0.1 * np.sign(np.sin(2 * np.pi * 3 * t))
    soundfile.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 44_100, subtype="PCM_16")
    result = tag_in_page(browser, tmp_path / "stereo.wav")
    expected = reference_scores(load_audio(tmp_path / "stereo.wav"))  # (dymn-tag resamples with soxr)
    np.testing.assert_allclose(result["scores"], expected, atol=0.01)
    assert result["duration"] == pytest.approx(2.0, abs=1e-3)


def test_a_file_the_browser_cannot_decode_is_one_line_and_the_page_goes_on(browser, tmp_path):
    open_page(browser)
    (tmp_path / "notes.wav").write_text("not audio at all")
    result = tag_in_page(browser, tmp_path / "notes.wav")
    status = browser.find_element("id", "status")
    assert "error" in result and status.text.startswith("notes.wav: cannot be decoded by this browser")
    soundfile.write(tmp_path / "quiet.wav", np.zeros(RATE // 2, np.float32), RATE)
    assert tag_in_page(browser, tmp_path / "quiet.wav")["path"] == "quiet.wav"


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("missing.onnx", "missing.onnx: HTTP 404"),
        ("truncated.onnx", "truncated.onnx: a truncated graph file"),
        ("other.onnx", "other.onnx: not a graph written by `dymn-tag export`"),
        ("text.onnx", "text.onnx: "),
    ],
)
def test_a_graph_that_is_not_ours_is_one_line(browser, model, message):
    status = open_page(browser, f"?model={model}")
    assert message in status and browser.find_element("id", "status").get_attribute("class") == "error"


def test_an_exported_dymn04_runs_in_the_page_as_in_dymn_tag(browser, calibrated_weights, tmp_path):
    """A real graph from `dymn-tag export` (every operator of the front end and of DyMN) in
    onnxruntime-web, against the CLI on the same graph; a BatchNorm-calibrated checkpoint, whose scores
    do not flip with float32 rounding."""
    graph = browser.site / "dymn04.onnx"
    if not graph.exists():
        done = dymn_tag(["export", "--weights", str(calibrated_weights("dymn04")), "-o", str(graph)])
        assert done.returncode == 0, done.stderr
    assert open_page(browser, "?model=dymn04.onnx") == "Ready: drop an audio file."
    assert "dymn04.onnx (" in browser.find_element("id", "model").text
    t = np.arange(int(4.5 * RATE)) / RATE
    chirp = 0.3 * np.sin(2 * np.pi * (300 + 400 * t) * t) + 0.02 * np.random.default_rng(2).normal(size=t.size)
    soundfile.write(tmp_path / "chirp.wav", chirp.astype(np.float32), RATE, subtype="FLOAT")
    result = tag_in_page(browser, tmp_path / "chirp.wav")
    cli = dymn_tag([str(tmp_path / "chirp.wav"), "--weights", str(graph), "--top", "5", "-f", "jsonl"])
    assert cli.returncode == 0, cli.stderr
    labels = json.loads(cli.stdout)["labels"]
    assert [entry["label"] for entry in labels] == [entry["label"] for entry in result["labels"][:5]]
    np.testing.assert_allclose(
        [entry["score"] for entry in labels], [entry["score"] for entry in result["labels"][:5]], atol=1e-4
    )
