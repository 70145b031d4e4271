"""The help panels of `dymn-tag`: one name per group of options, so that every command module (and
every option added later) files its options under the same titles in the same order."""

from __future__ import annotations

INPUT = "Input"
OUTPUT = "Output"
LABELS = "Labels and events"
MODEL = "Model"
WINDOWS = "Windows"
COMPUTE = "Compute"
SCALE_OUT = "Scale-out"
GENERAL = "General"

# The order `dymn-tag --help` shows them in (Typer shows panels in the order options first use them;
# tag.py declares its options in this order).
ORDER = (INPUT, OUTPUT, LABELS, MODEL, WINDOWS, COMPUTE, SCALE_OUT, GENERAL)
