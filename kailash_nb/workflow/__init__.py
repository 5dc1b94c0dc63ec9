"""Workflows: ``WorkflowBuilder`` assembles, ``Workflow`` is the validated result."""

from kailash_nb.workflow.builder import WorkflowBuilder
from kailash_nb.workflow.connection import Connection, NodeOptions
from kailash_nb.workflow.cycles import CycleBuilder, CycleSpec
from kailash_nb.workflow.graph import Workflow

__all__ = ["Connection", "CycleBuilder", "CycleSpec", "NodeOptions", "Workflow", "WorkflowBuilder"]
