"""Run Kailash's own public-API tests against kailash_nb, renaming the import at run time.

Kailash's test files are read from a git checkout or mirror of the Kailash repository
(never copied into this repository), rewritten in a temporary directory
(``kailash`` -> ``kailash_nb`` in imports and patch targets), and run with pytest, one
process per file. Each test's outcome is checked against ``kailash_test_differences.txt``
beside this script, which lists every Kailash test expected to fail here and why (a
private attribute, a documented difference, a Kailash subsystem kailash_nb does not
mirror, a test that fails on Kailash too, or a timed assertion that fails under load).
``--original`` runs the files unchanged (under an interpreter where Kailash is
installed) for the baseline::

    python tools/run_kailash_tests.py /path/to/kailash-py.git
    /path/to/kailash-venv/bin/python tools/run_kailash_tests.py --original /path/to/kailash-py.git

Exit status: 0 when every failure is listed (or with ``--original``), 1 when a test
failed that is not listed, 2 for bad arguments or a malformed differences file.
"""

from __future__ import annotations

import argparse
import ast
import functools
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

DIFFERENCES = Path(__file__).with_name("kailash_test_differences.txt")

#: Why a Kailash test may fail here; anything else is a defect to fix.
CATEGORIES = ("private", "difference", "out-of-scope", "kailash-fails", "timing")

#: Categories whose tests may pass or fail from run to run (a timed assertion).
_EITHER_WAY = frozenset({"timing"})

#: Kailash's tests of the public API this project mirrors: workflow builder and graph,
#: runtimes, code, logic and data nodes.
DEFAULT_TESTS = (
    "tests/unit/workflow/test_workflow_builder_api.py",
    "tests/unit/workflow/test_builder_comprehensive.py",
    "tests/unit/workflow/test_graph_comprehensive.py",
    "tests/unit/workflow/test_graph_connection_merging.py",
    "tests/unit/workflows/test_graph.py",
    "tests/integration/workflow/test_workflow_builder_functional.py",
    "tests/integration/test_workflow_graph_comprehensive.py",
    "tests/integration/workflow/test_workflow_round_trip_serialization.py",
    "tests/integration/workflow/test_parameter_validation_integration.py",
    "tests/unit/nodes/test_base.py",
    "tests/unit/nodes/test_switch_merge.py",
    "tests/unit/nodes/test_logic_consolidated.py",
    "tests/integration/nodes/test_python_code_node.py",
    "tests/integration/nodes/test_pythoncode_variable_isolation.py",
    "tests/integration/nodes/test_pythoncode_dollar_sign_bug.py",
    "tests/unit/nodes/test_async_python_variable_export.py",
    "tests/integration/runtime/test_async_local.py",
    "tests/integration/workflows/test_cyclic_examples.py",
    "tests/integration/workflows/test_exception_handling.py",
    "tests/integration/test_workflow_patterns.py",
    "tests/integration/runtime/test_conditional_workflows.py",
    "tests/integration/test_connection_validation_integration.py",
    "tests/integration/middleware/test_agent_ui_shared_workflow_fix.py",
    "tests/integration/test_agent_ui_middleware_input_passing.py",
)

_IMPORT = re.compile(r"\b(from|import)\s+kailash\b(?=[.\s])")
_TARGET = re.compile(r"(['\"])kailash\.")


def renamed(source: str) -> str:
    """``source`` with ``kailash`` imports and dotted-path strings renamed."""
    return _TARGET.sub(r"\1kailash_nb.", _IMPORT.sub(r"\1 kailash_nb", source))


@functools.cache  # Kailash's conftest is read once for every file that asks
def read_test(repo: Path, path: str) -> str:
    """The text of ``path`` in ``repo`` (a work tree, or a bare mirror read at HEAD)."""
    candidate = repo / path
    if candidate.is_file():
        return candidate.read_text(encoding="utf-8")
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["git", "--git-dir", str(repo), "show", f"HEAD:{path}"],  # noqa: S607
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise SystemExit(f"cannot read {path} from {repo}: {result.stderr.strip()}")
    return result.stdout


#: The root conftest of the run: Kailash marks coroutine tests ``@pytest.mark.asyncio``
#: (pytest-asyncio); where that plugin is not installed, such a test runs under
#: ``asyncio.run`` instead of being reported as unsupported.
ASYNCIO_SHIM = """\
import asyncio
import importlib.util
import inspect

import pytest

if importlib.util.find_spec("pytest_asyncio") is None:

    def pytest_configure(config):
        config.addinivalue_line("markers", "asyncio: a coroutine test run with asyncio.run")

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(pyfuncitem):
        if not inspect.iscoroutinefunction(pyfuncitem.obj):
            return None
        names = pyfuncitem._fixtureinfo.argnames
        arguments = {name: pyfuncitem.funcargs[name] for name in names}
        asyncio.run(pyfuncitem.obj(**arguments))
        return True
"""


def conftest_names(source: str) -> set[str]:
    """The names a test file imports from Kailash's ``tests.conftest``, at any depth."""
    return {
        alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module == "tests.conftest"
        for alias in node.names
    }


def conftest_module(conftest: str, names: set[str]) -> str:
    """A module holding only ``names``' definitions from Kailash's conftest, with their imports.

    Kailash's conftest imports subsystems outside the public API under test (tracking,
    manifests, access control); a test that imports one helper class from it should not
    depend on all of them, so only the requested definitions and the imports they use are
    kept.
    """
    tree = ast.parse(conftest)
    wanted = [
        node
        for node in tree.body
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in names
    ]
    used = {n.id for node in wanted for n in ast.walk(node) if isinstance(n, ast.Name)}
    lines = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            kept = [alias for alias in node.names if (alias.asname or alias.name) in used]
            if kept:
                node.names = kept
                lines.append(ast.unparse(node))
    lines.extend(ast.unparse(node) for node in wanted)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Expected:
    """A Kailash test listed as failing here, with its category and reason."""

    test: str
    category: str
    reason: str


def read_differences(text: str, source: str = "differences") -> dict[str, Expected]:
    """Parse ``test id | category | reason`` lines; ``#`` starts a comment line.

    Raises ``ValueError`` naming the line for a malformed entry, an unknown category or a
    test listed twice.
    """
    listed: dict[str, Expected] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [part.strip() for part in line.split("|", 2)]
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"{source}:{number}: expected 'test id | category | reason'")
        test, category, reason = parts
        if category not in CATEGORIES:
            raise ValueError(
                f"{source}:{number}: unknown category {category!r} (one of {', '.join(CATEGORIES)})"
            )
        if test in listed:
            raise ValueError(f"{source}:{number}: {test} is listed twice")
        listed[test] = Expected(test, category, reason)
    return listed


def outcomes(report: str, path: str) -> dict[str, str]:
    """Each test's outcome (``passed``, ``failed`` or ``skipped``) from a JUnit XML report.

    Test ids are Kailash's own (``path::Class::test``); a file that fails to collect is
    one failed entry named by ``path``.
    """
    flat = Path(path.replace("/", "__")).stem
    results: dict[str, str] = {}
    # The report is pytest's own, written a moment ago in our temporary directory.
    for case in ElementTree.fromstring(report).iter("testcase"):  # noqa: S314
        classname = case.get("classname", "")
        name = case.get("name", "")
        inner = classname.split(".", 1)[1] if classname.startswith(flat + ".") else ""
        test = "::".join(part for part in (path, inner.replace(".", "::"), name) if part)
        if name == flat:  # the file did not collect
            test = path
        if case.find("failure") is not None or case.find("error") is not None:
            results[test] = "failed"
        elif case.find("skipped") is not None:
            results.setdefault(test, "skipped")
        else:
            results.setdefault(test, "passed")
    return results


def run_file(repo: Path, path: str, work: Path, original: bool) -> dict[str, str]:
    """Run one Kailash test file (renamed unless ``original``) and return its outcomes."""
    text = read_test(repo, path)
    names = conftest_names(text)
    # Written for every file, so no file sees helpers that another file asked for.
    module = conftest_module(read_test(repo, "tests/conftest.py"), names) if names else ""
    (work / "tests" / "conftest.py").write_text(
        module if original else renamed(module), encoding="utf-8"
    )
    target = work / path.replace("/", "__")
    target.write_text(text if original else renamed(text), encoding="utf-8")
    report = target.with_suffix(".xml")
    env = dict(os.environ)
    if not original:
        project = Path(__file__).resolve().parent.parent
        env["PYTHONPATH"] = os.pathsep.join([str(project), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
    subprocess.run(  # noqa: S603 - this interpreter running pytest
        [
            sys.executable,
            "-m",
            "pytest",
            str(target),
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            "-o",
            "junit_family=xunit1",
            f"--junitxml={report}",
        ],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=900,
    )
    if not report.exists():
        return {path: "failed"}
    return outcomes(report.read_text(encoding="utf-8"), path)


def summary(counts: dict[str, int], original: bool) -> str:
    """One line of counts; a baseline run has no list to check against."""
    ran = counts["passed"] + counts["listed"] + counts["unlisted"]
    if original:
        return f"{counts['passed']} of {ran} passed ({counts['skipped']} skipped)"
    return (
        f"{counts['passed']} of {ran} passed, {counts['listed']} listed failures, "
        f"{counts['unlisted']} unlisted failures ({counts['skipped']} skipped)"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the selected files and report passes, listed failures and unlisted failures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="Kailash checkout or bare mirror")
    parser.add_argument("tests", nargs="*", default=list(DEFAULT_TESTS))
    parser.add_argument("--original", action="store_true", help="run unchanged (baseline)")
    parser.add_argument("--verbose", "-v", action="store_true", help="list listed failures too")
    args = parser.parse_args(argv)
    if not args.repo.exists():
        parser.error(f"{args.repo} does not exist")
    try:
        expected = (
            {}
            if args.original
            else read_differences(DIFFERENCES.read_text(encoding="utf-8"), DIFFERENCES.name)
        )
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    unlisted: list[str] = []
    totals = {"passed": 0, "listed": 0, "unlisted": 0, "skipped": 0}
    with tempfile.TemporaryDirectory(prefix="kailash-tests-") as work_dir:
        work = Path(work_dir)
        (work / "conftest.py").write_text(ASYNCIO_SHIM, encoding="utf-8")
        (work / "tests").mkdir()
        (work / "tests" / "__init__.py").write_text("", encoding="utf-8")
        for path in args.tests:
            counts = {key: 0 for key in totals}
            for test, outcome in sorted(run_file(args.repo, path, work, args.original).items()):
                if outcome != "failed":
                    counts[outcome] += 1
                    if test in expected and expected[test].category not in _EITHER_WAY:
                        print(f"  now passes, remove from the list: {test}")
                elif test in expected:
                    counts["listed"] += 1
                    if args.verbose:
                        entry = expected[test]
                        print(f"  listed [{entry.category}] {test}: {entry.reason}")
                else:
                    counts["unlisted"] += 1
                    unlisted.append(test)
                    print(f"  FAILED{'' if args.original else ' (not listed)'}: {test}")
            for key in totals:
                totals[key] += counts[key]
            print(f"{path}: {summary(counts, args.original)}")
    print(f"total: {summary(totals, args.original)}")
    return 1 if unlisted and not args.original else 0


if __name__ == "__main__":
    sys.exit(main())
