"""kailash_nb._located: YAML and JSON documents whose mappings and lists know their line."""

from __future__ import annotations

import pytest

from kailash_nb._located import DocumentError, line_of, load_json_located, load_yaml_located


def test_yaml_mappings_keys_and_lists_carry_lines():
    document = load_yaml_located("a: 1\nnodes:\n  x:\n    k: v\n  y: 2\nitems:\n  - {z: 1}\n")
    assert document.line == 1
    assert line_of(document, "nodes") == 2
    assert line_of(document["nodes"], "y") == 5
    assert document["items"].line == 7 and document["items"][0].line == 7
    assert document == {"a": 1, "nodes": {"x": {"k": "v"}, "y": 2}, "items": [{"z": 1}]}


def test_yaml_aliases_are_read_unless_refused():
    text = "base: &b {x: 1}\nother: *b\n"
    assert load_yaml_located(text)["other"] == {"x": 1}
    with pytest.raises(DocumentError, match="not read in a policies file") as caught:
        load_yaml_located(text, refuse_aliases_in="a policies file")
    assert caught.value.line == 2


def test_yaml_refuses_duplicate_keys_and_unsafe_tags():
    with pytest.raises(DocumentError, match="duplicate key 'a'") as caught:
        load_yaml_located("a: 1\nb: 2\na: 3\n")
    assert caught.value.line == 3
    with pytest.raises(DocumentError, match="not valid YAML"):
        load_yaml_located("x: !!python/object/apply:os.system ['true']\n")


def test_json_objects_and_arrays_carry_lines():
    text = '{\n  "nodes": {\n    "a": {"k": 1},\n    "b": [\n      {"z": 2}\n    ]\n  }\n}\n'
    document = load_json_located(text)
    assert document.line == 1
    assert line_of(document, "nodes") == 2
    assert line_of(document["nodes"], "a") == 3
    assert line_of(document["nodes"], "b") == 4
    assert document["nodes"]["b"][0].line == 5
    assert document == {"nodes": {"a": {"k": 1}, "b": [{"z": 2}]}}


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ('{\n "a": 1,\n "a": 2\n}', 1, "duplicate key 'a'"),
        ("[\n 1,\n NaN\n]", 1, "NaN is not allowed"),
        ('{\n "x": Infinity\n}', 1, "Infinity is not allowed"),
        ('{\n "x": \n}', 3, "not valid JSON"),
    ],
)
def test_json_errors_carry_lines(text, line, problem):
    with pytest.raises(DocumentError, match=problem) as caught:
        load_json_located(text)
    assert caught.value.line == line
