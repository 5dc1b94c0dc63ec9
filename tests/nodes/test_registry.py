"""NodeRegistry and register_node: registration, lookup, lazy built-ins, conflicts."""

import subprocess
import sys
import textwrap

import pytest

from kailash_nb.nodes.base import Node
from kailash_nb.nodes.registry import NodeRegistry, register_node
from kailash_nb.sdk_exceptions import NodeConfigurationError

BUILTIN_TYPES = {
    # Defined where Kailash defines them.
    "PythonCodeNode": "kailash_nb.nodes.code.python",
    "AsyncPythonCodeNode": "kailash_nb.nodes.code.python",
    "SwitchNode": "kailash_nb.nodes.logic.operations",
    "MergeNode": "kailash_nb.nodes.logic.operations",
}


@pytest.fixture
def cleanup():
    """Collect type names a test registers; unregister them afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        NodeRegistry.unregister(name)


def _node_class(name: str, module: str) -> type[Node]:
    """A Node subclass that looks as if it were defined in ``module``."""
    return type(name, (Node,), {"__module__": module})


def _run_python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter, where no node family is imported yet."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- registering --------------------------------------------------------------------


def test_register_node_with_parentheses_registers_under_class_name(cleanup):
    cleanup.append("RegTestCalled")

    @register_node()
    class RegTestCalled(Node):
        pass

    assert NodeRegistry.get("RegTestCalled") is RegTestCalled
    assert RegTestCalled.type_name() == "RegTestCalled"


def test_register_node_without_parentheses_returns_the_class(cleanup):
    cleanup.append("RegTestBare")

    @register_node
    class RegTestBare(Node):
        pass

    assert isinstance(RegTestBare, type)
    assert issubclass(RegTestBare, Node)
    assert NodeRegistry.get("RegTestBare") is RegTestBare


def test_register_node_with_alias(cleanup):
    cleanup.extend(["RegTestAlias", "RegTestAliased"])

    @register_node("RegTestAlias")
    class RegTestAliased(Node):
        pass

    assert NodeRegistry.get("RegTestAlias") is RegTestAliased
    assert RegTestAliased.type_name() == "RegTestAlias"
    assert RegTestAliased(_node_id="n").to_dict()["type"] == "RegTestAlias"
    with pytest.raises(NodeConfigurationError):
        NodeRegistry.get("RegTestAliased")


def test_register_node_with_alias_keyword(cleanup):
    cleanup.append("RegTestKeywordAlias")

    @register_node(alias="RegTestKeywordAlias")
    class Whatever(Node):
        pass

    assert NodeRegistry.get("RegTestKeywordAlias") is Whatever


def test_registered_type_name_is_not_inherited_by_subclasses(cleanup):
    cleanup.append("RegTestParentAlias")

    @register_node("RegTestParentAlias")
    class Parent(Node):
        pass

    class Child(Parent):
        pass

    assert Child.type_name() == "Child"


def test_unregister_removes_the_type(cleanup):
    cleanup.append("RegTestGone")
    NodeRegistry.register(_node_class("RegTestGone", "nb_cell"))
    NodeRegistry.unregister("RegTestGone")
    with pytest.raises(NodeConfigurationError):
        NodeRegistry.get("RegTestGone")
    NodeRegistry.unregister("RegTestGone")  # unregistering twice is harmless


# -- built-in types -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILTIN_TYPES))
def test_get_returns_builtin_type(name):
    node_class = NodeRegistry.get(name)
    assert node_class.__name__ == name
    assert node_class.__module__ == BUILTIN_TYPES[name]
    assert issubclass(node_class, Node)
    assert node_class.type_name() == name


def test_builtin_types_load_lazily_on_first_get():
    result = _run_python(
        """
        import sys
        from kailash_nb.nodes.registry import NodeRegistry
        assert "kailash_nb.nodes.logic" not in sys.modules
        assert "kailash_nb.nodes.code" not in sys.modules
        assert "SwitchNode" in NodeRegistry.names()
        assert "kailash_nb.nodes.logic" not in sys.modules
        switch = NodeRegistry.get("SwitchNode")
        assert switch.__module__ == "kailash_nb.nodes.logic.operations"
        assert "kailash_nb.nodes.logic" in sys.modules
        assert "kailash_nb.nodes.code" not in sys.modules
        """
    )
    assert result.returncode == 0, result.stderr


def test_nodes_package_exposes_builtin_types_by_attribute():
    import kailash_nb.nodes

    assert kailash_nb.nodes.MergeNode is NodeRegistry.get("MergeNode")
    with pytest.raises(AttributeError):
        kailash_nb.nodes.NoSuchNode  # noqa: B018


def test_unknown_type_raises_with_close_matches():
    with pytest.raises(NodeConfigurationError, match="did you mean 'SwitchNode'") as info:
        NodeRegistry.get("SwichNode")
    assert "'SwichNode'" in str(info.value)


def test_unknown_type_without_close_match_still_raises():
    with pytest.raises(NodeConfigurationError, match="unknown node type 'Zq'"):
        NodeRegistry.get("Zq")


# -- conflicts and replacement --------------------------------------------------------


def test_same_name_from_another_module_is_rejected(cleanup):
    cleanup.append("RegTestClash")
    original = NodeRegistry.register(_node_class("RegTestClash", "first_module"))
    intruder = _node_class("RegTestClash", "second_module")
    with pytest.raises(NodeConfigurationError, match="already registered by first_module"):
        NodeRegistry.register(intruder)
    assert NodeRegistry.get("RegTestClash") is original


def test_builtin_name_cannot_be_taken_by_another_module():
    NodeRegistry.get("PythonCodeNode")  # make sure the built-in is loaded
    impostor = _node_class("PythonCodeNode", "someone_else")
    with pytest.raises(NodeConfigurationError, match="already registered"):
        NodeRegistry.register(impostor)
    assert NodeRegistry.get("PythonCodeNode").__module__ == "kailash_nb.nodes.code.python"


def test_builtin_name_cannot_be_taken_before_the_builtin_is_loaded():
    # A built-in type name is reserved even while its module has not been imported:
    # otherwise a user class silently shadows SwitchNode.
    result = _run_python(
        """
        from kailash_nb.nodes.base import Node
        from kailash_nb.nodes.registry import NodeRegistry
        from kailash_nb.sdk_exceptions import NodeConfigurationError
        impostor = type("SwitchNode", (Node,), {"__module__": "user_module"})
        try:
            NodeRegistry.register(impostor)
        except NodeConfigurationError:
            pass
        else:
            raise SystemExit("registered a user class as 'SwitchNode'")
        assert NodeRegistry.get("SwitchNode").__module__ == "kailash_nb.nodes.logic.operations"
        """
    )
    assert result.returncode == 0, result.stderr


def test_same_module_and_qualname_replaces_entry(cleanup):
    cleanup.append("RegTestCell")
    first = NodeRegistry.register(_node_class("RegTestCell", "notebook_cell"))
    second = NodeRegistry.register(_node_class("RegTestCell", "notebook_cell"))
    assert first is not second
    assert NodeRegistry.get("RegTestCell") is second


def test_rerunning_a_decorated_definition_replaces_entry(cleanup):
    cleanup.append("RegTestRerun")

    def define():
        @register_node()
        class RegTestRerun(Node):
            pass

        return RegTestRerun

    first, second = define(), define()
    assert first is not second
    assert NodeRegistry.get("RegTestRerun") is second


def test_registering_same_class_twice_is_allowed(cleanup):
    cleanup.append("RegTestTwice")
    node_class = _node_class("RegTestTwice", "mod")
    NodeRegistry.register(node_class)
    assert NodeRegistry.register(node_class) is node_class


# -- rejected registrations -----------------------------------------------------------


@pytest.mark.parametrize("thing", [int, object, len, "Node", Node()], ids=repr)
def test_non_node_registration_is_rejected(thing):
    with pytest.raises(NodeConfigurationError, match="only subclasses"):
        NodeRegistry.register(thing)


def test_register_node_decorator_rejects_non_node_class():
    with pytest.raises(NodeConfigurationError):

        @register_node
        class NotANode:
            pass

    with pytest.raises(NodeConfigurationError):

        @register_node()
        class AlsoNotANode:
            pass

    assert "NotANode" not in NodeRegistry.names()
    assert "AlsoNotANode" not in NodeRegistry.names()


def test_alias_must_be_an_identifier():
    with pytest.raises(NodeConfigurationError, match="identifier"):
        NodeRegistry.register(_node_class("RegTestBadAlias", "mod"), alias="not valid")
    assert "not valid" not in NodeRegistry.names()


# -- listing --------------------------------------------------------------------------


def test_list_includes_builtins_and_registered_types(cleanup):
    cleanup.append("RegTestListed")
    listed_class = NodeRegistry.register(_node_class("RegTestListed", "mod"))
    listing = NodeRegistry.list()
    assert isinstance(listing, dict)
    assert set(BUILTIN_TYPES) <= set(listing)
    assert listing["RegTestListed"] is listed_class
    assert all(listing[name].__name__ == name for name in BUILTIN_TYPES)
    assert list(listing) == sorted(listing)


def test_names_lists_builtins_without_loading_them():
    names = NodeRegistry.names()
    assert set(BUILTIN_TYPES) <= set(names)
    assert names == sorted(names)
