"""`export_onnx`: a network (a published model, checkpoint files, an ensemble, with or without a
classification head) as one ONNX graph from waveform to scores, float32 or int8.

    report = export_onnx(Path("dymn10.onnx"), model="dymn10_as")
    report = export_onnx(Path("dymn04.int8.onnx"), weights=[Path("dymn04.pt")], int8=True, calibrate=Path("my_audio"))

The output follows the rules of every output of this tool: checked before any work (writable, not a
folder, not one of the inputs, `no_overwrite`), written whole or not at all.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dymn_cli.errors import DymnError, GraphNotCheckpoint, UsageError
from dymn_cli.export.quantize import INT8_MODES, Agreement
from dymn_cli.graph_metadata import GraphMetadata
from dymn_cli.wording import counted

if TYPE_CHECKING:
    import onnx

    from dymn_cli.export.graph import WaveformTagger
    from dymn_cli.models.head import ClassifierHead
    from dymn_cli.writers.targets import Target

log = logging.getLogger("dymn_cli")

DEFAULT_MIN_AGREEMENT = 0.98
"""int8 is refused below this top-1 agreement with float32 on held-out windows: the figure BirdNET
states for its int8 release, the one users of int8 audio taggers compare against."""
AUDIOSET_WINDOW = 10.0
"""The window (and hop) the AudioSet checkpoints were trained on, and the tagger's default."""


class AgreementTooLow(DymnError):
    """The int8 graph agrees with float32 less than the floor asks: it is not written."""

    def __init__(self, message: str, agreement: Agreement) -> None:
        super().__init__(message)
        self.agreement = agreement


@dataclass(frozen=True)
class ExportReport:
    output: str
    metadata: GraphMetadata
    size: int
    """Bytes written."""
    agreement: Agreement | None = None
    """int8 only: its agreement with the float32 graph on held-out calibration windows."""


def export_onnx(
    output: Path,
    *,
    model: str | Sequence[str] | None = None,
    weights: Sequence[Path] | None = None,
    sha256: str | None = None,
    head: Path | None = None,
    int8: bool = False,
    int8_mode: str | None = None,
    calibrate: Path | None = None,
    min_agreement: float | None = None,
    no_overwrite: bool = False,
    progress: bool = False,
) -> ExportReport:
    """Export the network (`model` names, or `weights` files; several: an ensemble) to `output`."""
    from dymn_cli.export.calibration import audio_files
    from dymn_cli.models.head import load_head

    int8_mode, min_agreement = _int8_settings(int8, calibrate, int8_mode, min_agreement)
    _check_installed()
    inputs = [Path(p) for p in weights or []] + ([head] if head is not None else [])
    calibration_files = audio_files(calibrate) if calibrate is not None else []
    target = _checked_target(output, [*inputs, *calibration_files], no_overwrite=no_overwrite)
    loaded_head = load_head(head) if head is not None else None
    graph, tagger, metadata = _float_graph(model, weights, sha256, loaded_head, progress=progress)
    float_bytes = graph.SerializeToString()
    agreement = None
    if calibrate is not None:
        data, agreement = _int8_graph(graph, tagger, calibrate, metadata, int8_mode)
        for line in agreement.lines():
            log.info("%s", line)
        check_agreement(agreement, min_agreement, output, int8_mode)
    else:
        data = float_bytes
    from dymn_cli.writers.output_file import written

    with written(target) as out:
        out.write(data)
    return ExportReport(output=str(output), metadata=metadata, size=len(data), agreement=agreement)


def _int8_settings(int8: bool, calibrate: Path | None, mode: str | None, min_agreement: float | None) -> tuple[str, float]:
    """The int8 mode and agreement floor, checked before any work; UsageError for settings that would
    otherwise be ignored (int8's options without --int8)."""
    if not int8:
        given = [option for option, value in (("--int8-mode", mode), ("--min-agreement", min_agreement)) if value is not None]
        if given:
            raise UsageError(f"{given[0]} needs --int8")
    if int8 != (calibrate is not None):
        raise UsageError("--int8 needs --calibrate FOLDER (your own audio)" if int8 else "--calibrate goes with --int8")
    mode = "static" if mode is None else mode
    if mode not in INT8_MODES:
        raise UsageError(f"--int8-mode must be one of {', '.join(INT8_MODES)}, got {mode!r}")
    return mode, agreement_floor(DEFAULT_MIN_AGREEMENT if min_agreement is None else min_agreement)


def agreement_floor(value: float) -> float:
    """--min-agreement as a fraction: given as one (0.95) or as a percentage (95), as the printout says
    '95.0%'. A value up to 1 is a fraction (1: every window must agree), above it a percentage."""
    if not 0.0 <= value <= 100.0 or math.isnan(value):
        raise UsageError(f"--min-agreement: a fraction or a percentage (0.95 or 95 for 95 %), got {value:g}")
    return value if value <= 1.0 else value / 100.0


def _check_installed() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as missing:
        raise UsageError(
            f"dymn-tag export needs onnx and onnxruntime ({missing.name} is not installed): pip install 'dymn-cli[export]'"
        ) from None


def check_agreement(agreement: Agreement, min_agreement: float, output: Path, mode: str = "static") -> None:
    """`AgreementTooLow` when the int8 graph's top-1 agreement is below `min_agreement`."""
    share = f"{round(agreement.top1 * agreement.windows)} of {counted(agreement.windows, 'window')}"
    if agreement.top1 < min_agreement:
        raise AgreementTooLow(
            f"int8 agrees with float32 on {agreement.top1:.1%} of the held-out windows' top labels ({share}), below "
            f"--min-agreement {min_agreement:.1%}: {output} not written ("
            + ("try --int8-mode weights, which keeps the arithmetic in float32; " if mode == "static" else "")
            + "export float32 without --int8, calibrate on more of your audio, or lower --min-agreement to accept it)",
            agreement,
        )
    if agreement.top1 < DEFAULT_MIN_AGREEMENT:
        log.warning(
            "warning: int8 agrees with float32 on only %.1f%% of the held-out windows' top labels (%s; accepted with "
            "--min-agreement %.1f%%): check its scores on your audio before you rely on them",
            100 * agreement.top1,
            share,
            100 * min_agreement,
        )


def _checked_target(output: Path, inputs: Sequence[Path], *, no_overwrite: bool) -> Target:
    from dymn_cli.writers.destination import claim_output, input_files
    from dymn_cli.writers.targets import is_terminal

    target = claim_output("-o", output, inputs=input_files(inputs), no_overwrite=no_overwrite)
    if is_terminal(target):
        raise UsageError(f"{output}: a terminal: an ONNX graph is binary, name a file (or a pipe) to write it to")
    return target


def _float_graph(
    model: str | Sequence[str] | None,
    weights: Sequence[Path] | None,
    sha256: str | None,
    head: ClassifierHead | None,
    *,
    progress: bool,
) -> tuple[onnx.ModelProto, WaveformTagger, GraphMetadata]:
    """The float32 graph, the module it was exported from, and its metadata as a runner reads it."""
    from dymn_cli.audioset.labels import audioset_classes
    from dymn_cli.audioset.vocabulary import Vocabulary
    from dymn_cli.export.graph import WaveformTagger, export_graph
    from dymn_cli.export.networks import export_network
    from dymn_cli.models.ensemble import load_members
    from dymn_cli.models.head import Backbone
    from dymn_cli.models.weights import sha256_file

    try:
        members = load_members(
            model=model, weights=[str(w) for w in weights] if weights else None, sha256=sha256, progress=progress
        )
    except GraphNotCheckpoint as error:
        raise error.instead(_graph_as_it_is(Path(str(error.path)))) from None
    hashes = tuple(sha256_file(p) for p in members.paths)
    names = [r.name if r is not None else p.stem for r, p in zip(members.records, members.paths)]
    if head is not None:
        head.check_backbone(Backbone(members.name, hashes, int(members.network.embedding_dim)))
        labels, mids = tuple(head.classes), tuple(c.id for c in Vocabulary.with_head(head.classes))
        window, hop, activation = head.window, head.hop, head.activation
    else:
        classes = audioset_classes()
        labels, mids = tuple(c.name for c in classes), tuple(c.mid for c in classes)
        window, hop, activation = AUDIOSET_WINDOW, AUDIOSET_WINDOW, "sigmoid"
    metadata = GraphMetadata(
        labels=labels,
        mids=mids,
        model="+".join(names),
        checkpoint_sha256="+".join(hashes),
        window=window,
        hop=hop,
        activation=activation,
    )
    tagger = WaveformTagger(export_network(members.network), members.frontend, head)
    graph = export_graph(tagger, metadata)
    return graph, tagger, GraphMetadata.from_props({p.key: p.value for p in graph.metadata_props}, "the exported graph")


def _graph_as_it_is(path: Path) -> str:
    """What to do with a graph given to export, which makes graphs from checkpoints: tag with it."""
    graph = path.with_suffix(".onnx")
    renamed = "" if graph == path else f"rename it {graph.name} and "
    return f"export needs a PyTorch checkpoint; {renamed}tag with the graph as it is: dymn-tag FILES --weights {graph}"


def _int8_graph(
    graph: onnx.ModelProto, tagger: WaveformTagger, calibrate: Path, metadata: GraphMetadata, mode: str
) -> tuple[bytes, Agreement]:
    from dymn_cli.export.calibration import calibration_set
    from dymn_cli.export.networks import kernel_rows
    from dymn_cli.export.quantize import measure_agreement, quantize_int8

    rate = metadata.sample_rate
    windows = calibration_set(calibrate, window=round(metadata.window * rate), sample_rate=rate)
    log.info(
        "int8: calibrating on %s of %s, %d held out",
        counted(len(windows.calibrate), "window"),
        counted(windows.files, "file"),
        len(windows.held_out),
    )
    quantized = quantize_int8(graph, windows.calibrate, kernel_rows(tagger), mode=mode)
    data = quantized.SerializeToString()
    agreement = measure_agreement(graph.SerializeToString(), data, windows.held_out, activation=metadata.activation)
    return data, agreement
