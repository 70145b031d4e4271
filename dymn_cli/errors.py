"""One exception base for everything a user can cause; the CLI maps it to an exit code in one place."""

from __future__ import annotations


class DymnError(Exception):
    """An error with a message meant for the user (one line, no traceback)."""

    exit_code: int = 1


class UsageError(DymnError):
    """Bad options or arguments: unknown model, missing path, malformed value."""

    exit_code = 2


class WeightsError(DymnError):
    """A checkpoint that cannot be found, downloaded, verified or loaded."""


class DownloadError(WeightsError):
    """A download that failed or whose content does not match the expected hash."""


class AudioError(DymnError):
    """An input that cannot be read or decoded as audio."""
