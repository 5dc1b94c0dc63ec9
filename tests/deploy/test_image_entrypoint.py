"""The image's entry point, run as the image runs it, without a container runtime.

No registry can be reached here, so the image is not built. Instead this test builds what
the Dockerfile's stages build, the same way: the wheel of this checkout (``pip wheel``),
a fresh virtualenv with that wheel and the builder's extras, the runtime stage's notebooks
and health check in an application directory owned by root, and the runtime stage's
``ENV``. It then runs the ``ENTRYPOINT`` as the Dockerfile's numeric ``USER`` (``setpriv``
when the tests run as root, as in CI) with the configuration a Deployment gives it (a JWT
secret and the database URL, as from the Secret), and checks that ``/health`` and ``/ready``
answer 200, that the ``HEALTHCHECK`` command passes (and fails before the server is up),
and that a user created with the image's own CLI gets a token and runs the published
workflow with the notebook's saved result.

Differences from the real image, on purpose: the interpreter is this machine's Python 3
rather than the base image's, the wheel is built without build isolation (the dev
environment has the build requirements, as for the packaging tests), and paths under
``/app``, ``/opt`` and ``/home`` are moved into a temporary directory.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _dockerfile_rules import env_values, exec_form, healthcheck_command, parse
from _serve_cli import free_port

ROOT = Path(__file__).resolve().parents[2]
GLOBAL_ARGS, STAGES = parse((ROOT / "Dockerfile").read_text())
BUILDER, RUNTIME = STAGES[0], STAGES[-1]
# Building the wheel (the lab extension when it is stale) and installing its dependencies
# into a fresh virtualenv take minutes on a cold cache.
TIMEOUT = 900

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TIMEOUT)]


def stage_args(stage) -> dict[str, str]:
    arguments = {}
    for item in stage.of("ARG"):
        key, _, default = item["value"].partition("=")
        arguments[key] = default
    return arguments


def image_user() -> tuple[int, int]:
    uid, _, gid = RUNTIME.of("USER")[-1]["value"].strip().partition(":")
    return int(uid), int(gid or uid)


def base_python() -> str:
    """A Python 3.10+ with venv that runs the same for the image's user as for us (an
    interpreter under /root may start for another user with the system's libpython)."""
    probe = "import sys, venv; print(sys.version_info >= (3, 10), sys.version)"
    for candidate in ("/usr/local/bin/python3", "/usr/bin/python3", sys._base_executable):
        if not Path(candidate).is_file():
            continue
        answers = [
            subprocess.run(
                [*prefix, candidate, "-c", probe],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            ).stdout
            for prefix in ([], as_image_user())
        ]
        if answers[0].startswith("True ") and answers[0] == answers[1]:
            return candidate
    pytest.fail("no Python 3.10+ with venv that the image's user can run")


def as_image_user() -> list[str]:
    """The command prefix that drops to the Dockerfile's uid and gid (none when the tests
    already run as a non-root user, who then stands for it)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("running as root needs setpriv (util-linux) to drop to the image's user")
    uid, gid = image_user()
    return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]


class Image:
    """The runtime stage's file system, laid out under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.moved = {
            "/opt/kailash-nb": root / "opt" / "kailash-nb",
            "/app": root / "app",
            "/home/kailash": root / "home" / "kailash",
            "/tmp": root / "tmp",
        }

    def path(self, image_path: str) -> Path:
        """Where the image's ``image_path`` is in this layout."""
        for prefix, moved in self.moved.items():
            if image_path == prefix or image_path.startswith(prefix + "/"):
                return moved / image_path[len(prefix) :].lstrip("/")
        raise AssertionError(f"{image_path} is outside the paths this test lays out")

    def environment(self, **settings: str) -> dict[str, str]:
        """The runtime stage's ENV with its paths moved, a minimal PATH, and ``settings``
        (what a Deployment adds)."""
        env = {}
        for key, value in env_values(RUNTIME).items():
            env[key] = str(self.path(value)) if value.startswith("/") else value
        env["PATH"] = f"{self.moved['/opt/kailash-nb'] / 'bin'}:/usr/local/bin:/usr/bin:/bin"
        env.update(settings)
        return env


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    """Builder and runtime stages, done as the Dockerfile does them."""
    root = Path(tempfile.mkdtemp(prefix="kailash-nb-image-"))
    try:
        root.chmod(0o755)  # mkdtemp's 0700 would keep the image's user out
        layout = Image(root)
        uid, gid = image_user()
        # Builder: the wheel, then a virtualenv with it and the builder's extras.
        wheels = root / "wheels"
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        build = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--quiet"]
        _check([*build, "--no-build-isolation", "--wheel-dir", str(wheels)], env=env)
        (wheel,) = wheels.glob("kailash_nb-*.whl")
        venv = layout.path("/opt/kailash-nb")
        venv.parent.mkdir(mode=0o755)
        _check([base_python(), "-m", "venv", str(venv)])
        extras = stage_args(BUILDER)["KAILASH_NB_EXTRAS"]
        pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        _check([*pip, "install", "--quiet", f"{wheel}[{extras}]"])
        # Runtime: the COPY instructions into /app (owned by root), the user's HOME, /tmp.
        arguments = stage_args(RUNTIME)
        for item in RUNTIME.of("COPY"):
            source, destination = item["value"].split()[-2:]
            if source.startswith("/"):
                continue  # --from=builder: the virtualenv, made above
            source = source.replace("${NOTEBOOKS}", arguments["NOTEBOOKS"])
            target = layout.path(destination)
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target)
            else:
                shutil.copy(ROOT / source, target)
        for writable in ("/home/kailash", "/tmp"):
            path = layout.path(writable)
            path.mkdir(parents=True, mode=0o755)
            if os.geteuid() == 0:
                os.chown(path, uid, gid)
        yield layout
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _check(command: list[str], **options) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, **options
    )
    assert result.returncode == 0, (
        f"{' '.join(command)}:\n{(result.stdout + result.stderr)[-4000:]}"
    )
    return result.stdout


@contextlib.contextmanager
def running(
    command: list[str], env: dict[str, str], cwd: Path, log: Path
) -> Iterator[subprocess.Popen]:
    """``command`` in the background, its output in ``log`` (a pipe nobody reads could
    fill up and block it); stopped with SIGTERM (then killed) on the way out."""
    with log.open("w") as output:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, text=True
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)


def wait_for(process: subprocess.Popen, url: str, deadline_seconds: float, log: Path) -> None:
    """Poll ``url`` until it answers 200 (the server's cells run first)."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        if process.poll() is not None:
            pytest.fail(f"the entry point exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer 200 within {deadline_seconds} s:\n{log.read_text()}")
        time.sleep(0.1)  # polling interval, not a wait for readiness


def saved_invoice() -> object:
    """The pricing invoice the 04-publish notebook's saved output shows."""
    notebook = json.loads((ROOT / "notebooks" / "04-publish.ipynb").read_text())
    (cell,) = [
        cell
        for cell in notebook["cells"]
        if cell["cell_type"] == "code" and "".join(cell["source"]).startswith("import httpx")
    ]
    (result,) = [output for output in cell["outputs"] if output["output_type"] == "execute_result"]
    return ast.literal_eval("".join(result["data"]["text/plain"]))


@pytest.fixture
def database_url(request, image) -> str:
    """The session's PostgreSQL (what production uses) when there is one, else a SQLite
    file in the image's writable /tmp."""
    if os.environ.get("KAILASH_NB_TEST_PG_URL"):
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{image.path('/tmp/kailash-nb.db')}"


def test_the_entry_point_serves_health_ready_and_the_notebook_as_the_image_user(
    image, database_url
):
    port = free_port()
    settings = {
        "KAILASH_NB_PORT": str(port),
        "KAILASH_NB_JWT_SECRET": secrets.token_urlsafe(48),
        "KAILASH_NB_DATABASE_URL": database_url,
        "KAILASH_NB_DEBUG": "1",  # a failure to start shows its traceback
    }
    if os.environ.get("KAILASH_NB_TEST_REDIS_URL"):
        settings["KAILASH_NB_REDIS_URL"] = os.environ["KAILASH_NB_TEST_REDIS_URL"]
    env = image.environment(**settings)
    assert env["KAILASH_NB_HOST"] == "0.0.0.0"  # so the JWT secret is required
    workdir = image.path(RUNTIME.of("WORKDIR")[-1]["value"])
    user = as_image_user()
    health = healthcheck_command(RUNTIME)
    health = [
        health[0],
        *(str(image.path(word)) if word.startswith("/") else word for word in health[1:]),
    ]
    before = subprocess.run(
        [*user, *health], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert before.returncode == 1, before.stderr  # nothing listens yet: unhealthy

    entrypoint = exec_form(RUNTIME.of("ENTRYPOINT")[-1]["value"])
    log = image.root / "serve.log"
    with running([*user, *entrypoint], env, workdir, log) as server:
        base = f"http://127.0.0.1:{port}"
        wait_for(server, f"{base}/health", deadline_seconds=120, log=log)
        wait_for(server, f"{base}/ready", deadline_seconds=30, log=log)
        check = subprocess.run(
            [*user, *health], env=env, capture_output=True, text=True, timeout=30, check=False
        )
        assert check.returncode == 0, check.stderr
        # Without a token the workflow is refused (the image serves with authentication).
        url = f"{base}/workflows/pricing/execute"
        payload = {"parameters": {"discount": 0.1}}
        assert httpx.post(url, json=payload, timeout=10).status_code == 401
        password = secrets.token_urlsafe(16)
        added = subprocess.run(
            [
                *user,
                "kailash-nb",
                "users",
                "add",
                "ops",
                "--tenant",
                "default",
                "--role",
                "user",
                "--password-stdin",
            ],
            input=password + "\n",
            env=env,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert added.returncode == 0, added.stderr
        login = httpx.post(
            f"{base}/auth/token", json={"username": "ops", "password": password}, timeout=10
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        response = httpx.post(url, json=payload, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["results"]["invoice"]["result"] == saved_invoice()
        # setpriv execs the entry point, so the server keeps its pid: check who it runs as.
        expected_uid = image_user()[0] if user else os.geteuid()
        assert os.stat(f"/proc/{server.pid}").st_uid == expected_uid
        server.terminate()
        assert server.wait(timeout=20) == 0, log.read_text()
