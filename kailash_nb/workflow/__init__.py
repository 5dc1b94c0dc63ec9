"""Workflows: ``WorkflowBuilder`` assembles, ``Workflow`` is the validated result.

The package is also callable: ``kailash_nb.workflow("etl")`` (``kn.workflow("etl")``
in a notebook) selects or creates the notebook workflow named ``etl``; see
``kailash_nb.notebook.workflow``. Both uses share the name because Kailash code
imports ``kailash_nb.workflow`` as a package while the notebook API calls it.
"""

import sys
import types
from typing import Any

from kailash_nb.workflow.builder import WorkflowBuilder
from kailash_nb.workflow.connection import Connection, NodeOptions
from kailash_nb.workflow.cycles import CycleBuilder, CycleSpec
from kailash_nb.workflow.graph import Workflow

__all__ = ["Connection", "CycleBuilder", "CycleSpec", "NodeOptions", "Workflow", "WorkflowBuilder"]


class _WorkflowPackage(types.ModuleType):
    """This package's module type: callable as the notebook's ``workflow(name)``."""

    def __call__(self, name: str) -> Any:
        from kailash_nb.notebook import workflow

        return workflow(name)


sys.modules[__name__].__class__ = _WorkflowPackage
