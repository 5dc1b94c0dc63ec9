"""The wheel and the Binder environment, each installed into a fresh virtualenv.

Both tests share one virtualenv (creating it and installing JupyterLab takes about a
minute): the Python packages of ``binder/environment.yml``. The wheel test builds the wheel
from this checkout, installs it there and asks Jupyter whether the lab extension and the
server extension are enabled; the Binder test runs ``binder/postBuild`` there, as
mybinder.org does, and runs the quickstart notebook on that environment's own kernel.
Each removes kailash-nb first, so neither depends on the other having run.

Jupyter's user directories point into the test's temporary directory, so extensions,
kernels and configuration of the machine's user cannot answer for the virtualenv's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kailash_nb._version import python_version

ROOT = Path(__file__).resolve().parents[2]
NPM_VERSION = json.loads((ROOT / "labextension" / "package.json").read_text())["version"]
QUICKSTART = ROOT / "notebooks" / "01-quickstart.ipynb"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# Creating the virtualenv, installing JupyterLab and building: minutes, not the default 120 s.
TIMEOUT = 900

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TIMEOUT)]


@dataclass(frozen=True)
class FreshEnvironment:
    """A virtualenv with the environment variables that make its tools the ones found."""

    prefix: Path
    env: dict[str, str]

    @property
    def python(self) -> str:
        return str(self.prefix / "bin" / "python")

    def run(self, *command: str, cwd: Path = ROOT, timeout: float = 600) -> str:
        """Run ``command`` in the environment; its stdout and stderr, without colours."""
        result = subprocess.run(
            command,
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = ANSI_ESCAPE.sub("", result.stdout + result.stderr)
        assert result.returncode == 0, f"{' '.join(command)} failed:\n{output[-6000:]}"
        return output

    def pip(self, *arguments: str) -> str:
        return self.run(self.python, "-m", "pip", "--disable-pip-version-check", *arguments)


def binder_pip_requirements() -> list[str]:
    """The pip list of binder/environment.yml (python and nodejs come from the machine)."""
    environment = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    (pip_section,) = [item for item in environment["dependencies"] if isinstance(item, dict)]
    return pip_section["pip"]


@pytest.fixture(scope="module")
def fresh_environment(tmp_path_factory) -> FreshEnvironment:
    """A new virtualenv holding only binder/environment.yml's Python packages."""
    base = tmp_path_factory.mktemp("fresh-env")
    prefix = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(prefix)], check=True, timeout=120)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "JUPYTER_PATH"}
    }
    env["PATH"] = f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(prefix)
    for name in ("config", "data", "runtime"):
        (base / name).mkdir()
    env["JUPYTER_CONFIG_DIR"] = str(base / "config")
    env["JUPYTER_DATA_DIR"] = str(base / "data")
    env["JUPYTER_RUNTIME_DIR"] = str(base / "runtime")
    environment = FreshEnvironment(prefix, env)
    environment.pip("install", "--quiet", *binder_pip_requirements())
    return environment


def _assert_extensions_enabled(environment: FreshEnvironment) -> None:
    labextensions = environment.run(environment.python, "-m", "jupyter", "labextension", "list")
    assert re.search(
        rf"^\s*kailash-nb v{re.escape(NPM_VERSION)} enabled OK", labextensions, re.MULTILINE
    ), labextensions
    server = environment.run(environment.python, "-m", "jupyter", "server", "extension", "list")
    assert re.search(r"^\s*kailash_nb\.labserver enabled", server, re.MULTILINE), server
    if (ROOT / "kailash_nb" / "labserver").exists():
        assert re.search(r"^\s*kailash_nb\.labserver\s.*\bOK", server, re.MULTILINE), server


def test_wheel_installs_the_lab_and_server_extensions(fresh_environment, tmp_path):
    wheel_dir = tmp_path / "dist"
    # Without build isolation, like the other wheel test: the dev environment has the
    # build requirements, and `npm run build` finds jupyter-builder next to this Python.
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    build = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*build, "--quiet", "-w", str(wheel_dir)],
        check=True,
        env=env,
        timeout=600,
    )
    (wheel,) = wheel_dir.glob("kailash_nb-*.whl")
    version = python_version(NPM_VERSION)
    data = f"kailash_nb-{version}.data/data"
    extension = f"{data}/share/jupyter/labextensions/kailash-nb"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        built = json.loads(archive.read(f"{extension}/package.json"))
        metadata = archive.read(f"kailash_nb-{version}.dist-info/METADATA").decode()
    assert f"{extension}/install.json" in names
    assert f"{data}/etc/jupyter/jupyter_server_config.d/kailash_nb.json" in names
    assert any(re.fullmatch(rf"{extension}/static/remoteEntry\.\w+\.js", n) for n in names)
    assert f"{extension}/{built['jupyterlab']['_build']['load']}" in names
    assert built["name"] == "kailash-nb" and built["version"] == NPM_VERSION
    assert re.search(rf"^Version: {re.escape(version)}$", metadata, re.MULTILINE)
    # The built extension is shared data only, not a second copy inside the package.
    assert not any(name.startswith("kailash_nb/labextension/") for name in names)

    fresh_environment.pip("uninstall", "--yes", "--quiet", "kailash-nb")
    fresh_environment.pip("install", "--quiet", str(wheel))
    _assert_extensions_enabled(fresh_environment)


# Runs in the fresh environment's Python: executes the notebook on the python3 kernel and
# writes, per code cell, the output types, and the kernel's sys.prefix.
_RUN_NOTEBOOK = """
import json, sys
import nbformat
from nbclient import NotebookClient

notebook = nbformat.read(sys.argv[1], as_version=4)
notebook.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.prefix)"))
NotebookClient(
    notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": sys.argv[2]}}
).execute()
cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
with open(sys.argv[3], "w") as report:
    json.dump({
        "outputs": [[output.output_type for output in cell.outputs] for cell in cells],
        "kernel_prefix": cells[-1].outputs[0]["text"].strip(),
    }, report)
"""


def test_binder_environment_runs_the_quickstart(fresh_environment, tmp_path):
    fresh_environment.pip("uninstall", "--yes", "--quiet", "kailash-nb")
    fresh_environment.run("bash", str(ROOT / "binder" / "postBuild"), cwd=ROOT)
    _assert_extensions_enabled(fresh_environment)

    fresh_environment.run(
        fresh_environment.python, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"
    )
    script = tmp_path / "run_notebook.py"
    script.write_text(_RUN_NOTEBOOK)
    report_file = tmp_path / "report.json"
    fresh_environment.run(
        fresh_environment.python,
        str(script),
        str(QUICKSTART),
        str(tmp_path),
        str(report_file),
        cwd=tmp_path,
    )
    report = json.loads(report_file.read_text())
    assert Path(report["kernel_prefix"]).resolve() == fresh_environment.prefix.resolve()
    cells = report["outputs"][:-1]
    assert len(cells) == sum(
        cell["cell_type"] == "code" for cell in json.loads(QUICKSTART.read_text())["cells"]
    )
    assert all("error" not in types for types in cells), cells
    assert any(cells), "the quickstart produced no output at all"
