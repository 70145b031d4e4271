"""Tag a file with a graph from `dymn-tag export`: numpy, soundfile, soxr and onnxruntime, no torch.

    python examples/onnx_tag.py MODEL.onnx AUDIO [TOP]

The graph holds the whole front end and says what it needs in its metadata (labels, window, hop);
the windows are cut as dymn-tag cuts them, the last one zero-padded, and their scores averaged.
"""

import json
import math
import sys

import numpy as np
import onnxruntime
import soundfile
import soxr

graph, path, top = sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 5
session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
labels, rate = json.loads(meta["labels"]), int(meta["sample_rate"])
window, hop = round(float(meta["window"]) * rate), round(float(meta["hop"]) * rate)

audio, source_rate = soundfile.read(path, dtype="float32", always_2d=True)
audio = np.mean(audio, axis=1)  # mono, as librosa.load does
if source_rate != rate:  # soxr "HQ", padded to librosa's length
    length = math.ceil(len(audio) * rate / source_rate)
    audio = np.pad(soxr.resample(audio, source_rate, rate, quality="HQ"), (0, length))[:length]
count = 1 + math.ceil(max(0, len(audio) - window) / hop)
audio = np.pad(audio, (0, max(0, (count - 1) * hop + window - len(audio))))
windows = np.stack([audio[k * hop : k * hop + window] for k in range(count)]).astype(np.float32)

logits = np.concatenate([session.run(["logits"], {"waveform": windows[k : k + 16]})[0] for k in range(0, count, 16)])
if meta["activation"] == "softmax":  # a head of single-label classes
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    scores = (exp / exp.sum(axis=1, keepdims=True)).mean(axis=0)
else:  # a sigmoid per class (tanh's form never overflows)
    scores = (0.5 + 0.5 * np.tanh(logits / 2)).mean(axis=0)
for index in np.argsort(-scores)[:top]:
    print(f"{scores[index]:.4f}  {labels[index]}")
