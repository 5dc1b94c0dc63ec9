"""The JupyterLab extension's build configuration: pyproject.toml, package.json and the build
function agree on where the extension is built, where it is installed and when it is rebuilt."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement

# Building from a checkout needs Python 3.11 (jupyter-builder), which has tomllib.
tomllib = pytest.importorskip("tomllib", reason="the extension builds with Python >= 3.11")

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE = json.loads((ROOT / "labextension" / "package.json").read_text(encoding="utf-8"))
SHARED_DATA = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]


def _load_build_function():
    spec = importlib.util.spec_from_file_location(
        "build_labextension", ROOT / "tools" / "build_labextension.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_labextension = _load_build_function()


def test_dev_extra_has_every_build_requirement():
    """The packaging tests build without isolation, in the dev environment."""
    dev = {
        Requirement(line).name: Requirement(line)
        for line in PYPROJECT["project"]["optional-dependencies"]["dev"]
    }
    for line in PYPROJECT["build-system"]["requires"]:
        required = Requirement(line)
        assert required.name in dev, f"build requirement {line!r} is missing from the dev extra"
        assert dev[required.name].specifier == required.specifier, line


def test_the_extension_is_built_where_the_wheel_takes_it_from():
    output = (ROOT / "labextension" / PACKAGE["jupyterlab"]["outputDir"]).resolve()
    assert output == ROOT / "kailash_nb" / "labextension"
    assert (
        SHARED_DATA["kailash_nb/labextension"] == f"share/jupyter/labextensions/{PACKAGE['name']}"
    )
    hook = PYPROJECT["tool"]["hatch"]["build"]["hooks"]["jupyter-builder"]
    assert sorted(hook["ensured-targets"]) == [
        "kailash_nb/labextension/package.json",
        "kailash_nb/labextension/static/style.js",
    ]


def test_the_server_extension_is_enabled_by_shipped_config():
    source = "jupyter-config/server-config/kailash_nb.json"
    assert SHARED_DATA[source] == "etc/jupyter/jupyter_server_config.d/kailash_nb.json"
    config = json.loads((ROOT / source).read_text(encoding="utf-8"))
    assert config == {"ServerApp": {"jpserver_extensions": {"kailash_nb.labserver": True}}}


def test_build_outputs_are_ignored_by_git():
    paths = [
        "kailash_nb/labextension/package.json",
        "labextension/node_modules/x/package.json",
        "labextension/lib/index.js",
        "labextension/tsconfig.tsbuildinfo",
    ]
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True
    )
    assert result.stdout.split() == paths


def _extension(tmp_path: Path) -> tuple[Path, Path]:
    extension = tmp_path / "labextension"
    (extension / "src").mkdir(parents=True)
    (extension / "package.json").write_text("{}")
    (extension / "src" / "index.ts").write_text("export {};")
    output = tmp_path / "out"
    output.mkdir()
    return extension, output


def _set_time(path: Path, seconds: float) -> None:
    os.utime(path, (seconds, seconds))


def test_a_missing_output_is_built(tmp_path):
    extension, output = _extension(tmp_path)
    assert not build_labextension.is_up_to_date(extension, output)


def test_an_output_newer_than_every_source_is_up_to_date(tmp_path):
    extension, output = _extension(tmp_path)
    (output / "package.json").write_text("{}")
    for path in (extension / "package.json", extension / "src" / "index.ts"):
        _set_time(path, 1_000)
    _set_time(output / "package.json", 2_000)
    assert build_labextension.is_up_to_date(extension, output)


def test_equal_times_as_in_an_sdist_count_as_up_to_date(tmp_path):
    extension, output = _extension(tmp_path)
    (output / "package.json").write_text("{}")
    for path in (
        extension / "package.json",
        extension / "src" / "index.ts",
        output / "package.json",
    ):
        _set_time(path, 1_580_601_600)
    assert build_labextension.is_up_to_date(extension, output)


def test_an_edited_source_makes_the_output_stale(tmp_path):
    extension, output = _extension(tmp_path)
    (output / "package.json").write_text("{}")
    _set_time(extension / "package.json", 1_000)
    _set_time(output / "package.json", 2_000)
    _set_time(extension / "src" / "index.ts", 3_000)
    assert not build_labextension.is_up_to_date(extension, output)


def test_node_modules_and_lib_are_not_sources(tmp_path):
    extension, output = _extension(tmp_path)
    (output / "package.json").write_text("{}")
    for derived in ("node_modules/x/index.js", "lib/index.js"):
        (extension / derived).parent.mkdir(parents=True)
        (extension / derived).write_text("")
        _set_time(extension / derived, 3_000)
    for path in (extension / "package.json", extension / "src" / "index.ts"):
        _set_time(path, 1_000)
    _set_time(output / "package.json", 2_000)
    assert build_labextension.is_up_to_date(extension, output)


def test_a_build_without_npm_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(build_labextension, "is_up_to_date", lambda *args: False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(build_labextension.ExtensionBuildError, match=r"needs Node\.js"):
        build_labextension.build("wheel", "standard")


@pytest.mark.slow
def test_labextension_unit_tests_pass():
    """`npm test`: tsc, then Node's test runner over the compiled lib/__tests__."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not on PATH: the JupyterLab extension's unit tests need Node.js")
    extension = ROOT / "labextension"
    if not (extension / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=extension, check=True)
    result = subprocess.run(
        [npm, "test"], cwd=extension, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout
    assert re.search(r"^# pass [1-9]", result.stdout, re.MULTILINE), result.stdout
