"""The Dockerfile's rules, checked on its instructions as ``dockerfile-parse`` reads them.

``violations(text)`` lists every rule a Dockerfile breaks, one line each (empty: none), so
the tests can check the repository's Dockerfile passes and that each rule catches a
Dockerfile breaking it.
"""

from __future__ import annotations

import io
import json
import re
import shlex
from dataclasses import dataclass, field

from dockerfile_parse import DockerfileParser

# python:3.12.12-slim-trixie: an exact X.Y.Z release (with a variant), or any @sha256 digest.
PINNED_TAG = re.compile(r":\d+\.\d+\.\d+(?:-[A-Za-z0-9.]+)*$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
URL = re.compile(r"^(?:https?|ftp|git)://|^git@", re.IGNORECASE)
# Names that hold a secret when they carry a value; never baked into an image.
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE|DATABASE_URL|_KEY$")


@dataclass
class Stage:
    """One ``FROM`` and the instructions up to the next."""

    base: str
    name: str | None
    instructions: list[dict] = field(default_factory=list)

    def of(self, instruction: str) -> list[dict]:
        """This stage's instructions of one kind (``"ENV"``), in order."""
        return [item for item in self.instructions if item["instruction"] == instruction]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """The global build arguments (before the first ``FROM``) and the stages."""
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), env_replace=False)
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for item in parser.structure:
        kind = item["instruction"]
        if kind == "FROM":
            words = item["value"].split()
            words = [word for word in words if not word.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(_substitute(words[0], global_args), name))
        elif not stages:
            if kind == "ARG":
                key, has_default, default = item["value"].partition("=")
                if has_default:  # an ARG without a default leaves ${NAME} undefined
                    global_args[key.strip()] = default.strip()
        elif kind != "COMMENT":
            stages[-1].instructions.append(item)
    return global_args, stages


def env_values(stage: Stage) -> dict[str, str]:
    """The stage's ``ENV`` settings, in order (``KEY=value`` pairs, shell-quoted)."""
    values: dict[str, str] = {}
    for item in stage.of("ENV"):
        for pair in shlex.split(item["value"]):
            key, _, value = pair.partition("=")
            values[key] = value
    return values


def exec_form(value: str) -> list[str] | None:
    """The JSON array of an exec-form ``CMD``/``ENTRYPOINT``, or ``None`` (shell form)."""
    try:
        words = json.loads(value)
    except json.JSONDecodeError:
        return None
    return words if isinstance(words, list) and all(isinstance(w, str) for w in words) else None


def healthcheck_command(stage: Stage) -> list[str] | None:
    """The exec-form command of the stage's last ``HEALTHCHECK``, or ``None``."""
    checks = stage.of("HEALTHCHECK")
    if not checks:
        return None
    _, found, command = checks[-1]["value"].partition("CMD ")
    return exec_form(command.strip()) if found else None


def violations(text: str) -> list[str]:
    """Every rule ``text`` breaks, one line each."""
    global_args, stages = parse(text)
    problems: list[str] = []
    if len(stages) < 2:
        problems.append("not multi-stage: build in one stage, copy the result into another")
    for stage in stages:
        base = stage.base
        if "$" in base:
            problems.append(f"base image {base!r} names an undefined build argument")
        elif not (DIGEST.search(base) or PINNED_TAG.search(base)):
            problems.append(f"base image {base!r} is not pinned (exact X.Y.Z tag or digest)")
        for item in stage.of("ADD"):
            sources = [w for w in shlex.split(item["value"])[:-1] if not w.startswith("--")]
            if any(URL.search(source) for source in sources):
                problems.append(f"line {item['startline'] + 1}: ADD of a URL")
        for kind in ("ENV", "ARG"):
            for item in stage.of(kind):
                for pair in shlex.split(item["value"]):
                    key, _, value = pair.partition("=")
                    if SECRET_NAME.search(key.upper()) and (value or kind == "ENV"):
                        problems.append(
                            f"line {item['startline'] + 1}: {kind} {key} bakes a secret"
                        )
    for key, value in global_args.items():
        if SECRET_NAME.search(key.upper()) and value:
            problems.append(f"ARG {key} bakes a secret")
    if not stages:
        return [*problems, "no FROM"]
    final = stages[-1]
    users = final.of("USER")
    user = users[-1]["value"].strip() if users else ""
    uid, _, gid = user.partition(":")
    if not users:
        problems.append("the final stage runs as root: no USER")
    elif not uid.isdigit() or (gid and not gid.isdigit()):
        problems.append(f"USER {user} is not numeric (uid[:gid]): Kubernetes cannot check it")
    elif int(uid) == 0:
        problems.append("USER 0 is root")
    command = healthcheck_command(final)
    if command is None:
        problems.append("the final stage has no exec-form HEALTHCHECK CMD")
    elif any(word in {"curl", "wget"} for word in command):
        problems.append("HEALTHCHECK uses curl/wget, which the slim image does not have")
    entrypoints = final.of("ENTRYPOINT")
    entrypoint = exec_form(entrypoints[-1]["value"]) if entrypoints else None
    if entrypoint != ["kailash-nb", "serve"]:
        problems.append('ENTRYPOINT is not the exec form ["kailash-nb", "serve"]')
    return problems


def _substitute(word: str, arguments: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return arguments.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, word)
