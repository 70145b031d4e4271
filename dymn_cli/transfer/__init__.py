"""Transfer to a user's own task on the frozen network's embeddings: training classification heads
(`train_head`) and similarity search over an embeddings archive (`search`).

This package sits above the Python API (it drives a `Tagger`); the head file format and applying a
head live below it, in `dymn_cli.head`, since every tagging run may apply one.
"""

from __future__ import annotations

from dymn_cli.transfer.dataset import LabelledFile, Segment, TrainingData, read_training_data
from dymn_cli.transfer.similarity import EmbeddingIndex, QueryResult, SearchHit, load_index, search, search_audio
from dymn_cli.transfer.training import TrainingReport, TrainingSettings, train_head

__all__ = [
    "EmbeddingIndex",
    "QueryResult",
    "LabelledFile",
    "SearchHit",
    "Segment",
    "TrainingData",
    "TrainingReport",
    "TrainingSettings",
    "load_index",
    "read_training_data",
    "search",
    "search_audio",
    "train_head",
]
