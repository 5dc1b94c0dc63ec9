"""Running the real ``kailash-nb`` entry point in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli_env(**extra: str) -> dict[str, str]:
    """The test's environment, with this checkout first on ``PYTHONPATH``."""
    env = {key: value for key, value in os.environ.items() if key != "KAILASH_NB_JWT_SECRET"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, **options
) -> subprocess.CompletedProcess[str]:
    """``python -m kailash_nb.cli ARGS`` (the console script's code) to completion."""
    return subprocess.run(
        [sys.executable, "-m", "kailash_nb.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env=env or cli_env(),
        **options,
    )


def one_error_line(stderr: str) -> str:
    """The single ``error`` line of ``stderr`` (asserting there is exactly one line and
    no traceback)."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]
