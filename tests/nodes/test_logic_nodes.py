"""SwitchNode (boolean and multi-case routing) and MergeNode (joining branches)."""

import pytest

from kailash_nb.nodes.logic import MergeNode, SwitchNode
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeExecutionError

# -- SwitchNode: boolean mode ---------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "checked", "value", "expected"),
    [
        ("==", 5, 5, True),
        ("==", 5, 6, False),
        ("!=", 5, 6, True),
        ("!=", 5, 5, False),
        (">", 6, 5, True),
        (">", 5, 5, False),
        ("<", 4, 5, True),
        ("<", 5, 5, False),
        (">=", 5, 5, True),
        (">=", 4, 5, False),
        ("<=", 5, 5, True),
        ("<=", 6, 5, False),
        ("in", "b", ["a", "b"], True),
        ("in", "c", ["a", "b"], False),
        ("not in", "c", ["a", "b"], True),
        ("not in", "a", ["a", "b"], False),
        ("contains", [1, 2, 3], 2, True),
        ("contains", "hello", "ell", True),
        ("contains", [1, 2, 3], 4, False),
        ("is_null", None, None, True),
        ("is_null", 0, None, False),
        ("is_not_null", 0, None, True),
        ("is_not_null", None, None, False),
    ],
)
def test_switch_operators(operator, checked, value, expected):
    node = SwitchNode(condition_field="v", operator=operator, value=value)
    outputs = node.execute(input_data={"v": checked})
    assert outputs["condition_result"] is expected


def test_switch_true_branch_carries_input_data_other_is_none():
    data = {"status": "active", "id": 7}
    node = SwitchNode(condition_field="status", operator="==", value="active")
    assert node.execute(input_data=data) == {
        "true_output": data,
        "false_output": None,
        "condition_result": True,
    }


def test_switch_false_branch_carries_input_data_other_is_none():
    data = {"status": "inactive"}
    node = SwitchNode(condition_field="status", operator="==", value="active")
    assert node.execute(input_data=data) == {
        "true_output": None,
        "false_output": data,
        "condition_result": False,
    }


def test_switch_without_condition_field_checks_input_itself():
    node = SwitchNode(operator=">", value=10)
    assert node.execute(input_data=11)["true_output"] == 11
    assert node.execute(input_data=9)["false_output"] == 9


def test_switch_default_operator_is_equality():
    node = SwitchNode(value="x")
    assert node.execute(input_data="x")["condition_result"] is True
    assert node.execute(input_data="y")["condition_result"] is False


def test_switch_runtime_inputs_override_config():
    node = SwitchNode(condition_field="n", operator=">", value=10)
    assert node.execute(input_data={"n": 5}, value=1)["condition_result"] is True


def test_switch_pass_condition_result_false_drops_it():
    node = SwitchNode(value=1, pass_condition_result=False)
    assert node.execute(input_data=1) == {"true_output": 1, "false_output": None}


def test_switch_missing_field_compares_as_none():
    data = {"other": 1}
    assert SwitchNode(condition_field="v", operator="is_null").execute(input_data=data)[
        "true_output"
    ] == {"other": 1}
    assert SwitchNode(condition_field="v", value=None).execute(input_data=data)["condition_result"]
    assert SwitchNode(condition_field="v", operator="!=", value=1).execute(input_data=data)[
        "condition_result"
    ]


@pytest.mark.parametrize("operator", [">", "<", ">=", "<=", "in", "not in", "contains"])
def test_switch_ordering_and_membership_on_none_is_false(operator):
    node = SwitchNode(condition_field="v", operator=operator, value=[1])
    outputs = node.execute(input_data={"v": None})
    assert outputs["condition_result"] is False
    assert outputs["false_output"] == {"v": None}


def test_switch_comparison_raising_type_error_is_false():
    node = SwitchNode(condition_field="v", operator=">", value=1)
    outputs = node.execute(input_data={"v": "a"})
    assert outputs["condition_result"] is False
    assert outputs["false_output"] == {"v": "a"}
    assert (
        SwitchNode(operator="contains", value=1).execute(input_data=5)["condition_result"] is False
    )


def test_switch_unknown_operator_fails_at_construction_with_hint():
    with pytest.raises(NodeConfigurationError, match=r"unknown operator '=>'.*did you mean"):
        SwitchNode(operator="=>", value=1)


def test_switch_unknown_operator_at_runtime_fails():
    with pytest.raises(NodeExecutionError, match="unknown operator"):
        SwitchNode(value=1).execute(input_data=1, operator="~")


def test_switch_is_branching():
    assert SwitchNode.is_branching is True
    assert MergeNode.is_branching is False


# -- SwitchNode: multi-case mode ------------------------------------------------------


def test_switch_cases_route_to_matching_case():
    data = {"kind": "b", "payload": 1}
    node = SwitchNode(condition_field="kind", cases=["a", "b", "c"])
    assert node.execute(input_data=data) == {
        "default": data,
        "case_a": None,
        "case_b": data,
        "case_c": None,
        "condition_result": "b",
    }


def test_switch_cases_without_match():
    node = SwitchNode(cases=["a", "b"])
    assert node.execute(input_data="z") == {
        "default": "z",
        "case_a": None,
        "case_b": None,
        "condition_result": None,
    }


def test_switch_case_keys_are_sanitised():
    node = SwitchNode(cases=["new york", "x-y", "1.5", "10:30", "a/b"])
    outputs = node.execute(input_data="10:30")
    assert set(outputs) == {
        "default",
        "case_new_york",
        "case_x_y",
        "case_1_5",
        "case_10_30",
        "case_a_b",
        "condition_result",
    }
    assert outputs["case_10_30"] == "10:30"
    assert outputs["case_new_york"] is None
    assert outputs["condition_result"] == "10:30"


def test_switch_case_prefix_and_default_field():
    node = SwitchNode(cases=[1, 2], case_prefix="route_", default_field="fallback")
    assert node.execute(input_data=2) == {
        "fallback": 2,
        "route_1": None,
        "route_2": 2,
        "condition_result": 2,
    }


def test_switch_cases_stop_after_first_match_by_default():
    node = SwitchNode(operator="in", cases=["abc", "bcd", "xyz"])
    outputs = node.execute(input_data="b")
    assert outputs["case_abc"] == "b"
    assert outputs["case_bcd"] is None
    assert outputs["case_xyz"] is None
    assert outputs["condition_result"] == "abc"


def test_switch_cases_break_after_first_match_false_routes_to_every_match():
    node = SwitchNode(operator="in", cases=["abc", "bcd", "xyz"], break_after_first_match=False)
    outputs = node.execute(input_data="b")
    assert outputs["case_abc"] == "b"
    assert outputs["case_bcd"] == "b"
    assert outputs["case_xyz"] is None
    assert outputs["default"] == "b"
    assert outputs["condition_result"] in {"abc", "bcd"}


def test_switch_cases_group_list_of_dicts_by_field():
    items = [
        {"tier": "gold", "id": 1},
        {"tier": "silver", "id": 2},
        {"tier": "gold", "id": 3},
    ]
    node = SwitchNode(condition_field="tier", cases=["gold", "silver", "bronze"])
    outputs = node.execute(input_data=items)
    assert outputs["case_gold"] == [items[0], items[2]]
    assert outputs["case_silver"] == [items[1]]
    assert outputs["case_bronze"] == []
    assert outputs["default"] == items
    assert outputs["condition_result"] == ["gold", "silver"]


# -- MergeNode ------------------------------------------------------------------------


def test_merge_concat_of_lists():
    outputs = MergeNode().execute(data1=[1, 2], data2=[3], data3=[4, 5])
    assert outputs == {"merged_data": [1, 2, 3, 4, 5]}


def test_merge_concat_of_non_lists_collects_them():
    assert MergeNode(merge_type="concat").execute(data1=1, data2="x") == {"merged_data": [1, "x"]}


def test_merge_concat_of_list_and_non_list_collects_them():
    assert MergeNode().execute(data1=[1, 2], data2=3) == {"merged_data": [[1, 2], 3]}


def test_merge_zip():
    outputs = MergeNode(merge_type="zip").execute(data1=[1, 2, 3], data2=["a", "b", "c"])
    assert outputs == {"merged_data": [(1, "a"), (2, "b"), (3, "c")]}


def test_merge_zip_treats_non_list_as_single_item_list():
    outputs = MergeNode(merge_type="zip").execute(data1=[1, 2], data2="x")
    assert outputs == {"merged_data": [(1, "x")]}


def test_merge_dict_later_keys_win():
    outputs = MergeNode(merge_type="merge_dict").execute(
        data1={"a": 1, "b": 1}, data2={"b": 2, "c": 2}, data3={"c": 3}
    )
    assert outputs == {"merged_data": {"a": 1, "b": 2, "c": 3}}


def test_merge_dict_does_not_mutate_inputs():
    first, second = {"a": 1}, {"b": 2}
    MergeNode(merge_type="merge_dict").execute(data1=first, data2=second)
    assert first == {"a": 1}
    assert second == {"b": 2}


def test_merge_dict_joins_keyed_lists_of_dicts():
    left = [{"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}]
    right = [{"id": 2, "age": 40}, {"id": 3, "name": "cy"}, {"id": 1, "name": "anne"}]
    outputs = MergeNode(merge_type="merge_dict", key="id").execute(data1=left, data2=right)
    assert outputs == {
        "merged_data": [
            {"id": 1, "name": "anne"},
            {"id": 2, "name": "bob", "age": 40},
            {"id": 3, "name": "cy"},
        ]
    }
    assert left == [{"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}]


def test_merge_skip_none_passes_only_data2_through():
    payload = {"branch": "false"}
    assert MergeNode().execute(data1=None, data2=payload) == {"merged_data": payload}
    assert MergeNode().execute(data2=[1, 2]) == {"merged_data": [1, 2]}


@pytest.mark.parametrize("merge_type", ["concat", "zip", "merge_dict"])
def test_merge_skip_none_with_one_branch_works_for_every_merge_type(merge_type):
    node = MergeNode(merge_type=merge_type)
    assert node.execute(data1=None, data2={"x": 1}) == {"merged_data": {"x": 1}}
    assert node.execute(data1={"y": 2}, data2=None) == {"merged_data": {"y": 2}}


def test_merge_skip_none_ignores_none_among_several_inputs():
    assert MergeNode().execute(data1=[1], data2=None, data3=[2]) == {"merged_data": [1, 2]}


def test_merge_all_none_gives_none():
    assert MergeNode().execute() == {"merged_data": None}
    assert MergeNode().execute(data1=None, data2=None) == {"merged_data": None}


def test_merge_without_skip_none_keeps_leading_none():
    outputs = MergeNode(skip_none=False).execute(data1=None, data2=5)
    assert outputs == {"merged_data": [None, 5]}


def test_merge_unknown_merge_type_fails_at_construction():
    with pytest.raises(NodeConfigurationError, match="unknown merge_type 'union'"):
        MergeNode(merge_type="union")


def test_merge_dict_on_bad_inputs_raises_execution_error():
    with pytest.raises(NodeExecutionError, match="merge_dict"):
        MergeNode(merge_type="merge_dict").execute(data1={"a": 1}, data2=[1, 2])
    with pytest.raises(NodeExecutionError, match="merge_dict"):
        MergeNode(merge_type="merge_dict").execute(data1=[{"id": 1}], data2=[{"id": 2}])


def test_unknown_merge_type_or_operator_at_run_time_is_also_a_value_error():
    # Kailash raises ValueError for both; the NodeExecutionError names the node.
    with pytest.raises(ValueError, match=r"node 'MergeNode' .*unknown merge_type 'union'"):
        MergeNode().execute(data1=[1], data2=[2], merge_type="union")
    with pytest.raises(NodeExecutionError, match=r"unknown operator '=>'.*did you mean"):
        SwitchNode().execute(input_data=1, operator="=>", value=1)
