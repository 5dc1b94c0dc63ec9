"""The Dockerfile and .dockerignore: the image's rules, read as Docker reads them."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest
from _dockerfile_rules import env_values, exec_form, healthcheck_command, parse, violations

from kailash_nb.cli.serve_env import SERVE_ENV

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
GLOBAL_ARGS, STAGES = parse(DOCKERFILE)
RUNTIME = STAGES[-1]
# What the gateway and the store read besides serve's own variables (docs/environment.md).
GATEWAY_ENV = {"KAILASH_NB_DATABASE_URL", "KAILASH_NB_REDIS_URL", "KAILASH_NB_JWT_SECRET"}


def test_the_dockerfile_keeps_every_rule():
    assert violations(DOCKERFILE) == []


GOOD_RUNTIME = (
    "FROM python:3.12.12-slim AS runtime\nUSER 10001:10001\n"
    'HEALTHCHECK CMD ["python", "/app/healthcheck.py"]\nENTRYPOINT ["kailash-nb", "serve"]\n'
)


@pytest.mark.parametrize(
    ("dockerfile", "problem"),
    [
        (GOOD_RUNTIME, "not multi-stage"),
        ("FROM python:3.12-slim AS b\n" + GOOD_RUNTIME, "'python:3.12-slim' is not pinned"),
        ("FROM python:latest AS b\n" + GOOD_RUNTIME, "'python:latest' is not pinned"),
        ("ARG BASE\nFROM ${BASE} AS b\n" + GOOD_RUNTIME, "names an undefined build argument"),
        (
            "FROM python:3.12.12-slim AS b\nADD https://example.org/x.tgz /x\n" + GOOD_RUNTIME,
            "line 2: ADD of a URL",
        ),
        (
            "FROM python:3.12.12-slim AS b\n" + GOOD_RUNTIME + "ENV KAILASH_NB_JWT_SECRET=abc\n",
            "ENV KAILASH_NB_JWT_SECRET bakes a secret",
        ),
        (
            "ARG DATABASE_URL=postgresql://u:p@db/x\nFROM python:3.12.12-slim AS b\n"
            + GOOD_RUNTIME,
            "ARG DATABASE_URL bakes a secret",
        ),
        (
            "FROM python:3.12.12-slim AS b\n" + GOOD_RUNTIME.replace("10001:10001", "app"),
            "not numeric",
        ),
        (
            "FROM python:3.12.12-slim AS b\n" + GOOD_RUNTIME.replace("10001:10001", "0"),
            "USER 0 is root",
        ),
        (
            "FROM python:3.12.12-slim AS b\n" + GOOD_RUNTIME.replace("USER 10001:10001\n", ""),
            "no USER",
        ),
        (
            "FROM python:3.12.12-slim AS b\n"
            + GOOD_RUNTIME.replace('["python", "/app/healthcheck.py"]', '["curl", "-f", "x"]'),
            "HEALTHCHECK uses curl",
        ),
        (
            "FROM python:3.12.12-slim AS b\n" + GOOD_RUNTIME.replace("HEALTHCHECK", "LABEL x=y #"),
            "no exec-form HEALTHCHECK",
        ),
        (
            "FROM python:3.12.12-slim AS b\n"
            + GOOD_RUNTIME.replace('["kailash-nb", "serve"]', "kailash-nb serve"),
            "ENTRYPOINT is not the exec form",
        ),
    ],
)
def test_each_rule_catches_a_dockerfile_breaking_it(dockerfile, problem):
    found = violations(dockerfile)
    assert any(problem in line for line in found), found


def test_a_digest_pins_a_base_image_too():
    digest = "python:3.12-slim@sha256:" + "a" * 64
    assert violations(f"FROM {digest} AS b\n" + GOOD_RUNTIME) == []


def test_the_builder_builds_the_wheel_and_the_runtime_copies_only_its_virtualenv():
    builder = STAGES[0]
    runs = " ".join(item["value"] for item in builder.of("RUN"))
    assert "pip wheel" in runs and "nodejs" in runs  # the lab extension is built by npm
    copies = [item["value"].split() for item in RUNTIME.of("COPY")]
    from_builder = [words for words in copies if words[0].startswith("--from=")]
    assert from_builder == [["--from=builder", "/opt/kailash-nb", "/opt/kailash-nb"]]
    assert env_values(RUNTIME)["PATH"].startswith("/opt/kailash-nb/bin:")


def test_the_configuration_is_environment_variables_serve_and_the_gateway_read():
    env = env_values(RUNTIME)
    ours = {key for key in env if key.startswith("KAILASH_NB_")}
    assert ours <= set(SERVE_ENV.values()) | GATEWAY_ENV
    assert set(SERVE_ENV.values()) <= ours  # every serve option set for the container
    assert not ours & {"KAILASH_NB_JWT_SECRET", "KAILASH_NB_DATABASE_URL"}
    assert env["KAILASH_NB_HOST"] == "0.0.0.0"
    assert RUNTIME.of("EXPOSE")[-1]["value"] == env["KAILASH_NB_PORT"]


def test_the_served_notebook_and_the_health_check_are_copied_into_the_image():
    env = env_values(RUNTIME)
    copies = [item["value"].split() for item in RUNTIME.of("COPY")]
    arguments = {}
    for item in RUNTIME.of("ARG"):
        key, _, default = item["value"].partition("=")
        arguments[key] = default
    (notebooks,) = [words for words in copies if words[-1] == "/app/notebooks"]
    source = re.sub(r"\$\{(\w+)\}", lambda m: arguments[m.group(1)], notebooks[0])
    served = Path(env["KAILASH_NB_NOTEBOOK"])
    assert served.parent == Path("/app/notebooks")
    assert (ROOT / source / served.name).is_file()
    command = healthcheck_command(RUNTIME)
    assert [command[0], *(words for words in copies if words[-1] == command[1])] == [
        "python",
        ["deploy/healthcheck.py", "/app/healthcheck.py"],
    ]
    assert "/health" in (ROOT / "deploy" / "healthcheck.py").read_text()
    assert exec_form(RUNTIME.of("ENTRYPOINT")[-1]["value"]) == ["kailash-nb", "serve"]
    assert not RUNTIME.of("CMD")  # the notebook comes from KAILASH_NB_NOTEBOOK


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore's ``patterns`` keep ``path`` (or a folder above it) out of
    the build context (the simple patterns it uses: names, globs and ``**/``)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("**/"):
            tail = pattern[3:]
            if any(fnmatch.fnmatchcase(part, tail) for part in parts):
                return True
        elif any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates):
            return True
    return False


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_build_context_has_what_the_build_needs_and_no_secrets():
    patterns = dockerignore()
    assert not any(pattern.startswith("!") for pattern in patterns)  # our matcher's limit
    needed = [
        "pyproject.toml",
        "README.md",
        "kailash_nb/cli/serve.py",
        "labextension/package.json",
        "labextension/package-lock.json",
        "labextension/src/index.ts",
        "jupyter-config/server-config/kailash_nb.json",
        "tools/build_labextension.py",
        "notebooks/04-publish.ipynb",
        "deploy/healthcheck.py",
    ]
    for path in needed:
        assert (ROOT / path).exists(), path
        assert not ignored(path, patterns), f"{path} is needed by the build but ignored"
    for path in [
        ".git/config",
        ".env",
        ".env.production",
        "certs/server.key",
        "k8s/production/deployment.yaml",
        "labextension/node_modules/x/index.js",
        ".venv/bin/python",
    ]:
        assert ignored(path, patterns), f"{path} would enter the build context"
