"""The placeholders the help shows for values (`--window SECONDS`), one set for every command: the same
kind of value has the same name wherever it is asked for, and shell completion knows from the name what
to offer (files, folders, model names)."""

from __future__ import annotations

PATHS = "PATHS"
"""Audio files or folders (walked), or - for standard input."""
RESULTS = "RESULTS"
"""What dymn-tag wrote (files, or folders of part files), read back by `evaluate`."""
FILE = "FILE"
DIR = "DIR"
FILE_OR_DIR = "FILE|DIR"
MODEL = "MODEL"
"""A published model's name (`dymn-tag models`)."""
SECONDS = "SECONDS"
N = "N"
"""A whole number: a count or a size."""
SCORE = "SCORE"
TOP = "K|all"
K = "K"
NAMES = "NAMES"
"""AudioSet class names, ontology nodes or mids (a head's classes), comma-separated, or @FILE."""
QUERY = "QUERY"
HEX = "HEX"
FORMAT = "FORMAT"
PRECISION = "PRECISION"
PCM = "FORMAT:RATE:CHANNELS"
DEVICE = "auto|cpu|cuda[:N]"
SHARD = "I/N"
RAY = "local|auto|ADDRESS"
INT8 = "static|weights"
"""How `dymn-tag export --int8` quantises."""

ALL = frozenset(
    {
        PATHS,
        RESULTS,
        FILE,
        DIR,
        FILE_OR_DIR,
        MODEL,
        SECONDS,
        N,
        SCORE,
        TOP,
        K,
        NAMES,
        QUERY,
        HEX,
        FORMAT,
        PRECISION,
        PCM,
        DEVICE,
        SHARD,
        RAY,
        INT8,
    }
)
"""Every placeholder a command may use (a test holds every command to it)."""

PATH_LIKE = frozenset({PATHS, RESULTS, FILE, FILE_OR_DIR})
"""Values that name files (or folders): completed with the shell's own file names."""
