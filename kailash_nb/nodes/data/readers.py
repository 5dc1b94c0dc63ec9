"""File readers at Kailash's module path: ``CSVReaderNode`` and ``JSONReaderNode``
(defined in ``kailash_nb.nodes.data``) and ``TextReaderNode``, defined here."""

from __future__ import annotations

from typing import Any

from kailash_nb.nodes._files import TextFileNode, reading_encoding
from kailash_nb.nodes.data._nodes import CSVReaderNode, JSONReaderNode
from kailash_nb.nodes.node import NodeParameter
from kailash_nb.nodes.registry import register_node

__all__ = ["CSVReaderNode", "JSONReaderNode", "TextReaderNode"]


@register_node()
class TextReaderNode(TextFileNode):
    """Read a whole text file into one string, as Kailash's ``TextReaderNode`` does.

    Parameters:
        file_path: the file to read (str or ``os.PathLike``).
        encoding: its text encoding (default ``"utf-8"``; a UTF-8 byte-order mark is
            skipped).

    Outputs ``{"text": content}`` (line endings as Python's text mode reads them).

    Raises:
        NodeConfigurationError / NodeValidationError: empty path, NUL byte in it, or an
            unknown encoding.
        NodeExecutionError: missing or unreadable file, or text not in ``encoding``.
    """

    def get_parameters(self) -> dict[str, NodeParameter]:
        """Text reader inputs."""
        return {
            "file_path": NodeParameter(
                name="file_path", type=None, required=True, description="path of the file"
            ),
            "encoding": NodeParameter(
                name="encoding",
                type=str,
                required=False,
                default="utf-8",
                description="text encoding of the file",
            ),
        }

    def run(self, file_path: Any, encoding: str) -> dict[str, Any]:
        """Read the file; see the class docstring."""
        path = self.checked_path(file_path)
        self.checked_text_options(encoding)
        try:
            with open(path, encoding=reading_encoding(encoding)) as handle:
                return {"text": handle.read()}
        except OSError as exc:
            raise self.file_error(exc, path, "read") from None
        except UnicodeDecodeError as exc:
            raise self.decode_error(exc, path, encoding) from None
