"""The Python API: tag a file and an array, read clip scores, windows and embeddings.

    python examples/tag_with_python.py [path/to/checkpoint.pt]

Without an argument it uses the published dymn10_as model (downloaded once into the cache).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from dymn_cli import Tagger

AUDIO = Path(__file__).parent / "audio" / "chimes_and_noise.wav"

tagger = Tagger(weights=sys.argv[1]) if len(sys.argv) > 1 else Tagger("dymn10_as")
result = tagger.tag(AUDIO, window=4.0, hop=2.0)
print(f"{AUDIO.name}: {result.duration:.1f} s, {len(result.starts)} windows on {tagger.device}")
for label, score in result.top(5):
    print(f"  {score:.3f}  {label}")

best = result.window_scores.argmax(axis=1)
for start, end, index in zip(result.starts, result.ends, best):
    print(f"  {start:5.1f}-{end:5.1f} s  {result.classes[index].name}")

# Arrays in memory work too, at any sample rate: here one second of 440 Hz at 44.1 kHz.
tone = np.sin(2 * np.pi * 440 * np.arange(44_100) / 44_100).astype(np.float32)
embedding = tagger.embed(tone, sample_rate=44_100)
print(f"embedding of a 440 Hz tone: {embedding.shape[0]} values, norm {np.linalg.norm(embedding):.2f}")
