"""The HEAR 2021 API (https://hearbenchmark.com): DyMN and MobileNetV3 embeddings for the benchmark's tasks.

    model = load_model("dymn10_as")                    # or a checkpoint path; a torch module
    scene = get_scene_embeddings(audio, model)         # [n, samples] -> [n, model.scene_embedding_size]
    frames, ms = get_timestamp_embeddings(audio, model)  # [n, T, model.timestamp_embedding_size], [n, T]

`hear-validator dymn_cli.hear --model CHECKPOINT` checks it (`benchmarks/hear_validate.sh`).

**What an embedding is.** The network's logits and its pooled features, concatenated (`[logits,
embedding]`, 527 + 960 = 1487 values for dymn10), as the authors' HEAR wrapper for their MobileNets
does in its "all" mode. Both come from one pass of the tagging engine (`inference.engine`), the same
batched front end and network as `dymn-tag`, in float32.

**Scene embeddings.** A clip of up to 10 s (the length the models were trained on) is one pass over
the whole clip, unpadded. A longer clip is the mean over 10 s windows every 5 s, the last one ending
where the clip ends, so that no window holds padding.

**Timestamp embeddings: 160 ms windows every 50 ms.** HEAR's event tasks score onsets with a 50 ms
tolerance and suggest a hop of 50 ms or less; 50 ms (1600 samples at 32 kHz, exact) is the longest hop
that serves them. A frame of one long pass cannot: DyMN's feature map has a time stride of 32 log-mel
frames (320 ms), and its dynamic convolutions, dynamic ReLUs and coordinate attention all take their
parameters from context pooled over the whole input, so every frame of that map already sees the
whole clip. Each timestamp is instead the embedding of its own short window, centred on it (the audio
is zero-padded by half a window at both ends, so the first timestamp is 0 ms and the last is within
the clip). 160 ms (16 log-mel frames; the networks take 9 at least) is the window the authors chose
for their MobileNets in HEAR: long enough for a note onset or a footstep to be seen whole, short
enough to place it. The cost grows with window / hop: 160 / 50 runs the network over 3.2 s of
windows for every second of audio (320 / 50 would be 6.4 s, 960 / 50 19.2 s). `load_model` takes
other values (`timestamp_window`, `timestamp_hop`, seconds).

Every window is computed as if it were alone (the engine's per-window arithmetic on the CPU), so an
embedding does not depend on the other clips in the batch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dymn_cli.audio.windows import MAX_BATCH_SAMPLES
from dymn_cli.errors import UsageError
from dymn_cli.inference.engine import InferenceEngine
from dymn_cli.models.ensemble import load_members
from dymn_cli.models.frontend_config import MIN_WINDOW_FRAMES, FrontEndConfig

__all__ = ["HearModel", "get_scene_embeddings", "get_timestamp_embeddings", "load_model"]

DEFAULT_MODEL = "dymn10_as"
TIMESTAMP_WINDOW = 0.16
"""Seconds of audio behind each timestamp embedding (see the module's docstring)."""
TIMESTAMP_HOP = 0.05
"""Seconds between timestamps: HEAR's suggested longest hop."""
SCENE_WINDOW = 10.0
"""The longest clip embedded in one pass; longer clips are the mean of windows this long."""
SCENE_HOP = 5.0
_ROWS_PER_PART = 4096  # (windows copied out of the view at a time: 84 MB of 160 ms windows)
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors")


class HearModel(nn.Module):
    """A network and its front end, with the attributes the HEAR API asks for.

    A torch module: `.to(device)` moves it, and the embeddings come back on that device.
    """

    sample_rate: int = 32_000

    def __init__(
        self,
        network: nn.Module,
        *,
        name: str,
        frontend: FrontEndConfig = FrontEndConfig(),
        timestamp_window: float = TIMESTAMP_WINDOW,
        timestamp_hop: float = TIMESTAMP_HOP,
        precision: str = "float32",
    ) -> None:
        super().__init__()
        if frontend.sample_rate != self.sample_rate:
            raise UsageError(f"{name}: its front end runs at {frontend.sample_rate} Hz, not {self.sample_rate}")
        grid = frontend.window_grid(window=timestamp_window, hop=timestamp_hop)  # (checks the shortest window and hop)
        self.network = network.eval()
        self.name = name
        self.frontend = frontend
        self.precision = precision
        self.timestamp_window = grid.window + grid.window % 2  # (even: the centre falls on a sample)
        self.timestamp_hop = grid.hop
        self.scene_embedding_size = int(network.num_classes + network.embedding_dim)
        self.timestamp_embedding_size = self.scene_embedding_size
        self.batch_size: int | None = None
        """Windows per engine call; None: the engine's preferred batch (see `InferenceEngine`)."""
        self._engine: InferenceEngine | None = None

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def engine(self) -> InferenceEngine:
        """The tagging engine on the module's current device (made anew after a `.to()` to another one)."""
        if self._engine is None or self._engine.device != self.device:
            self._engine = InferenceEngine(self.network, frontend=self.frontend, device=self.device, precision=self.precision)
        return self._engine

    def embed_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """`[W, samples]` equal windows -> `[W, embedding size]` float32 on the CPU, in batches."""
        engine = self.engine()
        per_call = self.batch_size or engine.preferred_batch_size
        per_call = max(1, min(per_call, MAX_BATCH_SAMPLES // max(1, windows.shape[-1])))
        parts = []
        for start in range(0, len(windows), per_call):
            logits, embeddings = engine(windows[start : start + per_call])
            parts.append(torch.from_numpy(np.concatenate([logits, embeddings], axis=1)))
        if not parts:
            return torch.zeros((0, self.scene_embedding_size), dtype=torch.float32)
        return torch.cat(parts)

    def __repr__(self) -> str:  # (the validator prints the model: one line, not the whole network)
        return f"HearModel({self.name!r}, sample_rate={self.sample_rate}, embedding_size={self.scene_embedding_size})"


def load_model(
    model_file_path: str = "",
    *,
    timestamp_window: float = TIMESTAMP_WINDOW,
    timestamp_hop: float = TIMESTAMP_HOP,
    precision: str = "float32",
) -> HearModel:
    """A release model by name (`dymn10_as`, the default; downloaded once and cached, as `dymn-tag` does;
    several names joined by commas make an ensemble) or a local checkpoint file, on the CPU.

    `timestamp_window` and `timestamp_hop` (seconds) set the timestamp embeddings' windows;
    `precision` is the engine's on CUDA (float32 by default; float16 or bfloat16 run faster).
    """
    FrontEndConfig().window_grid(window=timestamp_window, hop=timestamp_hop)  # (bad settings fail before any loading)
    spec = str(model_file_path).strip() or DEFAULT_MODEL
    if _names_a_file(spec):
        members = load_members(model=None, weights=spec)
        name = Path(spec).name
    else:
        members = load_members(model=spec, weights=None)
        name = members.name
    return HearModel(
        members.network,
        name=name,
        frontend=members.frontend,
        timestamp_window=timestamp_window,
        timestamp_hop=timestamp_hop,
        precision=precision,
    )


def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """`[n_sounds, n_samples]` mono 32 kHz audio in [-1, 1] -> `[n_sounds, model.scene_embedding_size]` float32."""
    audio = _checked_audio(audio)
    n_sounds, n_samples = audio.shape
    shortest = model.frontend.hop_length * MIN_WINDOW_FRAMES
    if n_samples < shortest:  # (a click: zero-padded to the shortest window the network takes)
        audio = torch.nn.functional.pad(audio, (0, shortest - n_samples))
        n_samples = shortest
    window = round(SCENE_WINDOW * model.sample_rate)
    if n_samples <= window:
        return model.embed_windows(audio).to(model.device)
    hop = round(SCENE_HOP * model.sample_rate)
    starts = [*range(0, n_samples - window, hop), n_samples - window]
    windows = torch.stack([audio[:, start : start + window] for start in starts], dim=1)  # [n, S, window]
    embeddings = model.embed_windows(windows.reshape(-1, window)).reshape(n_sounds, len(starts), model.scene_embedding_size)
    return embeddings.mean(dim=1).to(model.device)


def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """`[n_sounds, n_samples]` mono 32 kHz audio in [-1, 1] -> embeddings `[n_sounds, T,
    model.timestamp_embedding_size]` float32 and their centres in milliseconds `[n_sounds, T]`, one
    every `timestamp_hop` from 0 ms to the end of the clip (T = n_samples // hop + 1)."""
    audio = _checked_audio(audio)
    n_sounds, n_samples = audio.shape
    window, hop = model.timestamp_window, model.timestamp_hop
    padded = torch.nn.functional.pad(audio, (window // 2, window // 2))
    count = n_samples // hop + 1
    windows = padded.unfold(1, window, hop)[:, :count]  # [n, T, window], a view: copied batch by batch
    embeddings = _embed_view(model, windows).reshape(n_sounds, count, model.timestamp_embedding_size)
    centres = torch.arange(count, dtype=torch.float64) * (hop * 1000.0 / model.sample_rate)
    timestamps = centres.to(torch.float32).expand(n_sounds, count).contiguous()
    return embeddings.to(model.device), timestamps.to(model.device)


def _embed_view(model: HearModel, windows: torch.Tensor) -> torch.Tensor:
    """Embeddings of the `[n, T, window]` view's windows, clip after clip, without copying it whole
    (a 10-minute clip's 160 ms windows every 50 ms would be 250 MB)."""
    n_sounds, count, _ = windows.shape
    if n_sounds * count == 0:
        return torch.zeros((n_sounds * count, model.timestamp_embedding_size), dtype=torch.float32)
    parts = []
    flat_count = n_sounds * count
    for start in range(0, flat_count, _ROWS_PER_PART):
        stop = min(start + _ROWS_PER_PART, flat_count)
        part = torch.stack([windows[i // count, i % count] for i in range(start, stop)])
        parts.append(model.embed_windows(part))
    return torch.cat(parts)


def _checked_audio(audio: torch.Tensor) -> torch.Tensor:
    """The batch as a float32 CPU tensor; UsageError for what is not `[n_sounds, n_samples]` audio."""
    if not isinstance(audio, (torch.Tensor, np.ndarray)):
        raise UsageError(f"audio must be a torch tensor [n_sounds, n_samples], got {type(audio).__name__}")
    audio = torch.as_tensor(audio)
    if audio.ndim != 2:
        raise UsageError(f"audio must be [n_sounds, n_samples] (mono, 32 kHz), got shape {list(audio.shape)}")
    if not audio.is_floating_point():
        raise UsageError(f"audio must hold floating-point samples in [-1, 1], got {audio.dtype}")
    audio = audio.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(audio).all()):
        raise UsageError("audio holds NaN or infinite samples")
    return audio


def _names_a_file(spec: str) -> bool:
    """A checkpoint path rather than a release name: an existing file, a path, or a checkpoint's suffix."""
    return os.path.exists(spec) or os.sep in spec or "/" in spec or spec.lower().endswith(_CHECKPOINT_SUFFIXES)
