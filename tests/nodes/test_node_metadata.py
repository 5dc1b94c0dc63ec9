"""``NodeMetadata``: Kailash's attribute view of a node's metadata, and kailash_nb's
mapping view of the metadata keys given when the node was made."""

from __future__ import annotations

from datetime import datetime

import pytest

from kailash_nb.nodes.base import Node, NodeMetadata, NodeParameter
from kailash_nb.sdk_exceptions import NodeConfigurationError


class Doubler(Node):
    """Doubles its input."""

    def get_parameters(self):
        return {"x": NodeParameter(name="x", type=float, required=False, default=1.0)}

    def run(self, x):
        return {"y": x * 2}


def test_attributes_of_given_keys():
    node = Doubler(name="D", description="twice", version="2.0.0", author="me", tags={"math"})
    assert isinstance(node.metadata, NodeMetadata)
    assert node.metadata.name == "D"
    assert node.metadata.description == "twice"
    assert node.metadata.version == "2.0.0"
    assert node.metadata.author == "me"
    assert node.metadata.tags == {"math"}
    assert isinstance(node.metadata.created_at, datetime)


def test_defaults_without_given_keys():
    node = Doubler(_node_id="n1")
    assert node.metadata.name == "Doubler"
    assert node.metadata.description == "Doubles its input."
    assert node.metadata.version == "1.0.0"
    assert node.metadata.id == "n1"
    assert dict(node.metadata) == {}
    assert "name" not in node.metadata


def test_mapping_view_holds_only_given_keys():
    node = Doubler(name="D", metadata={"owner": "ops"})
    assert dict(node.metadata) == {"name": "D", "metadata": {"owner": "ops"}}
    assert node.metadata == {"name": "D", "metadata": {"owner": "ops"}}
    assert node.metadata["metadata"] == {"owner": "ops"}
    assert node.metadata.get("author", "nobody") == "nobody"
    with pytest.raises(KeyError):
        node.metadata["author"]


def test_dict_of_metadata_remakes_the_node():
    node = Doubler(name="D", tags={"a"}, x=3.0)
    again = Doubler(**dict(node.metadata), **node.config)
    assert again.metadata.name == "D"
    assert again.metadata.tags == {"a"}
    assert again.execute() == {"y": 6.0}


def test_node_metadata_object_is_used_as_given():
    given = NodeMetadata(id="m", name="Given", description="from outside")
    node = Doubler(metadata=given)
    assert node.metadata is given
    assert "metadata" not in node.config


def test_invalid_metadata_is_a_configuration_error():
    with pytest.raises(NodeConfigurationError, match="invalid metadata: tags"):
        Doubler(tags=[1, [2]])


def test_metadata_of_node_whose_init_skipped_node_init():
    class Bare(Doubler):
        def __init__(self):
            pass

    assert Bare().metadata.name == "Bare"


def test_metadata_can_be_replaced():
    node = Doubler(name="D")
    node.metadata = NodeMetadata(name="Other")
    assert node.metadata.name == "Other"
    node.metadata = {"name": "Third", "tags": ["a"]}
    assert node.metadata.tags == {"a"}
    assert dict(node.metadata) == {"name": "Third", "tags": {"a"}}
