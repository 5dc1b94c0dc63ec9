"""Workflows: ``WorkflowBuilder`` assembles, ``Workflow`` is the validated result.

The package is also callable: ``kailash_nb.workflow("etl")`` (``kn.workflow("etl")``
in a notebook) selects or creates the notebook workflow named ``etl``; see
``kailash_nb.notebook.workflow``. The package root makes it so (the notebook layer
sits above this package), because Kailash code imports ``kailash_nb.workflow`` as a
package while the notebook API calls it.
"""

from kailash_nb.workflow.builder import WorkflowBuilder
from kailash_nb.workflow.connection import Connection, NodeOptions
from kailash_nb.workflow.cycles import CycleBuilder, CycleSpec
from kailash_nb.workflow.graph import Workflow

__all__ = ["Connection", "CycleBuilder", "CycleSpec", "NodeOptions", "Workflow", "WorkflowBuilder"]
