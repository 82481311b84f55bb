"""Typed errors raised by the library; only the CLI turns them into messages and exit codes."""

from __future__ import annotations


class BgRemoveError(Exception):
    """Base class of every error bgremove raises on purpose.

    The message is one line meant for a user: it names the file and the reason.
    """


class UsageProblem(BgRemoveError):
    """The request itself is wrong (bad option value, unknown label): not the fault of one input."""


class UnknownSegmenter(UsageProblem):
    """A model name that is neither a known model nor an existing model file."""


class UnknownLabel(UsageProblem):
    """A class name the model does not have."""


class ModelUnavailable(BgRemoveError):
    """A model file cannot be found, downloaded or verified."""


class ModelIntegrityError(ModelUnavailable):
    """A model file exists but its sha256 does not match the known one."""


class UnsupportedMedia(BgRemoveError):
    """An input that is not an image or video bgremove can read (empty, corrupt, another kind of file)."""


class OutputError(BgRemoveError):
    """An output cannot be written (folder not writable, disk full, would overwrite an input)."""


class OutputExists(OutputError):
    """The output is already there and overwriting was not asked for (reported as skipped, not failed)."""
