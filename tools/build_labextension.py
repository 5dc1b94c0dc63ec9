"""Build the JupyterLab extension in labextension/ for the wheel, the sdist and editable installs.

hatch-jupyter-builder calls :func:`build` (``[tool.hatch.build.hooks.jupyter-builder]`` in
pyproject.toml) from the project root. The extension is rebuilt only when its output,
``kailash_nb/labextension``, is missing or older than one of its sources, so an unchanged
checkout reinstalls in seconds and a wheel built from the sdist (which carries the output)
needs no Node.js; an edited source is never shipped stale.

Run it by hand with ``python tools/build_labextension.py [--force]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTENSION = ROOT / "labextension"
OUTPUT = ROOT / "kailash_nb" / "labextension"
# What the output is built from; lib/ and node_modules/ are derived, not sources.
SOURCES = ("package.json", "package-lock.json", "tsconfig.json", "src", "style", "schema")
NODE_REQUIREMENT = "Node.js ^20.19 or >=22.12 with npm"


class ExtensionBuildError(RuntimeError):
    """The JupyterLab extension could not be built; the message says what to install or fix."""


def _files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
    elif path.is_dir():
        yield from (child for child in path.rglob("*") if child.is_file())


def newest_source_mtime(extension: Path = EXTENSION) -> float:
    """The newest modification time among the extension's source files (0.0 if none)."""
    times = [file.stat().st_mtime for name in SOURCES for file in _files(extension / name)]
    return max(times, default=0.0)


def is_up_to_date(extension: Path = EXTENSION, output: Path = OUTPUT) -> bool:
    """True when the built extension exists and no source file is newer than it.

    The builder writes ``package.json`` into the output last, so its time stamps the build.
    Equal times count as up to date: an sdist gives every file the same time.
    """
    stamp = output / "package.json"
    if not stamp.is_file():
        return False
    return newest_source_mtime(extension) <= stamp.stat().st_mtime


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise ExtensionBuildError(
            f"building the JupyterLab extension in {EXTENSION} needs {NODE_REQUIREMENT} on "
            "PATH; install Node.js, or build from the sdist, which carries the built extension"
        )
    return npm


def _needs_install(extension: Path) -> bool:
    # npm ci writes node_modules/.package-lock.json; older than the lockfile means stale.
    installed = extension / "node_modules" / ".package-lock.json"
    if not installed.is_file():
        return True
    return (extension / "package-lock.json").stat().st_mtime > installed.stat().st_mtime


def _run(command: list[str], cwd: Path) -> None:
    print("+", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=cwd, check=False)  # noqa: S603
    if result.returncode != 0:
        raise ExtensionBuildError(
            f"`{' '.join(command)}` failed with exit status {result.returncode} in {cwd}; "
            "its output is above"
        )


def build(target_name: str = "wheel", version: str = "standard", *, force: bool = False) -> None:
    """Build the extension into ``kailash_nb/labextension`` unless it is up to date.

    ``target_name`` and ``version`` are what hatch-jupyter-builder passes ("wheel" or
    "sdist", "standard" or "editable"); every target gets the same production build.
    Raises :class:`ExtensionBuildError` when npm is missing or a build step fails.
    """
    del target_name, version
    if not force and is_up_to_date():
        print(f"{OUTPUT.relative_to(ROOT)} is up to date with labextension/", flush=True)
        return
    npm = _npm()
    if _needs_install(EXTENSION):
        _run([npm, "ci", "--no-audit", "--no-fund"], EXTENSION)
    if shutil.which("jupyter-builder") is None:
        raise ExtensionBuildError(
            "`npm run build` runs `jupyter-builder build`, which is not on PATH: install the "
            "build requirements of pyproject.toml (pip does so unless --no-build-isolation)"
        )
    _run([npm, "run", "build"], EXTENSION)
    # The stamp must be newer than the sources even on a file system with coarse times.
    os.utime(OUTPUT / "package.json")


def main() -> None:
    """Command line: build the extension, or rebuild it with --force."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    build(force=parser.parse_args().force)


if __name__ == "__main__":
    main()
