"""One version number: labextension/package.json, read by the wheel build and by __version__.

The wheel's own metadata is checked against the same number where the wheel is built
(test_wheel_and_binder.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

import kailash_nb
from kailash_nb._version import python_version

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_JSON = ROOT / "labextension" / "package.json"
BUILT_PACKAGE_JSON = ROOT / "kailash_nb" / "labextension" / "package.json"


def _npm_version(path: Path) -> str:
    return json.loads(path.read_text(encoding="utf-8"))["version"]


def test_python_version_is_the_npm_package_version():
    assert Version(kailash_nb.__version__) == Version(_npm_version(PACKAGE_JSON))
    assert kailash_nb.__version__ == python_version(_npm_version(PACKAGE_JSON))


def _version_in(layout: Path) -> str:
    """``__version__`` as ``kailash_nb._version`` computes it when imported from ``layout``."""
    package = layout / "kailash_nb"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "_version.py").write_text((ROOT / "kailash_nb" / "_version.py").read_text())
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", "from kailash_nb._version import __version__; print(__version__)"],
        cwd=layout,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_a_source_checkout_reads_package_json_not_installed_metadata(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "labextension").mkdir()
    (tmp_path / "labextension" / "package.json").write_text('{"version": "9.8.7-rc.1"}')
    assert _version_in(tmp_path) == "9.8.7rc1"


def test_an_installed_package_reports_its_metadata(tmp_path):
    """Without the checkout's package.json next to it, the installed metadata answers."""
    from importlib import metadata

    assert _version_in(tmp_path) == metadata.version("kailash-nb")


def test_the_built_extension_carries_the_same_version():
    if not BUILT_PACKAGE_JSON.is_file():
        pytest.fail(
            f"{BUILT_PACKAGE_JSON} is missing: build the extension with `pip install -e .` "
            "or `python tools/build_labextension.py`"
        )
    assert _npm_version(BUILT_PACKAGE_JSON) == _npm_version(PACKAGE_JSON)


@pytest.mark.parametrize(
    ("npm", "pep440"),
    [
        ("0.1.0", "0.1.0"),
        ("1.2.3-alpha.1", "1.2.3a1"),
        ("1.2.3-a1", "1.2.3a1"),
        ("1.2.3-beta.2", "1.2.3b2"),
        ("1.2.3-rc.10", "1.2.3rc10"),
        ("10.0.0-rc1", "10.0.0rc1"),
    ],
)
def test_npm_versions_map_to_pep_440_as_the_build_maps_them(npm, pep440):
    from hatch_nodejs_version.version_source import NodeJSVersionSource

    assert python_version(npm) == pep440
    assert Version(NodeJSVersionSource.node_version_to_python(npm)) == Version(pep440)


@pytest.mark.parametrize("npm", ["0.1", "1.2.3-next.1", "1.2.3+build.5", "v1.2.3", "1.2.3-rc"])
def test_a_version_outside_the_supported_forms_is_refused_by_name(npm):
    with pytest.raises(ValueError, match=rf"version '{npm.replace('+', '[+]')}'"):
        python_version(npm)
