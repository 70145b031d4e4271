"""dymn-cli: AudioSet tagging with the published DyMN and MobileNetV3 models."""

__version__ = "0.1.0"
