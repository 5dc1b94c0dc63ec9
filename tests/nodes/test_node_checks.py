"""Kailash's node checks: ``validate_inputs``, ``validate_outputs`` with
``get_output_schema``, required inputs with defaults, internal keys, ``to_dict``."""

from __future__ import annotations

import pytest

from kailash_nb.nodes.base import Node, NodeParameter
from kailash_nb.sdk_exceptions import NodeValidationError


class Square(Node):
    """Squares a number."""

    def get_parameters(self):
        return {
            "x": NodeParameter(name="x", type=float, required=True, default=3.0),
            "label": NodeParameter(name="label", type=str, required=False),
            "n": NodeParameter(name="n", type=int, required=True, description="how many"),
        }

    def get_output_schema(self):
        return {
            "square": NodeParameter(name="square", type=int, required=True),
            "note": NodeParameter(name="note", type=str, required=False),
        }

    def run(self, x, n, label=None):
        return {"square": x * x, "extra": n}


def test_validate_inputs_coerces_and_fills_required_defaults():
    node = Square()
    assert node.validate_inputs(n="2", label=None) == {"x": 3.0, "n": 2}
    assert node.validate_inputs(x="1.5", n=1, label="a") == {"x": 1.5, "n": 1, "label": "a"}


def test_validate_inputs_errors():
    node = Square()
    with pytest.raises(NodeValidationError, match=r"Required parameter 'n' not provided.*how many"):
        node.validate_inputs()
    with pytest.raises(NodeValidationError, match="input 'n' must be of type int"):
        node.validate_inputs(n="many")
    with pytest.raises(NodeValidationError, match=r"has no input\(s\) \['m'\]"):
        node.validate_inputs(n=1, m=2)


def test_required_input_with_default_is_never_missing():
    assert Square(n=1).execute() == {"square": 9, "extra": 1}


def test_output_schema_checked_on_every_run():
    class Broken(Square):
        def run(self, x, n, label=None):
            return {"note": "no square"}

    with pytest.raises(NodeValidationError, match="Required output 'square' not provided"):
        Broken(n=1).execute()


def test_validate_outputs():
    node = Square()
    assert node.validate_outputs({"square": "4", "other": {1}}) == {"square": 4, "other": {1}}
    with pytest.raises(NodeValidationError, match="Output 'square' must be of type int"):
        node.validate_outputs({"square": "four"})
    with pytest.raises(NodeValidationError, match="outputs must be a dict"):
        node.validate_outputs([1])


def test_single_underscore_keys_are_internal():
    node = Square(n=1, _trace="x", _node_id="sq")
    assert node.config == {"n": 1}
    assert node.id == "sq"


def test_to_dict_layout():
    data = Square(n=1, name="S", _node_id="sq").to_dict()
    assert data["id"] == "sq"
    assert data["type"] == "Square"
    assert data["metadata"]["name"] == "S"
    assert data["config"] == {"n": 1}
    assert data["parameters"]["x"] == {
        "type": "float",
        "required": True,
        "default": 3.0,
        "description": "",
    }
