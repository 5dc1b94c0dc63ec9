"""PythonCodeNode and AsyncPythonCodeNode: code mode, function mode, async code.

No ``from __future__ import annotations`` here: the functions below are wrapped with
``from_function`` and their annotations must be real types.
"""

import asyncio

import pytest

from kailash_nb.nodes.code import AsyncPythonCodeNode, PythonCodeNode
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    NodeExecutionError,
    NodeValidationError,
)

# -- code mode ----------------------------------------------------------------------


def test_code_assigning_result_returns_result():
    assert PythonCodeNode(code="result = x + 1").execute(x=1) == {"result": 2}


def test_free_names_become_required_parameters_in_order():
    node = PythonCodeNode(code="result = a * b + c")
    assert list(node.parameters) == ["a", "b", "c"]
    assert all(parameter.required for parameter in node.parameters.values())


def test_builtins_and_assigned_names_are_not_parameters():
    node = PythonCodeNode(code="total = sum(items)\nresult = len(items) + total")
    assert list(node.parameters) == ["items"]


def test_missing_code_input_raises_validation_error():
    node = PythonCodeNode(code="result = x + y")
    with pytest.raises(NodeValidationError, match="missing required input 'y'"):
        node.execute(x=1)


def test_comprehension_sees_inputs():
    node = PythonCodeNode(code="result = [i * factor for i in items if i > floor]")
    assert set(node.parameters) == {"items", "factor", "floor"}
    assert node.execute(items=[1, 2, 3], factor=10, floor=1) == {"result": [20, 30]}


def test_nested_function_sees_inputs():
    code = "def scale(v):\n    return v * factor\nresult = [scale(v) for v in values]"
    node = PythonCodeNode(code=code)
    assert set(node.parameters) == {"factor", "values"}
    assert node.execute(factor=3, values=[1, 2]) == {"result": [3, 6]}


def test_without_result_outputs_are_assigned_public_names():
    code = (
        "import os\n"
        "def helper():\n"
        "    return 1\n"
        "class Box:\n"
        "    pass\n"
        "doubled = x * 2\n"
        "label = 'n' + str(x)\n"
        "_private = 0\n"
    )
    outputs = PythonCodeNode(code=code).execute(x=4)
    assert outputs == {"doubled": 8, "label": "n4"}


def test_without_result_inputs_are_not_outputs():
    outputs = PythonCodeNode(code="y = x + 1").execute(x=1, unused=5)
    assert outputs == {"y": 2}


def test_input_named_result_that_is_only_read_is_not_the_output():
    # The snippet never assigns ``result``; its output is what it assigns.
    node = PythonCodeNode(code="doubled = result * 2")
    assert node.execute(result=3) == {"doubled": 6}


def test_preloaded_modules_are_usable_without_import_and_not_parameters():
    node = PythonCodeNode(code="result = math.sqrt(x) + len(json.dumps([]))")
    assert list(node.parameters) == ["x"]
    assert node.execute(x=16) == {"result": 6.0}


def test_syntax_error_raises_configuration_error_with_line_number():
    with pytest.raises(NodeConfigurationError, match="line 3"):
        PythonCodeNode(code="a = 1\nb = 2\nc = = 3\n")


def test_exception_in_code_is_chained_execution_error():
    node = PythonCodeNode(code="result = 1 / x", _node_id="divide")
    with pytest.raises(NodeExecutionError, match="ZeroDivisionError") as info:
        node.execute(x=0)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert "'divide'" in str(info.value)


def test_code_is_compiled_once_per_node():
    node = PythonCodeNode(code="result = x * 3")
    code_object = node._code
    assert node.execute(x=1) == {"result": 3}
    assert node.execute(x=2) == {"result": 6}
    assert node._code is code_object


def test_nodes_with_same_source_share_the_code_object():
    source = "result = shared_input + 41"
    first = PythonCodeNode(code=source, _node_id="a")
    second = PythonCodeNode(code=source, _node_id="b")
    assert first._code is second._code
    assert PythonCodeNode(code=source + " ")._code is not first._code


def test_runs_do_not_leak_variables_between_calls():
    node = PythonCodeNode(code="if flag:\n    extra = 1\nresult = flag")
    assert node.execute(flag=True) == {"result": True}
    assert node.execute(flag=False) == {"result": False}
    no_result = PythonCodeNode(code="if flag:\n    extra = 1\nseen = flag")
    assert no_result.execute(flag=True) == {"extra": 1, "seen": True}
    assert no_result.execute(flag=False) == {"seen": False}


@pytest.mark.parametrize(
    "option", ["sandbox_mode", "validate_security", "input_schema", "max_code_lines"]
)
def test_unsupported_kailash_options_are_rejected(option):
    with pytest.raises(NodeConfigurationError, match=option):
        PythonCodeNode(code="result = 1", **{option: True})


def test_neither_code_nor_function_is_rejected():
    with pytest.raises(NodeConfigurationError, match="exactly one"):
        PythonCodeNode()


def test_both_code_and_function_are_rejected():
    with pytest.raises(NodeConfigurationError, match="exactly one"):
        PythonCodeNode(code="result = 1", function=lambda: 1)


@pytest.mark.parametrize("code", ["", "   \n", 42])
def test_empty_or_non_string_code_is_rejected(code):
    with pytest.raises(NodeConfigurationError):
        PythonCodeNode(code=code)


def test_input_types_coerce_runtime_inputs():
    node = PythonCodeNode(code="result = x", input_types={"x": "int"})
    outputs = node.execute(x="3")
    assert outputs == {"result": 3}
    assert type(outputs["result"]) is int


def test_input_types_coerce_config_values():
    node = PythonCodeNode(code="result = x", input_types={"x": "int"}, x="7")
    assert node.config["x"] == 7
    assert node.execute() == {"result": 7}


def test_input_types_reject_bad_runtime_value():
    node = PythonCodeNode(code="result = x", input_types={"x": "int"})
    with pytest.raises(NodeValidationError, match="'x'"):
        node.execute(x="three")


def test_unknown_input_type_name_is_rejected():
    with pytest.raises(NodeConfigurationError, match="input_types"):
        PythonCodeNode(code="result = x", input_types={"x": "integer"})


def test_config_values_are_default_inputs():
    node = PythonCodeNode(code="result = x + y", y=2)
    assert node.execute(x=1) == {"result": 3}
    assert node.execute(x=1, y=10) == {"result": 11}


def test_name_is_metadata():
    node = PythonCodeNode(name="adder", code="result = x + 1")
    assert node.metadata["name"] == "adder"
    assert "name" not in node.config


# -- optional inputs (the Kailash idioms) --------------------------------------------
# Expected values are those Kailash 2.65 gives for the same snippets.

_GUARDED = "try:\n    v = value\nexcept NameError:\n    v = 0\nresult = {'value': v + 1}"


def test_name_read_under_except_name_error_is_an_optional_input():
    node = PythonCodeNode(code=_GUARDED)
    assert list(node.parameters) == ["value"]
    assert node.parameters["value"].required is False
    assert node.execute() == {"result": {"value": 1}}
    assert node.execute(value=5) == {"result": {"value": 6}}


def test_unsupplied_optional_input_is_undefined_not_none():
    code = "try:\n    v = value\nexcept NameError:\n    v = 'missing'\nresult = v"
    node = PythonCodeNode(code=code)
    assert node.execute() == {"result": "missing"}
    assert node.execute(value=None) == {"result": None}


def test_optional_input_given_in_config_is_its_default():
    node = PythonCodeNode(code=_GUARDED, value=4)
    assert node.execute() == {"result": {"value": 5}}
    assert node.execute(value=6) == {"result": {"value": 7}}


@pytest.mark.parametrize(
    "handler",
    [
        "except NameError:",
        "except (KeyError, NameError):",
        "except Exception:",
        "except BaseException:",
        "except:",
        "except Exception as exc:",
    ],
)
def test_handlers_catching_name_error_make_the_name_optional(handler):
    node = PythonCodeNode(code=f"try:\n    v = value\n{handler}\n    v = 0\nresult = v")
    assert node.parameters["value"].required is False
    assert node.execute() == {"result": 0}
    assert node.execute(value=9) == {"result": 9}


@pytest.mark.parametrize(
    "code",
    [
        "try:\n    v = value\nexcept KeyError:\n    v = 0\nresult = v",
        "try:\n    pass\nexcept NameError:\n    v = value\nresult = 1",
        "try:\n    pass\nexcept NameError:\n    pass\nelse:\n    v = value\nresult = 1",
        "try:\n    pass\nfinally:\n    v = value\nresult = 1",
    ],
)
def test_names_outside_a_name_error_guard_stay_required(code):
    node = PythonCodeNode(code=code)
    assert node.parameters["value"].required is True
    with pytest.raises(NodeValidationError, match="missing required input 'value'"):
        node.execute()


def test_guard_covers_nested_expressions_in_the_try_body():
    code = (
        "try:\n"
        "    scaled = [x * factor for x in items]\n"
        "except NameError:\n"
        "    scaled = []\n"
        "result = scaled"
    )
    node = PythonCodeNode(code=code)
    assert {name: p.required for name, p in node.parameters.items()} == {
        "factor": False,
        "items": False,
    }
    assert node.execute() == {"result": []}
    assert node.execute(items=[1, 2], factor=3) == {"result": [3, 6]}


def test_self_copy_under_the_guard_declares_cycle_state():
    code = (
        "try:\n"
        "    count = count\n"
        "    total = total\n"
        "except NameError:\n"
        "    count = 0\n"
        "    total = 0\n"
        "count += 1\n"
        "total += input_value\n"
        "result = {'count': count, 'total': total}"
    )
    node = PythonCodeNode(code=code)
    assert {name: p.required for name, p in node.parameters.items()} == {
        "count": False,
        "total": False,
        "input_value": True,
    }
    assert node.execute(input_value=5) == {"result": {"count": 1, "total": 5}}
    assert node.execute(input_value=5, count=1, total=5) == {"result": {"count": 2, "total": 10}}


@pytest.mark.parametrize(
    ("code", "missing", "given"),
    [
        ("x = locals().get('x', 3)\nresult = x * 2", 6, 10),
        ("x = globals().get('x', 3)\nresult = x * 2", 6, 10),
        ("x = vars().get('x', 3)\nresult = x * 2", 6, 10),
        ("result = x * 2 if 'x' in locals() else -1", -1, 10),
        ("result = x * 2 if 'x' in globals() else -1", -1, 10),
        ("result = x * 2 if 'x' in dir() else -1", -1, 10),
        ("result = -1 if 'x' not in locals() else x * 2", -1, 10),
    ],
)
def test_names_looked_up_in_the_namespace_are_optional_inputs(code, missing, given):
    node = PythonCodeNode(code=code)
    assert node.parameters["x"].required is False
    assert node.execute() == {"result": missing}
    assert node.execute(x=5) == {"result": given}


def test_namespace_lookup_through_a_shadowed_locals_is_not_a_probe():
    node = PythonCodeNode(code="locals = {}\nresult = locals.get('x', 1)")
    assert "x" not in node.parameters


@pytest.mark.parametrize(
    "code",
    [
        "v = locals().get('__builtins__')\nresult = 1",
        "v = locals().get('len')\nresult = 1",
        "v = locals().get('not a name')\nresult = 1",
        "try:\n    v = len\nexcept NameError:\n    v = 0\nresult = 1",
    ],
)
def test_dunders_builtins_and_non_identifiers_are_never_optional_inputs(code):
    assert PythonCodeNode(code=code).parameters == {}


def test_read_names_come_first_then_names_only_looked_up_by_string():
    code = (
        "x = locals().get('b', 0)\n"
        "try:\n    y = a\nexcept NameError:\n    y = 0\n"
        "result = x + y + c"
    )
    node = PythonCodeNode(code=code)
    assert list(node.parameters) == ["a", "c", "b"]
    assert [name for name, p in node.parameters.items() if p.required] == ["c"]


def test_optional_inputs_take_input_types():
    node = PythonCodeNode(code=_GUARDED, input_types={"value": int})
    assert node.parameters["value"].required is False
    assert node.parameters["value"].type is int
    assert node.execute(value="2") == {"result": {"value": 3}}
    assert node.execute() == {"result": {"value": 1}}


def test_async_code_optional_inputs():
    node = AsyncPythonCodeNode(code="await asyncio.sleep(0)\n" + _GUARDED)
    assert node.parameters["value"].required is False
    assert asyncio.run(node.execute_async()) == {"result": {"value": 1}}
    assert asyncio.run(node.execute_async(value=2)) == {"result": {"value": 3}}


# -- function mode ------------------------------------------------------------------


def scale(value, factor: int = 2):
    return value * factor


def test_from_function_reads_parameters_from_signature():
    node = PythonCodeNode.from_function(scale)
    assert list(node.parameters) == ["value", "factor"]
    assert node.parameters["value"].required is True
    assert node.parameters["factor"].required is False
    assert node.parameters["factor"].default == 2
    assert node.metadata["name"] == "scale"


def test_from_function_uses_defaults_and_wraps_return_value():
    node = PythonCodeNode.from_function(scale)
    assert node.execute(value=5) == {"result": 10}
    assert node.execute(value=5, factor=3) == {"result": 15}


def test_from_function_coerces_annotated_inputs():
    node = PythonCodeNode.from_function(scale)
    outputs = node.execute(value=1, factor="4")
    assert outputs == {"result": 4}
    with pytest.raises(NodeValidationError, match="'factor'"):
        node.execute(value=1, factor="four")


def test_from_function_coerces_postponed_annotations():
    # A function from a module with ``from __future__ import annotations`` is annotated
    # too; its string annotations must not silently disable coercion.
    namespace: dict = {}
    exec(
        "from __future__ import annotations\ndef add_one(x: int):\n    return x + 1\n",
        namespace,
    )
    node = PythonCodeNode.from_function(namespace["add_one"])
    assert node.execute(x="41") == {"result": 42}


def test_from_function_missing_required_input_raises():
    with pytest.raises(NodeValidationError, match="missing required input 'value'"):
        PythonCodeNode.from_function(scale).execute()


def test_from_function_dict_with_result_key_is_returned_as_is():
    def split(text):
        words = text.split()
        return {"result": words, "count": len(words)}

    node = PythonCodeNode.from_function(split)
    assert node.execute(text="a b c") == {"result": ["a", "b", "c"], "count": 3}


def test_from_function_dict_without_result_key_is_wrapped():
    node = PythonCodeNode.from_function(lambda: {"a": 1})
    assert node.execute() == {"result": {"a": 1}}


def test_from_function_with_kwargs_accepts_extra_inputs():
    def collect(first, **rest):
        return {"result": first, "rest": rest}

    node = PythonCodeNode.from_function(collect)
    assert list(node.parameters) == ["first"]
    assert node.execute(first=1, second=2) == {"result": 1, "rest": {"second": 2}}


def test_from_function_without_kwargs_rejects_undeclared_inputs():
    node = PythonCodeNode.from_function(scale)
    with pytest.raises(NodeValidationError, match="'extra'"):
        node.execute(value=1, extra=2)


def test_from_function_without_kwargs_rejects_undeclared_config():
    with pytest.raises(NodeConfigurationError, match="'extra'"):
        PythonCodeNode.from_function(scale, extra=2)


def test_from_function_config_values_are_default_inputs():
    node = PythonCodeNode.from_function(scale, factor="5")
    assert node.execute(value=2) == {"result": 10}


def test_from_function_exception_is_chained_execution_error():
    def explode(x):
        raise RuntimeError(f"bad {x}")

    with pytest.raises(NodeExecutionError, match="bad 1") as info:
        PythonCodeNode.from_function(explode).execute(x=1)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_function_with_var_positional_is_rejected():
    def takes_args(*args):
        return args

    with pytest.raises(NodeConfigurationError, match=r"\*args"):
        PythonCodeNode.from_function(takes_args)


def test_non_callable_function_is_rejected():
    with pytest.raises(NodeConfigurationError, match="callable"):
        PythonCodeNode(function=42)


# -- AsyncPythonCodeNode ------------------------------------------------------------


def test_async_code_supports_top_level_await_with_asyncio_preloaded():
    node = AsyncPythonCodeNode(code="await asyncio.sleep(0)\nresult = x * 2")
    assert list(node.parameters) == ["x"]
    assert node.is_async is True
    assert node.execute(x=21) == {"result": 42}


def test_async_code_without_await_runs():
    assert AsyncPythonCodeNode(code="result = x + 1").execute(x=1) == {"result": 2}


def test_async_code_awaited_with_execute_async():
    node = AsyncPythonCodeNode(code="await asyncio.sleep(0)\ny = x - 1")

    async def main():
        return await node.execute_async(x=10)

    assert asyncio.run(main()) == {"y": 9}


def test_async_code_exception_is_chained_execution_error():
    node = AsyncPythonCodeNode(code="await asyncio.sleep(0)\nresult = {}[key]")
    with pytest.raises(NodeExecutionError) as info:
        node.execute(key="k")
    assert isinstance(info.value.__cause__, KeyError)


async def fetch_double(x: int, pause: float = 0):
    await asyncio.sleep(pause)
    return x * 2


def test_async_from_function_awaits_async_def():
    node = AsyncPythonCodeNode.from_function(fetch_double)
    assert list(node.parameters) == ["x", "pause"]
    assert node.execute(x="4") == {"result": 8}


def test_python_code_node_from_async_function_returns_async_node():
    node = PythonCodeNode.from_function(fetch_double)
    assert type(node) is AsyncPythonCodeNode
    assert node.metadata["name"] == "fetch_double"
    assert node.execute(x=5) == {"result": 10}


def test_async_from_function_accepts_plain_function():
    node = AsyncPythonCodeNode.from_function(scale)
    assert node.execute(value=3) == {"result": 6}
