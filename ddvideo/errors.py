"""The project's own exception types: user mistakes the CLI turns into one line and a non-zero exit."""

from __future__ import annotations


class DDVideoError(Exception):
    """A problem the user can fix; the message names the bad value and the fix, on one line."""


class InputError(DDVideoError):
    """A missing, unreadable, corrupt or unsuitable input file."""


class OutputError(DDVideoError):
    """An output path that cannot be written, or a format that cannot be produced."""


class SettingsError(DDVideoError):
    """An option value that makes no sense (octaves < 1, unknown layer, ...)."""


class ModelError(DDVideoError):
    """A backbone or its weights cannot be built or loaded."""


class LockedError(OutputError):
    """A work folder another render holds: the same output is being rendered elsewhere."""

    def __init__(self, message: str, holder=None):
        super().__init__(message)
        self.holder = holder  # ddvideo.media.lock.Holder, or None when it could not be read
