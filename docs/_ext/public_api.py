"""The ``public-api`` directive: a package's documented surface, read from its ``__all__``.

``.. public-api:: kailash_nb.runtime`` documents every name in ``kailash_nb.runtime.__all__``
whose canonical home is that package, and links the others to where they are documented.
An object's canonical home is the public package, among those listed in the
``public_api_packages`` setting that export it, whose name is the longest prefix of the
module defining it (else the deepest of those packages), so an object re-exported by
several packages is described once and module moves inside a package change nothing.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


def _exports(package: str) -> list[str]:
    return list(getattr(importlib.import_module(package), "__all__", []))


def canonical_package(name: str, value: Any, packages: list[str]) -> str:
    """The package among ``packages`` where ``value`` (exported as ``name``) is documented."""
    exporters = [
        package
        for package in packages
        if name in _exports(package) and getattr(importlib.import_module(package), name) is value
    ]
    defined_in = getattr(value, "__module__", None) if _is_definition(value) else None
    if defined_in:
        owners = [p for p in exporters if defined_in == p or defined_in.startswith(p + ".")]
        if owners:
            return max(owners, key=len)
    return max(exporters, key=lambda package: package.count("."))


def _is_definition(value: Any) -> bool:
    """A class or function: it knows its module and has a docstring of its own."""
    return inspect.isclass(value) or inspect.isroutine(value)


def _data_lines(qualified_name: str, value: Any) -> list[str]:
    """A constant's entry, with the ``#:`` comment of the module that defines it.

    autodoc would look for that comment in the package re-exporting the constant only,
    and fall back to the docstring of the value's type (``dict``'s, say).
    """
    package, _, name = qualified_name.rpartition(".")
    lines = [f".. py:data:: {name}", f"   :module: {package}"]
    text = repr(value)
    if len(text) <= 60:
        lines.append(f"   :value: {text}")
    lines.append("")
    root = qualified_name.partition(".")[0]
    lines += [f"   {line}" for line in _attribute_doc(root, name, value)]
    return [*lines, ""]


def _attribute_doc(root: str, name: str, value: Any) -> list[str]:
    """The ``#:`` comment of ``name`` in the loaded module of package ``root`` defining it."""
    for module_name, module in sorted(sys.modules.items()):
        if module_name.partition(".")[0] != root or getattr(module, name, None) is not value:
            continue
        try:
            docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
        except PycodeError:
            continue
        if ("", name) in docs:
            return list(docs["", name])
    return []


def _directive_for(value: Any) -> str:
    if inspect.isclass(value):
        return "autoexception" if issubclass(value, BaseException) else "autoclass"
    return "autofunction"


class PublicApi(SphinxDirective):
    """Document one public package from its ``__all__``."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        package = self.arguments[0]
        packages = list(self.config.public_api_packages)
        if package not in packages:
            raise self.error(f"{package} is not listed in public_api_packages")
        module = importlib.import_module(package)
        lines = [f".. automodule:: {package}", "   :no-members:", ""]
        elsewhere = []
        for name in _exports(package):
            value = getattr(module, name)
            if inspect.ismodule(value):
                elsewhere.append(f":py:mod:`{value.__name__}`")
                continue
            home = canonical_package(name, value, packages)
            if home != package:
                elsewhere.append(f":py:obj:`{name} <{home}.{name}>`")
                continue
            if _is_definition(value):
                lines += [f".. {_directive_for(value)}:: {package}.{name}", ""]
            else:
                lines += _data_lines(f"{package}.{name}", value)
        if elsewhere:
            lines += [
                ".. rubric:: Also exported here",
                "",
                "Documented in their own package: " + ", ".join(elsewhere) + ".",
                "",
            ]
        content = StringList(lines, source=f"<public-api {package}>")
        container = nodes.container()
        nested_parse_with_titles(self.state, content, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive and its ``public_api_packages`` setting."""
    app.add_config_value("public_api_packages", [], "env")
    app.add_directive("public-api", PublicApi)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
