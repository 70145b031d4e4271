"""BatchNorm-calibrated copies of the golden random checkpoints, for agreement figures.

The golden state dicts have random weights whose BatchNorm statistics do not fit ordinary audio: their
logits reach 1e11 to 1e17, so any float32 rounding difference (ONNX against torch, int8 against float32,
float16) flips their scores, and agreement figures made on them mean nothing. Here every BatchNorm's
running mean and variance are measured on the log-mels of real audio (`examples/audio/chimes_and_noise.wav`), of the golden
waveforms and of generated signals, as a few training-mode passes would set them, and the result is saved as an
ordinary state dict (same keys and shapes: it loads with `strict=True`). Agreement figures on these
checkpoints are meaningful; say so beside every figure ("calibrated checkpoint").

    from tests.calibrated import calibrated_checkpoint, calibration_waveforms
    path = calibrated_checkpoint("dymn04")          # a .pt file in a per-process temporary folder

or the session fixture `calibrated_weights` (tests/conftest.py): `calibrated_weights("dymn04")`.

How: the networks fold each BatchNorm into the convolution before it at inference (`TaggingNet.derive`),
whatever the training mode, so torch's own train-mode update never runs. Instead each BatchNorm is first
made the identity, and one pass over the calibration batch measures the per-channel mean and variance of
its input where the network produces it (the folded convolution's output), normalises that output with
the measured statistics (train mode's batch normalisation) so that the later layers see calibrated
inputs, and keeps the statistics as the running ones. Cheap: one forward pass per network, ~1 s.
"""

from __future__ import annotations

import functools
import tempfile
import threading
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from dymn_cli.audio.decode import load_audio
from dymn_cli.models.build import build_model
from dymn_cli.models.common import ConvNormAct, TaggingNet
from dymn_cli.models.dymn import DyBlock, DyMN
from dymn_cli.models.frontend import LogMel
from dymn_cli.models.mn import MN

TESTS = Path(__file__).parent
GOLDEN = TESTS / "golden"
EXAMPLE_AUDIO = TESTS.parent / "examples" / "audio" / "chimes_and_noise.wav"
RATE = 32_000
CALIBRATION_SECONDS = (1.0, 3.0, 10.0, 13.7)  # one pass at each length
CHECKPOINTS = {"dymn04": "dymn04_seed0.pt", "dymn10": "dymn10_seed0.pt", "mn04": "mn04_seed0.pt"}

__all__ = ["CHECKPOINTS", "calibrate", "calibrated_checkpoint", "calibrated_state_dict", "calibration_waveforms"]


def calibration_waveforms(seconds: float = 10.0) -> np.ndarray:
    """`[8, samples]` float32 waveforms at 32 kHz: the example recording and the three golden 10 s
    waveforms (looped to length), and four generated signals (pink-ish noise, a chord with vibrato, a
    chirp, speech-like modulated noise with clicks over hum). Deterministic."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    rng = np.random.default_rng(23)
    recorded = [load_audio(EXAMPLE_AUDIO, sample_rate=RATE)]
    recorded += [w.numpy() for w in torch.load(GOLDEN / "frontend.pt", weights_only=True)["waves"].values()]
    white = rng.standard_normal(n)
    pink = np.cumsum(white) * 0.01
    pink -= np.convolve(pink, np.ones(200) / 200, mode="same")
    chord = sum(np.sin(2 * np.pi * f * t + 3 * np.sin(2 * np.pi * 5 * t)) for f in (220.0, 277.2, 329.6, 880.0)) / 4
    chirp = np.sin(2 * np.pi * (100 * t + (8000 - 100) / (2 * seconds) * t**2))
    clicks = np.zeros(n)
    clicks[:: RATE // 4] = 1.0
    syllables = (np.sin(2 * np.pi * 4 * t) > 0.2) * np.abs(np.sin(2 * np.pi * 1.3 * t))
    speechy = np.convolve(white, np.hanning(40), mode="same") * syllables + 0.1 * np.sin(2 * np.pi * 50 * t)
    speechy += np.convolve(clicks, np.exp(-np.arange(64) / 6), mode="same")
    generated = [0.5 * s / np.abs(s).max() for s in (pink, chord, chirp, speechy)]
    # (the recordings at their own level: these networks' outputs depend strongly on the input level)
    return np.stack([np.resize(r, n) for r in recorded] + generated).astype(np.float32)


class _Calibration:
    """Instance-level patches that measure every BatchNorm during concurrent forward passes (one per
    batch, in threads), then undo themselves and leave the measured statistics as the running ones.

    At each BatchNorm every pass waits for the others (a barrier), the statistics are pooled over all
    of them, and each pass normalises with the pooled ones: so the later layers are measured on exactly
    what they will see in eval mode, for every length at once.
    """

    def __init__(self, model: TaggingNet, passes: int) -> None:
        self.model = model
        self.norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        self.affine = {id(n): (n.weight.detach().clone(), n.bias.detach().clone()) for n in self.norms}
        self.measured: dict[int, tuple[Tensor, Tensor]] = {}
        self.counts: dict[int, int] = {}  # values behind each measurement, per channel
        self.pending: list[tuple[nn.BatchNorm2d, Tensor, Tensor, int]] = []
        self.pooled: tuple[Tensor, Tensor] | None = None
        self.lock = threading.Lock()
        self.barrier = threading.Barrier(passes, action=self._pool, timeout=600)
        self.patched: list[tuple[nn.Module, str]] = []
        self.hooks: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> _Calibration:
        for norm in self.norms:  # the identity: every folded convolution gives its raw output
            _identity(norm)
        for module in self.model.modules():
            if isinstance(module, ConvNormAct):
                self._patch(module, "forward", self._conv_norm_act(module))
            elif isinstance(module, DyBlock):
                self._patch_block(module)
        self.model.invalidate()
        self.model.refresh()
        return self

    def __exit__(self, *_: object) -> None:
        for module, name in self.patched:
            delattr(module, name)
        for hook in self.hooks:
            hook.remove()
        for norm in self.norms:
            mean, var = self.measured[id(norm)]
            count = self.counts[id(norm)]
            _set(norm, *self.affine[id(norm)], mean, var * count / max(count - 1, 1))  # torch keeps it unbiased
            norm.num_batches_tracked.fill_(1)
        self.model.invalidate()

    def _pool(self) -> None:
        norms = {id(norm) for norm, *_ in self.pending}
        assert len(norms) == 1, "the passes reached different BatchNorms"
        total = sum(n for *_, n in self.pending)
        mean = sum(s1 for _, s1, _, _ in self.pending) / total
        var = (sum(s2 for _, _, s2, _ in self.pending) / total - mean * mean).clamp_min(0.0)
        self.pooled = (mean.float(), var.float())
        self.measured[norms.pop()] = self.pooled
        self.counts[id(self.pending[0][0])] = total
        self.pending = []

    def _normalise(self, raw: Tensor, norm: nn.BatchNorm2d, channel_dim: int = 1) -> Tensor:
        dims = [d for d in range(raw.dim()) if d != channel_dim]
        wide = raw.double()
        with self.lock:
            self.pending.append((norm, wide.sum(dim=dims), wide.square().sum(dim=dims), raw.numel() // raw.shape[channel_dim]))
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            raise RuntimeError("another calibration pass failed") from None
        assert self.pooled is not None
        mean, var = self.pooled
        gamma, beta = self.affine[id(norm)]
        shape = [1] * raw.dim()
        shape[channel_dim] = -1
        scale = (gamma / torch.sqrt(var + norm.eps)).view(shape)
        return (raw - mean.view(shape)) * scale + beta.view(shape)

    def _patch(self, module: nn.Module, name: str, function: Callable) -> None:
        setattr(module, name, function)
        self.patched.append((module, name))

    def _conv_norm_act(self, module: ConvNormAct) -> Callable[[Tensor], Tensor]:
        conv, norm = module[0], module[1]

        def forward(x: Tensor) -> Tensor:
            out = self._normalise(conv(x), norm)
            return module[2](out) if len(module) > 2 else out

        return forward

    def _patch_block(self, block: DyBlock) -> None:
        pairs = [(block.depth_conv, block.depth_norm), (block.proj_conv, block.proj_norm)]
        if block.expand:
            pairs.append((block.exp_conv, block.exp_norm))
        for conv, norm in pairs:
            self._patch(conv, "conv", self._dynamic_conv(conv, norm))
        context, norm = block.context_gen, block.context_gen.joint_norm

        def joint_norm(_: nn.Module, args: tuple[list[Tensor]]) -> None:
            # The context generator's 1x1 convolution runs on the profiles inside its forward: measure
            # its raw output here, and fold the pooled statistics in before the forward runs.
            # (the profiles of spec 2.2: mean over time at each frequency, then over frequency at each time)
            seq = torch.cat([torch.cat([x.mean(dim=3), x.mean(dim=2)], dim=2).transpose(1, 2) for x in args[0]])
            self._normalise(seq @ context.joint_conv.weight.flatten(1).t(), norm, channel_dim=2)
            with self.lock:  # (every pass derives the same constants)
                _set(norm, *self.affine[id(norm)], *self.measured[id(norm)])
                context.derive()
                _identity(norm)

        self.hooks.append(context.register_forward_pre_hook(joint_norm))

    def _dynamic_conv(self, conv: nn.Module, norm: nn.BatchNorm2d) -> Callable[..., Tensor]:
        original = type(conv).conv

        def measured(_: nn.Module, x: Tensor, kernels: Tensor, bias: Tensor) -> Tensor:
            return self._normalise(original(conv, x, kernels, bias), norm)

        return types.MethodType(measured, conv)


def _set(norm: nn.BatchNorm2d, gamma: Tensor, beta: Tensor, mean: Tensor, var: Tensor) -> None:
    with torch.no_grad():
        norm.weight.copy_(gamma)
        norm.bias.copy_(beta)
        norm.running_mean.copy_(mean)
        norm.running_var.copy_(var)


def _identity(norm: nn.BatchNorm2d) -> None:
    one = torch.ones_like(norm.weight)
    _set(norm, one, torch.zeros_like(one), torch.zeros_like(one), one - norm.eps)


def calibrate(model: TaggingNet, batches: list[Tensor]) -> TaggingNet:
    """Set every BatchNorm's running statistics of `model` (in place) from the batches of log-mels
    `[B, 1, 128, T]` in `batches` (they may differ in length), pooled; returns `model`."""
    if not isinstance(model, (DyMN, MN)):
        raise TypeError(f"cannot calibrate a {type(model).__name__}")
    # One pass per window (batch 1: the networks' fast path on the CPU), each on one thread.
    windows = [window for mels in batches for window in mels.split(1)]
    calibration = _Calibration(model, len(windows))

    def run(mels: Tensor) -> None:
        try:
            torch.set_num_threads(1)
            with torch.no_grad():
                model(mels)
        except BaseException:
            calibration.barrier.abort()
            raise

    with calibration, ThreadPoolExecutor(len(windows)) as pool:
        for future in [pool.submit(run, mels) for mels in windows]:
            future.result()
    return model


@functools.cache
def calibrated_state_dict(name: str) -> dict[str, Tensor]:
    """The golden checkpoint `name` (`dymn04`, `dymn10`, `mn04`) with calibrated BatchNorm statistics
    (computed once per process)."""
    state_dict = torch.load(GOLDEN / CHECKPOINTS[name], map_location="cpu", weights_only=True)
    model = build_model(state_dict)
    with torch.no_grad():
        mels = LogMel()(torch.from_numpy(calibration_waveforms(max(CALIBRATION_SECONDS))))
    # Passes at several lengths, pooled: windows from 1 s to 13.7 s are scored in the tests.
    calibrate(model, [mels[..., : int(s * 100)] for s in CALIBRATION_SECONDS])
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@functools.cache
def _folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="dymn-calibrated-"))


def calibrated_checkpoint(name: str, folder: Path | None = None) -> Path:
    """`<name>_calibrated.pt` in `folder` (default: one temporary folder per process), written once."""
    path = (folder or _folder()) / f"{name}_calibrated.pt"
    if not path.exists():
        torch.save(calibrated_state_dict(name), path)
    return path
