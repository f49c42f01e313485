"""The package's error types: a user mistake or bad input, told in one line with what to do.

Every error the package raises for something the user can fix (a config key, a file, a
checkpoint, a dataset, a vocabulary) derives from :class:`PixelCLIPError`. Its message reads
``<what is wrong> — <what to do>``; the command-line tools print it as one line,
``[tool] <message>``, and exit with status 1 (``pixelclip/utils/cli.py``; ``--debug`` or
``PIXELCLIP_DEBUG=1`` shows the traceback). The specific types also derive from the built-in type
that code catching errors would expect (``FileNotFoundError``, ``ValueError``, ...).
"""
import re

__all__ = [
    "PixelCLIPError",
    "ConfigError",
    "CheckpointError",
    "DatasetError",
    "TrainingDataError",
    "EvalImageError",
    "EvalLabelError",
    "EvaluationError",
    "OutputDirError",
    "VocabularyError",
    "VocabularyFileError",
    "one_line",
]


class PixelCLIPError(Exception):
    """A user mistake or bad input; ``str(error)`` is ``"<what> — <action>"`` (one line).

    Arguments:
        what: what is wrong, naming the file, key or value.
        action: what to do about it ("" when ``what`` says it already).
    """

    def __init__(self, what: str, action: str = ""):
        self.what = what
        self.action = action
        super().__init__(f"{what} — {action}" if action else what)

    def __reduce__(self):  # picklable across data-loader workers and spawned processes
        return (self.__class__, (self.what, self.action))


class ConfigError(PixelCLIPError, ValueError):
    """A config file, key or value that cannot be used."""


class CheckpointError(PixelCLIPError, RuntimeError):
    """A checkpoint (``MODEL.WEIGHTS``) that is missing, unreadable, or does not fit the model."""


class ExportError(PixelCLIPError, RuntimeError):
    """A checkpoint that cannot be exported, merged or imported; the message says why."""


class DatasetError(PixelCLIPError, FileNotFoundError):
    """A dataset whose files are missing or do not pair up."""


class TrainingDataError(PixelCLIPError, RuntimeError):
    """A training set whose samples cannot be used (e.g. every one of them is corrupt)."""


class EvalImageError(PixelCLIPError, ValueError):
    """A test image that cannot be decoded."""


class EvalLabelError(PixelCLIPError, ValueError):
    """A ground-truth label file that does not fit its dataset (class ids out of range, wrong size)."""


class EvaluationError(PixelCLIPError, RuntimeError):
    """Some test datasets could not be evaluated (the others were, and are in the summary)."""


class OutputDirError(PixelCLIPError, PermissionError):
    """An output folder that cannot be created or written."""


class VocabularyError(PixelCLIPError, ValueError):
    """A vocabulary (class-name list) that cannot be used."""


class VocabularyFileError(VocabularyError, FileNotFoundError):
    """A vocabulary file that does not exist."""


# PyTorch re-raises a data-loader worker's exception in the main process as
# ``type(e)("Caught X in DataLoader worker process N.\nOriginal Traceback ...\nmodule.X: message")``.
_WORKER_PREFIX = re.compile(r"^[\w.]*\w+(Error|Exception): ")


def one_line(error: BaseException) -> str:
    """The message of ``error`` as one line; for an error re-raised from a data-loader worker,
    the original message (its last line) without the worker's traceback."""
    text = str(error)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        text = _WORKER_PREFIX.sub("", last, count=1)
    return " ".join(text.split())
