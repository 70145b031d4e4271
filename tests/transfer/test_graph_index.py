"""An index made with an ONNX graph (`--weights MODEL.onnx --embeddings`) is searched with that graph, with
no option, and `train` learns a head from a graph's embeddings: both through onnxruntime, where they
took the graph for a PyTorch checkpoint. Real `dymn-tag` runs over the tiny graph of tests/onnx_graphs.py."""

from __future__ import annotations

import json

from tests.audio_factory import make_audio_file
from tests.onnx_graphs import write_tiny_graph
from tests.support import dymn_tag


def test_an_index_made_with_a_graph_is_searched_with_it_and_a_head_trained_on_it(tmp_path):
    graph = write_tiny_graph(tmp_path / "tiny.onnx")
    for kind in ("sine", "noise"):
        (tmp_path / "data" / kind).mkdir(parents=True)
    sounds = [
        make_audio_file(tmp_path / "data" / cls / f"{n}.wav", seconds=1.0, seed=n, kind=cls)
        for cls in ("sine", "noise")
        for n in range(2)
    ]
    index = tmp_path / "index.npz"
    done = dymn_tag([*map(str, sounds), "--weights", str(graph), "--embeddings", str(index), "-o", "/dev/null", "-f", "jsonl"])
    assert done.returncode == 0, done.stderr
    found = dymn_tag(["search", str(sounds[2]), "--index", str(index), "--top", "1", "-f", "jsonl"])
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["path"] == str(sounds[2])
    trained = dymn_tag(["train", str(tmp_path / "data"), "--weights", str(graph), "-o", str(tmp_path / "head.safetensors")])
    assert trained.returncode == 0 and (tmp_path / "head.safetensors").is_file(), trained.stderr
