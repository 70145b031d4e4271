"""The package version, importable from every layer without the package root (which re-exports the API)."""

__version__ = "0.1.0"
