"""Node and AsyncNode: declared parameters, config validation, standalone execution."""

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from kailash_nb.nodes.base import Node, NodeParameter
from kailash_nb.nodes.base_async import AsyncNode
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    NodeExecutionError,
    NodeValidationError,
)


class Scale(Node):
    """``value`` (required int) times ``factor`` (optional int, default 2)."""

    def get_parameters(self):
        return {
            "value": NodeParameter(name="value", type=int, required=True),
            "factor": NodeParameter(name="factor", type=int, required=False, default=2),
        }

    def run(self, value, factor):
        return {"result": value * factor}


class Failing(Node):
    def run(self, **kwargs):
        raise ValueError("boom")


class ReturnsNonDict(Node):
    def run(self, **kwargs):
        return 42


class Described(Node):
    """Declares a parameter named like a metadata key."""

    def get_parameters(self):
        return {"description": NodeParameter(name="description", type=str, required=False)}

    def run(self, description=None):
        return {"result": description}


class AsyncDouble(AsyncNode):
    def get_parameters(self):
        return {"x": NodeParameter(name="x", type=int)}

    async def async_run(self, x):
        await asyncio.sleep(0)
        return {"result": x * 2}


class AsyncFailing(AsyncNode):
    async def async_run(self, **kwargs):
        raise KeyError("missing")


# -- NodeParameter ----------------------------------------------------------------


def test_node_parameter_is_a_pydantic_model_with_declared_fields():
    parameter = NodeParameter(
        name="count", type=int, required=False, default=3, description="how many"
    )
    assert isinstance(parameter, BaseModel)
    assert set(NodeParameter.model_fields) == {"name", "type", "required", "default", "description"}
    assert parameter.name == "count"
    assert parameter.type is int
    assert parameter.required is False
    assert parameter.default == 3
    assert parameter.description == "how many"


def test_node_parameter_defaults():
    parameter = NodeParameter(name="x")
    assert parameter.required is True
    assert parameter.type is None
    assert parameter.default is None
    assert parameter.description == ""


def test_node_parameter_requires_a_name():
    with pytest.raises(ValidationError):
        NodeParameter(type=int)


# -- declaring parameters and configuring ------------------------------------------


def test_custom_node_exposes_declared_parameters():
    node = Scale(value=1)
    assert set(node.parameters) == {"value", "factor"}
    assert node.parameters["value"].required is True
    assert node.parameters["factor"].default == 2


def test_config_is_coerced_to_declared_type_at_construction():
    node = Scale(value="4")
    assert node.config == {"value": 4}
    assert type(node.config["value"]) is int


def test_uncoercible_config_raises_naming_node_and_parameter():
    with pytest.raises(NodeConfigurationError) as info:
        Scale(_node_id="scaler", value="abc")
    message = str(info.value)
    assert "'scaler'" in message
    assert "'value'" in message


def test_unknown_config_key_raises_with_close_match_hint():
    with pytest.raises(NodeConfigurationError, match="did you mean 'value'") as info:
        Scale(valeu=3)
    assert "'valeu'" in str(info.value)


def test_dunder_config_key_is_rejected():
    with pytest.raises(NodeConfigurationError, match="__class__"):
        Scale(**{"__class__": 1})


def test_metadata_keys_go_to_metadata_not_config():
    node = Scale(value=1, name="Scaler", description="scales things")
    assert node.metadata == {"name": "Scaler", "description": "scales things"}
    assert node.config == {"value": 1}


def test_declared_parameter_named_like_metadata_stays_in_config():
    node = Described(description="kept")
    assert node.config == {"description": "kept"}
    assert "description" not in node.metadata
    assert node.execute() == {"result": "kept"}


def test_node_id_from_underscore_node_id():
    node = Scale(_node_id="n1", value=1)
    assert node.id == "n1"
    assert "_node_id" not in node.config


def test_node_id_from_id_key_is_not_config():
    node = Scale(id="n2", value=1)
    assert node.id == "n2"
    assert "id" not in node.config


def test_node_id_defaults_to_type_name():
    assert Scale(value=1).id == "Scale"


# -- standalone execution -----------------------------------------------------------


def test_execute_uses_config_and_defaults():
    assert Scale(value=3).execute() == {"result": 6}


def test_runtime_input_wins_over_config():
    assert Scale(value=3).execute(value=10) == {"result": 20}


def test_runtime_input_overrides_optional_default():
    assert Scale(value=3).execute(factor=5) == {"result": 15}


def test_missing_required_input_raises_naming_it():
    with pytest.raises(NodeValidationError, match="missing required input 'value'"):
        Scale().execute()


def test_runtime_input_is_coerced_to_declared_type():
    assert Scale().execute(value="10") == {"result": 20}


def test_bad_runtime_type_raises_validation_error():
    with pytest.raises(NodeValidationError, match="'value'"):
        Scale().execute(value="ten")


def test_undeclared_runtime_input_raises_validation_error_with_hint():
    with pytest.raises(NodeValidationError, match=r"'factr'.*did you mean 'factor'"):
        Scale(value=1).execute(factr=3)


def test_dunder_input_name_is_rejected():
    with pytest.raises(NodeValidationError, match="__class__"):
        Scale(value=1).execute(**{"__class__": 1})


def test_run_exception_becomes_execution_error_chained_to_original():
    with pytest.raises(NodeExecutionError, match="boom") as info:
        Failing(_node_id="f").execute()
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value.__cause__) == "boom"
    assert "'f'" in str(info.value)


def test_run_returning_non_dict_raises_execution_error():
    with pytest.raises(NodeExecutionError, match="returned int"):
        ReturnsNonDict().execute()


def test_node_without_run_implementation_fails_on_execute():
    with pytest.raises(NodeExecutionError, match="NotImplementedError"):
        Node().execute()


# -- AsyncNode ----------------------------------------------------------------------


def test_async_node_is_marked_async():
    assert AsyncDouble.is_async is True
    assert Scale.is_async is False


def test_async_node_execute_from_plain_code():
    assert AsyncDouble().execute(x=4) == {"result": 8}


def test_async_node_execute_coerces_and_validates_inputs():
    assert AsyncDouble().execute(x="5") == {"result": 10}
    with pytest.raises(NodeValidationError, match="missing required input 'x'"):
        AsyncDouble().execute()


def test_async_node_execute_inside_running_event_loop():
    async def main() -> Any:
        asyncio.get_running_loop()  # a loop is running here, as in a Jupyter kernel
        return AsyncDouble(x=2).execute(x=21)

    assert asyncio.run(main()) == {"result": 42}


def test_async_node_execute_async_awaited():
    async def main() -> Any:
        return await AsyncDouble().execute_async(x=3)

    assert asyncio.run(main()) == {"result": 6}


def test_async_node_sync_run_drives_async_run():
    assert AsyncDouble().run(x=7) == {"result": 14}


def test_async_node_failure_is_chained_execution_error():
    with pytest.raises(NodeExecutionError) as info:
        AsyncFailing().execute()
    assert isinstance(info.value.__cause__, KeyError)
