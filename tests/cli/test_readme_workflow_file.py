"""The README's workflow file runs with the command the README gives for it."""

from __future__ import annotations

import json
import re

from _run_cli import ROOT, one_error_line, run_cli


def _readme_yaml() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.search(r"```yaml\n(.*?)```", readme, re.DOTALL).group(1)


def test_the_readme_workflow_file_runs_with_its_parameter(tmp_path):
    (tmp_path / "totals.yaml").write_text(_readme_yaml(), encoding="utf-8")

    done = run_cli("run", "totals.yaml", "--param", "load.n=10", "--json", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert results["total"] == {"result": 45}


def test_the_readme_workflow_file_refuses_an_unknown_input(tmp_path):
    (tmp_path / "totals.yaml").write_text(_readme_yaml(), encoding="utf-8")

    done = run_cli("run", "totals.yaml", "--param", "load.m=10", cwd=tmp_path)

    assert done.returncode == 2
    assert "node 'load' (PythonCodeNode) has no input 'm'" in one_error_line(done.stderr)
