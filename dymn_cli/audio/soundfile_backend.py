"""The libsndfile backend (python-soundfile): WAV, FLAC, Ogg, MP3, AIFF, CAF, ... exactly as librosa reads them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import soundfile as sf

from dymn_cli.audio.backend import AudioInfo, DecodeStopped
from dymn_cli.audio.sources import ResolvedSource, one_line

try:  # libsndfile's read function itself, see SoundfileDecoder.blocks
    from soundfile import _ffi as _SF_FFI
    from soundfile import _snd as _SF_LIB
except ImportError:  # pragma: no cover - a future soundfile without these internals
    _SF_FFI = _SF_LIB = None


class SoundfileDecoder:
    backend = "soundfile"
    skipped = 0
    skip_reason = ""

    def __init__(self, inp: ResolvedSource):
        self._file = sf.SoundFile(inp.soundfile_target())
        self.sample_rate: int = self._file.samplerate
        self.channels: int = self._file.channels

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """Consecutive `sf_readf_float` calls, exactly the samples of librosa's one-shot read.

        Not `SoundFile.read` in a loop: python-soundfile seeks after every read to resync its
        position, and libmpg123 does not seek sample-exactly, so MP3s read in blocks that way come
        out garbled from the second block on (and a seek to 0 before the first read changes
        MPEG-2 low-rate files by an ulp). Plain sequential reads give what one `read()` gives.
        """
        f = self._file
        if _SF_LIB is None:  # pragma: no cover - no block reads without the internals: read whole
            try:
                data = f.read(dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise DecodeStopped(one_line(exc)) from None
            if len(data):
                yield data
            return
        while True:
            out = np.empty((frames, self.channels), dtype=np.float32)
            got = int(_SF_LIB.sf_readf_float(f._file, _SF_FFI.cast("float *", out.ctypes.data), frames))
            if got > 0:
                yield out[:got]
            if got < frames:
                err = _SF_LIB.sf_error(f._file)
                if err:
                    raise DecodeStopped(one_line(sf.LibsndfileError(err).error_string))
                if got <= 0:
                    return

    def info(self, inp: ResolvedSource) -> AudioInfo:
        f = self._file
        return AudioInfo(
            duration_seconds=f.frames / f.samplerate,
            sample_rate=f.samplerate,
            channels=f.channels,
            frames=f.frames,
            format=f.format,
            codec=f.subtype,
            decoder=self.backend,
        )

    def close(self) -> None:
        self._file.close()
