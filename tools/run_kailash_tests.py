"""Run Kailash's own public-API tests against kailash_nb, renaming the import at run time.

Kailash's test files are read from a git checkout or mirror of the Kailash repository
(never copied into this repository), rewritten in a temporary directory
(``kailash`` -> ``kailash_nb`` in imports and patch targets), and run with pytest; the
script prints the pass count per file and in all. ``--original`` runs them unchanged
(under an interpreter where Kailash is installed) for the baseline::

    python tools/run_kailash_tests.py /path/to/kailash-py.git
    /path/to/kailash-venv/bin/python tools/run_kailash_tests.py --original /path/to/kailash-py.git

Exit status: 0 when pytest ran (whatever the pass count), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

#: Kailash's tests of the public API this project mirrors: workflow builder and graph,
#: runtimes, code, logic and data nodes.
DEFAULT_TESTS = (
    "tests/unit/workflow/test_workflow_builder_api.py",
    "tests/unit/workflow/test_builder_comprehensive.py",
    "tests/unit/workflow/test_graph_comprehensive.py",
    "tests/unit/workflow/test_graph_connection_merging.py",
    "tests/unit/workflows/test_graph.py",
    "tests/unit/nodes/test_switch_merge.py",
    "tests/unit/nodes/test_logic_consolidated.py",
    "tests/integration/workflow/test_workflow_builder_functional.py",
    "tests/integration/test_workflow_graph_comprehensive.py",
    "tests/integration/runtime/test_async_local.py",
)

_IMPORT = re.compile(r"\b(from|import)\s+kailash\b(?=[.\s])")
_TARGET = re.compile(r"(['\"])kailash\.")


def renamed(source: str) -> str:
    """``source`` with ``kailash`` imports and dotted-path strings renamed."""
    return _TARGET.sub(r"\1kailash_nb.", _IMPORT.sub(r"\1 kailash_nb", source))


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


_CONFTEST_IMPORT = re.compile(r"^from tests\.conftest import ([\w, ]+)$", re.MULTILINE)


def conftest_names(source: str) -> set[str]:
    """The names a test file imports from Kailash's ``tests.conftest``."""
    return {
        name.strip()
        for match in _CONFTEST_IMPORT.finditer(source)
        for name in match.group(1).split(",")
        if name.strip()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="Kailash checkout or bare mirror")
    parser.add_argument("tests", nargs="*", default=list(DEFAULT_TESTS))
    parser.add_argument("--original", action="store_true", help="run unchanged (baseline)")
    args = parser.parse_args(argv)
    if not args.repo.exists():
        parser.error(f"{args.repo} does not exist")
    project = Path(__file__).resolve().parent.parent
    totals = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    with tempfile.TemporaryDirectory(prefix="kailash-tests-") as work:
        helpers = Path(work) / "tests"
        helpers.mkdir()
        (helpers / "__init__.py").write_text("", encoding="utf-8")
        for path in args.tests:
            text = read_test(args.repo, path)
            names = conftest_names(text)
            if names:
                module = conftest_module(read_test(args.repo, "tests/conftest.py"), names)
                (helpers / "conftest.py").write_text(
                    module if args.original else renamed(module), encoding="utf-8"
                )
            target = Path(work) / path.replace("/", "__")
            target.write_text(text if args.original else renamed(text), encoding="utf-8")
            env = dict(os.environ)
            if not args.original:
                env["PYTHONPATH"] = os.pathsep.join(
                    [str(project), env.get("PYTHONPATH", "")]
                ).rstrip(os.pathsep)
            result = subprocess.run(  # noqa: S603 - this interpreter running pytest
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
                    "-rN",
                ],
                capture_output=True,
                text=True,
                cwd=work,
                env=env,
                timeout=900,
            )
            counts = {key: 0 for key in totals}
            tail = result.stdout.strip().splitlines()[-1:] or [""]
            for number, word in re.findall(r"(\d+) (passed|failed|errors?|skipped)", tail[0]):
                key = "error" if word.startswith("error") else word
                counts[key] += int(number)
            for key in totals:
                totals[key] += counts[key]
            print(
                f"{path}: {counts['passed']} passed, {counts['failed']} failed, "
                f"{counts['error']} errors, {counts['skipped']} skipped"
            )
    ran = totals["passed"] + totals["failed"] + totals["error"]
    print(f"total: {totals['passed']} of {ran} passed ({totals['skipped']} skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
