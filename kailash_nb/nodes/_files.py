"""File helpers shared by the CSV and JSON nodes: path checks, reads and atomic writes."""

from __future__ import annotations

import codecs
import contextlib
import os
import stat
import uuid
from collections.abc import Callable
from typing import IO, Any

from kailash_nb.nodes.node import Node
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    NodeExecutionError,
    NodeValidationError,
)

__all__ = ["FileNode", "TextFileNode", "reading_encoding", "write_atomically"]


def _path_text(value: Any) -> str:
    """``value`` as a path string; ``ValueError`` saying what is wrong otherwise."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ValueError(f"file_path must be a path string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError("file_path must not be empty")
    if "\0" in value:
        raise ValueError("file_path must not contain a NUL byte")
    return value


class FileNode(Node):
    """Base of the file nodes: checks ``file_path`` and words file errors alike."""

    def _prepare(self) -> None:
        if self.config.get("file_path") is not None:
            try:
                self.config["file_path"] = _path_text(self.config["file_path"])
            except ValueError as exc:
                raise NodeConfigurationError(f"{self._label()}: {exc}") from None

    def _label(self) -> str:
        return f"node {self.id!r} ({self.type_name()})"

    def checked_path(self, value: Any) -> str:
        """``value`` as a path string, or ``NodeValidationError`` naming the node."""
        try:
            return _path_text(value)
        except ValueError as exc:
            raise NodeValidationError(f"{self._label()}: {exc}") from None

    def file_error(self, exc: OSError, path: str, action: str) -> NodeExecutionError:
        """The ``NodeExecutionError`` for ``exc`` raised while ``action``-ing ``path``."""
        if isinstance(exc, FileNotFoundError):
            if action == "write":
                reason = (
                    f"directory {os.path.dirname(os.path.abspath(path))!r} does not exist; "
                    "create it first"
                )
            else:
                reason = (
                    f"file not found (relative paths start at {os.getcwd()!r}); check file_path"
                )
        elif isinstance(exc, IsADirectoryError):
            reason = "is a directory; file_path must name a file"
        elif isinstance(exc, PermissionError):
            reason = f"permission denied; check that the process may {action} it"
        else:
            reason = exc.strerror or str(exc)
        return NodeExecutionError(f"{self._label()} cannot {action} {path!r}: {reason}")


class TextFileNode(FileNode):
    """File node with ``encoding`` and ``delimiter`` checks, at build and at run."""

    def _prepare(self) -> None:
        super()._prepare()
        for check, key in (
            (self._encoding_problem, "encoding"),
            (self._delimiter_problem, "delimiter"),
        ):
            value = self.config.get(key)
            problem = check(value) if isinstance(value, str) else None
            if problem:
                raise NodeConfigurationError(f"{self._label()}: {problem}")

    def checked_text_options(self, encoding: str, delimiter: str | None = None) -> None:
        """Raise ``NodeValidationError`` for an unknown encoding or a bad delimiter."""
        problem = self._encoding_problem(encoding)
        if problem is None and delimiter is not None:
            problem = self._delimiter_problem(delimiter)
        if problem:
            raise NodeValidationError(f"{self._label()}: {problem}")

    @staticmethod
    def _encoding_problem(encoding: str) -> str | None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            return f"unknown encoding {encoding!r}; use e.g. 'utf-8' or 'latin-1'"
        return None

    @staticmethod
    def _delimiter_problem(delimiter: str) -> str | None:
        if len(delimiter) != 1 or delimiter in '\r\n"':
            return (
                f"delimiter must be one character other than a quote or newline, got {delimiter!r}"
            )
        return None

    def decode_error(self, exc: UnicodeError, path: str, encoding: str) -> NodeExecutionError:
        """The error for a file that is not text in ``encoding``."""
        if isinstance(exc, UnicodeEncodeError):
            character = exc.object[exc.start : exc.end]
            problem = (
                f"cannot write {path!r} as {encoding}: {character!r} cannot be encoded "
                f"({exc.reason}); the file was not changed"
            )
        else:
            problem = f"cannot read {path!r} as {encoding}: {exc.reason}"
        return NodeExecutionError(
            f"{self._label()} {problem}; set encoding to one that fits the text (e.g. 'utf-8')"
        )


def reading_encoding(encoding: str) -> str:
    """The codec to read ``encoding`` text with: a UTF-8 byte-order mark is skipped."""
    # Spreadsheet exports often start with one.
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def write_atomically(
    path: str,
    write: Callable[[IO[str]], None],
    *,
    encoding: str = "utf-8",
    newline: str | None = None,
) -> None:
    """Write a text file so that readers see the old content or the new, never a mix.

    ``write`` fills a temporary file next to the target; it is flushed, fsynced and
    renamed over ``path`` with ``os.replace``, then the directory is fsynced so the
    rename survives a crash. If ``write`` raises, the temporary file is removed and
    the old file is untouched. A symlink at ``path`` is written through (its target
    is replaced), and an existing file keeps its permission bits.

    Raises:
        OSError: the directory does not exist or is not writable, disk full, ...
        Whatever ``write`` raises.
    """
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    temporary = os.path.join(directory, f".{os.path.basename(target)}.{uuid.uuid4().hex[:12]}.tmp")
    # os.open with 0o666 lets the umask decide a new file's mode, as open() would.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "w", encoding=encoding, newline=newline) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    # Not every platform can open a directory (Windows cannot); the rename is then
    # as durable as the platform makes it.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
