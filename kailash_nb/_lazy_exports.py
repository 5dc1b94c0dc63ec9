"""A package's public names loaded on first use, from the modules that define them::

    __getattr__, __dir__ = lazy_exports(__name__, {"LLMAgentNode": "pkg.llm_agent"}, __all__)

Importing the package then costs nothing until a name is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, modules: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` serving each name of ``modules`` from its module, and
    the ``__dir__`` listing ``public`` (the package's ``__all__``) only."""
    names = sorted(public)

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return list(names)

    return __getattr__, __dir__
