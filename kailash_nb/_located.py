"""YAML and JSON documents whose mappings and lists know the line they start on.

Loaders of hand-written files (policies, workflow configs, test data) use it to name the
line of whatever entry is wrong. Mappings come back as :class:`LocatedDict` (``line``,
and ``key_lines`` for YAML), lists as :class:`LocatedList`; duplicate keys are refused,
YAML is read with the safe loader and JSON refuses ``NaN``/``Infinity``::

    document = load_yaml_located(text)
    line_of(document["nodes"], "clean")  # the line of the key 'clean'
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
from typing import Any

import yaml

__all__ = [
    "DocumentError",
    "LocatedDict",
    "LocatedList",
    "line_of",
    "load_json_located",
    "load_yaml_located",
]


class DocumentError(ValueError):
    """A document cannot be read: ``problem`` says why, ``line`` (1-based) where."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        self.problem = problem
        self.line = line
        super().__init__(problem if line is None else f"line {line}: {problem}")


class LocatedDict(dict):
    """A mapping read from a document: ``line`` is where it starts, ``key_lines`` maps
    each key to its own line (YAML only; JSON leaves it empty)."""

    line: int | None = None
    key_lines: dict[Any, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines = {}


class LocatedList(list):
    """A list read from a document: ``line`` is where it starts."""

    line: int | None = None


def line_of(container: Any, key: Any = None) -> int | None:
    """The line of ``key`` in ``container`` (its own line, else its value's), or of the
    container itself; ``None`` for a value that was not read by this module."""
    if key is not None and isinstance(container, LocatedDict):
        if key in container.key_lines:
            return container.key_lines[key]
        value_line = getattr(container.get(key), "line", None)
        if value_line is not None:
            return value_line
    return getattr(container, "line", None)


# -- YAML -------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    #: What a refused alias is said to be read in (``None``: aliases are allowed).
    refuse_aliases_in: str | None = None

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.refuse_aliases_in is not None and self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise DocumentError(
                f"anchors and aliases (*name) are not read in {self.refuse_aliases_in}; "
                "write it out",
                line=mark.line + 1,
            )
        return super().compose_node(parent, index)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LocatedDict:
    loader.flatten_mapping(node)
    mapping = LocatedDict()
    mapping.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise DocumentError(f"a key is a plain value, not {key!r}", line=line)
        if key in mapping:
            raise DocumentError(f"duplicate key {key!r}", line=line)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = line
    return mapping


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LocatedList:
    sequence = LocatedList(loader.construct_object(item, deep=True) for item in node.value)
    sequence.line = node.start_mark.line + 1
    return sequence


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml_located(text: str | bytes, *, refuse_aliases_in: str | None = None) -> Any:
    """Parse YAML ``text`` with the safe loader into located mappings and lists.

    ``refuse_aliases_in`` (e.g. ``"a policies file"``) refuses anchors and aliases,
    naming the document in the error; by default they are read.

    Raises:
        DocumentError: malformed YAML, a duplicate or non-plain key, a refused alias;
            with the line.
    """
    loader = _Loader(text)
    loader.refuse_aliases_in = refuse_aliases_in
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        raise DocumentError(
            f"not valid YAML: {error.problem}", line=mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as error:
        raise DocumentError(f"not valid YAML: {error}") from None
    except RecursionError:
        raise DocumentError("nested too deeply") from None
    finally:
        loader.dispose()


# -- JSON -------------------------------------------------------------------------------
class _LineCounter:
    """Line numbers of positions in ``text``, asked in increasing order (as the JSON
    scanner meets objects), counted incrementally so a long document stays linear."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._position = 0
        self._line = 1

    def line(self, position: int) -> int:
        if position < self._position:  # not expected; stay correct anyway
            return self._text.count("\n", 0, position) + 1
        self._line += self._text.count("\n", self._position, position)
        self._position = position
        return self._line


def _unique_keys(pairs: list[tuple[str, Any]]) -> LocatedDict:
    mapping = LocatedDict()
    for key, value in pairs:
        if key in mapping:
            raise DocumentError(f"duplicate key {key!r}")
        mapping[key] = value
    return mapping


def _reject_constant(name: str) -> Any:
    raise DocumentError(f"{name} is not allowed in JSON")


class _Decoder(json.JSONDecoder):
    """A strict decoder whose objects and arrays carry their line (the pure-Python
    scanner, so that the object and array parsers below are the ones called). A
    refused key or constant is located at the line of the object or array holding it."""

    def __init__(self, text: str) -> None:
        super().__init__(object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
        counter = _LineCounter(text)

        def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
            line = counter.line(s_and_end[1])
            try:
                mapping, end = json.decoder.JSONObject(s_and_end, *args)
            except DocumentError as error:
                raise DocumentError(error.problem, error.line or line) from None
            mapping.line = line
            return mapping, end

        def parse_array(s_and_end: tuple[str, int], scan_once: Any) -> tuple[Any, int]:
            line = counter.line(s_and_end[1])
            try:
                values, end = json.decoder.JSONArray(s_and_end, scan_once)
            except DocumentError as error:
                raise DocumentError(error.problem, error.line or line) from None
            located = LocatedList(values)
            located.line = line
            return located, end

        self.parse_object = parse_object
        self.parse_array = parse_array
        self.scan_once = json.scanner.py_make_scanner(self)


def load_json_located(text: str | bytes) -> Any:
    """Parse JSON ``text`` into located mappings and lists.

    Raises:
        DocumentError: malformed JSON, a duplicate key, ``NaN`` or ``Infinity``; with
            the line.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DocumentError(f"not UTF-8 text: {error.reason}") from None
    try:
        return _Decoder(text).decode(text)
    except json.JSONDecodeError as error:
        raise DocumentError(
            f"not valid JSON: {error.msg} (column {error.colno})", line=error.lineno
        ) from None
    except RecursionError:
        raise DocumentError("nested too deeply") from None
