"""The runner of Kailash's own tests: its renaming, helper extraction and bookkeeping."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "run_kailash_tests", ROOT / "tools/run_kailash_tests.py"
)
runner = importlib.util.module_from_spec(_spec)
sys.modules["run_kailash_tests"] = runner
_spec.loader.exec_module(runner)


def test_imports_and_patch_targets_are_renamed_but_not_other_words():
    source = (
        "from kailash.workflow import Workflow\n"
        "import kailash.nodes\n"
        "patch('kailash.runtime.local.x')\n"
        "kailash_like = 'kailash is a mountain'\n"
    )
    assert runner.renamed(source) == (
        "from kailash_nb.workflow import Workflow\n"
        "import kailash_nb.nodes\n"
        "patch('kailash_nb.runtime.local.x')\n"
        "kailash_like = 'kailash is a mountain'\n"
    )


def test_a_conftest_helper_comes_with_only_the_imports_it_uses():
    conftest = (
        "import os\n"
        "from kailash.tracking import TaskManager\n"
        "from kailash.nodes.base import Node, NodeMetadata\n"
        "class MockNode(Node):\n"
        "    meta = NodeMetadata\n"
        "class Other(TaskManager):\n"
        "    pass\n"
    )
    names = runner.conftest_names(
        "from tests.conftest import MockNode\n"
        "try:\n    from tests.conftest import (  # a comment\n        Other,\n    )\n"
        "except ImportError:\n    pass\n"
    )
    module = runner.conftest_module(conftest, names)
    assert names == {"MockNode", "Other"}
    assert "from kailash.nodes.base import Node, NodeMetadata" in module
    assert "from kailash.tracking import TaskManager" in module
    assert "import os" not in module
    only_mock = runner.conftest_module(conftest, {"MockNode"})
    assert "tracking" not in only_mock and "Other" not in only_mock
    compile(module, "conftest", "exec")


def test_outcomes_name_tests_by_kailash_path_and_a_collection_error_by_file():
    flat = "tests__unit__test_x"
    report = f"""<testsuites><testsuite>
      <testcase classname="{flat}.TestA" name="test_ok"/>
      <testcase classname="{flat}.TestA" name="test_bad"><failure message="x"/></testcase>
      <testcase classname="{flat}" name="test_free"><skipped/></testcase>
      <testcase classname="" name="{flat}"><error message="ImportError"/></testcase>
    </testsuite></testsuites>"""
    assert runner.outcomes(report, "tests/unit/test_x.py") == {
        "tests/unit/test_x.py::TestA::test_ok": "passed",
        "tests/unit/test_x.py::TestA::test_bad": "failed",
        "tests/unit/test_x.py::test_free": "skipped",
        "tests/unit/test_x.py": "failed",
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a.py::t | private\n", "differences:1: expected 'test id | category | reason'"),
        ("a.py::t | sometimes | flaky\n", "differences:1: unknown category 'sometimes'"),
        (
            "a.py::t | private | x\na.py::t | private | y\n",
            "differences:2: a.py::t is listed twice",
        ),
    ],
)
def test_a_malformed_differences_line_is_refused_with_its_line(text, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        runner.read_differences(text)


def test_the_project_list_parses_and_each_entry_belongs_to_a_selected_file():
    listed = runner.read_differences(runner.DIFFERENCES.read_text(encoding="utf-8"))
    headings = {
        line[3:].strip()
        for line in (ROOT / "docs/porting.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    }
    for entry in listed.values():
        assert entry.test.split("::")[0] in runner.DEFAULT_TESTS, entry.test
        if entry.category == "difference":
            section = entry.reason.split(":")[0]
            assert section in headings, f"{entry.test}: no porting section {section!r}"


def test_asyncio_marked_coroutine_tests_run_without_pytest_asyncio(tmp_path):
    (tmp_path / "conftest.py").write_text(runner.ASYNCIO_SHIM, encoding="utf-8")
    (tmp_path / "test_async.py").write_text(
        "import pytest\n"
        "@pytest.fixture\n"
        "def base():\n"
        "    return 2\n"
        "@pytest.mark.asyncio\n"
        "async def test_ok(base):\n"
        "    assert base == 2\n"
        "@pytest.mark.asyncio\n"
        "async def test_bad():\n"
        "    assert False\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            "-p",
            "no:asyncio",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "1 failed, 1 passed" in result.stdout, result.stdout
