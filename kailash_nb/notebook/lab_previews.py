"""The registry of running previews that the Jupyter server extension proxies to.

When ``kn.publish(..., preview=True)`` starts a preview gateway inside a kernel, the
kernel writes one JSON file per preview into the user's Jupyter runtime directory::

    <jupyter_runtime_dir()>/kailash-nb-previews/<port>.json     (dir 0700, file 0600)

``kailash_nb.labserver`` (loaded by the user's Jupyter server) reads these files and
proxies ``{base_url}kailash-nb/previews/<port>/...`` to the registered ports only, behind
Jupyter's own authentication. A file is removed when its preview stops, is replaced or
``kn.reset()`` runs, and when the kernel process exits normally; a file whose process is
gone (its pid and start time no longer match, see ``process_alive``) is ignored and
deleted by the reader. Without ``jupyter_core`` (outside Jupyter) nothing is registered.

The credential: the preview's own signing key. The file carries the preview's HS256
key and token parameters (issuer, audience, subject, tenant), and the proxy mints a
short-lived access token per request with ``TokenService.issue``, the same code that
mints ``Publication.headers``. This works without changing the gateway: its
verification is stateless apart from a revocation deny-list (the session store only
records revoked sessions and used refresh tokens), so a token minted by another
``TokenService`` with the same key and parameters passes every check (pinned
algorithm and ``kid``, issuer/audience when set, ``exp``/``nbf``/``iat``, a lifetime no
longer than the gateway's ``access_token_ttl``), and a revoked session is still refused.
The alternative, a long-lived token issued by the kernel and rewritten periodically,
would need the kernel's event loop to keep refreshing it (a busy cell would stall it)
and a lifetime beyond ``access_token_ttl``, which the gateway refuses. Writing the key
into the runtime directory adds no exposure: that private directory already holds the
kernels' connection files, whose HMAC keys let whoever reads them run any code in the
kernel, preview and its key included.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import secrets
import stat
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from kailash_nb.hosts import is_loopback
from kailash_nb.store.run_history import process_alive, process_token

__all__ = [
    "PREVIEWS_DIRECTORY",
    "PROXY_TOKEN_TTL",
    "PreviewCredential",
    "PreviewRecord",
    "Registration",
    "live_previews",
    "read_preview",
    "register",
    "registry_directory",
]

logger = logging.getLogger(__name__)

#: The registry's directory name inside the Jupyter runtime directory.
PREVIEWS_DIRECTORY = "kailash-nb-previews"
_FORMAT = 1
#: How long a token the proxy mints for one request lives (the gateway's own access
#: tokens live 15 min; a proxied request needs seconds).
PROXY_TOKEN_TTL = timedelta(seconds=60)
_FILE_NAME = re.compile(r"([0-9]{1,5})\.json")
_REQUIRED = ("format", "preview_id", "port", "host", "process", "workflows", "credential")


@dataclass(frozen=True)
class PreviewCredential:
    """How the proxy authenticates to one preview: the preview's signing key and the
    parameters its tokens carry. Never shown to a browser."""

    secret: str
    algorithm: str = "HS256"
    issuer: str | None = None
    audience: str | None = None
    subject: str = "notebook"
    tenant_id: str = "default"

    def authorization(self) -> str:
        """``"Bearer <token>"``: a fresh access token valid for ``PROXY_TOKEN_TTL``,
        minted by ``TokenService`` as the preview's own tokens are."""
        pair = _token_service(self).issue(self.subject, tenant_id=self.tenant_id, roles=())
        return f"Bearer {pair.access_token}"

    def to_json(self) -> dict[str, Any]:
        """The credential as the registry file stores it."""
        return {
            "kind": "signing_key",
            "algorithm": self.algorithm,
            "secret": self.secret,
            "issuer": self.issuer,
            "audience": self.audience,
            "subject": self.subject,
            "tenant_id": self.tenant_id,
        }


@dataclass(frozen=True)
class PreviewRecord:
    """One registered preview, as its registry file describes it.

    Attributes:
        port, host: where the preview gateway listens (a loopback host).
        process: ``process_token()`` of the kernel that runs it (pid and start time).
        preview_id: a random id telling this preview from a later one on the same port.
        workflows: ``(workflow name, route)`` pairs it serves.
        credential: what the proxy calls it with.
        kernel_id: the Jupyter kernel's id when known (from its connection file).
    """

    port: int
    host: str
    process: str
    preview_id: str
    workflows: tuple[tuple[str, str], ...]
    credential: PreviewCredential
    kernel_id: str | None = None

    @property
    def pid(self) -> int:
        """The kernel's process id."""
        return int(self.process.partition(":")[0])

    def to_json(self) -> dict[str, Any]:
        """The registry file's JSON object."""
        return {
            "format": _FORMAT,
            "preview_id": self.preview_id,
            "port": self.port,
            "host": self.host,
            "pid": self.pid,
            "process": self.process,
            "kernel_id": self.kernel_id,
            "workflows": [{"workflow": name, "route": route} for name, route in self.workflows],
            "credential": self.credential.to_json(),
        }

    @classmethod
    def from_json(cls, data: object) -> PreviewRecord:
        """Parse a registry file's JSON object.

        Raises:
            ValueError: a missing or mistyped field, an unknown format, a host that is not
                loopback, or a credential kind other than ``signing_key``.
        """
        if not isinstance(data, Mapping):
            raise ValueError("a preview record must be a JSON object")
        missing = [name for name in _REQUIRED if name not in data]
        if missing:
            raise ValueError(f"a preview record lacks {', '.join(missing)}")
        if data["format"] != _FORMAT:
            raise ValueError(f"unknown preview record format {data['format']!r:.40}")
        port, host, process = data["port"], data["host"], data["process"]
        if type(port) is not int or not 0 < port < 65536:
            raise ValueError(f"port must be an integer in 1-65535, got {port!r:.40}")
        if not isinstance(host, str) or not is_loopback(host):
            raise ValueError(f"host must be a loopback address, got {host!r:.80}")
        if not isinstance(process, str) or not re.fullmatch(r"[0-9]+:[0-9?]+", process):
            raise ValueError(f"process must be '<pid>:<start time>', got {process!r:.80}")
        workflows = data["workflows"]
        if not isinstance(workflows, list) or not all(
            isinstance(item, Mapping)
            and isinstance(item.get("workflow"), str)
            and isinstance(item.get("route"), str)
            for item in workflows
        ):
            raise ValueError("workflows must be a list of {workflow, route} strings")
        kernel_id = data.get("kernel_id")
        if kernel_id is not None and not isinstance(kernel_id, str):
            raise ValueError("kernel_id must be a string or null")
        preview_id = data["preview_id"]
        if not isinstance(preview_id, str):
            raise ValueError("preview_id must be a string")
        return cls(
            port=port,
            host=host,
            process=process,
            preview_id=preview_id,
            workflows=tuple((item["workflow"], item["route"]) for item in workflows),
            credential=_parse_credential(data["credential"]),
            kernel_id=kernel_id,
        )


class Registration:
    """A preview's registry file, written by ``register``; ``remove`` deletes it."""

    def __init__(self, path: Path, preview_id: str) -> None:
        self.path = path
        self.preview_id = preview_id

    def remove(self) -> None:
        """Delete the file if it still describes this preview (a later preview on the
        same port keeps its own). Idempotent."""
        _registrations.discard(self)
        try:
            current = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            current = None
        if not isinstance(current, dict) or current.get("preview_id") == self.preview_id:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


_registrations: set[Registration] = set()


def registry_directory() -> Path | None:
    """``<jupyter runtime dir>/kailash-nb-previews``, or ``None`` when ``jupyter_core``
    is not installed (previews are then not registered)."""
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:
        return None
    return Path(jupyter_runtime_dir()) / PREVIEWS_DIRECTORY


def register(
    *,
    port: int,
    host: str,
    workflows: Iterable[tuple[str, str]],
    security: Any,
    subject: str,
    tenant_id: str,
) -> Registration | None:
    """Write the registry file of a started preview; ``None`` without ``jupyter_core``.

    Args:
        port, host: where the preview listens.
        workflows: ``(workflow name, route)`` pairs it serves.
        security: the preview's ``SecurityConfig`` (an HS256 key of its own).
        subject, tenant_id: whom the preview's tokens are issued to.

    Raises:
        ValueError: the configuration has no HS256 secret.
        OSError: the runtime directory cannot be written.
    """
    directory = registry_directory()
    if directory is None:
        return None
    if security.jwt_algorithm != "HS256" or security.jwt_secret is None:
        raise ValueError("a registered preview must sign its tokens with an HS256 secret")
    record = PreviewRecord(
        port=port,
        host=host,
        process=process_token(),
        preview_id=secrets.token_hex(16),
        workflows=tuple(workflows),
        credential=PreviewCredential(
            secret=security.jwt_secret.get_secret_value(),
            issuer=security.issuer,
            audience=security.audience,
            subject=subject,
            tenant_id=tenant_id,
        ),
        kernel_id=_kernel_id(),
    )
    path = directory / f"{port}.json"
    _write_private(directory, path, json.dumps(record.to_json(), indent=1))
    registration = Registration(path, record.preview_id)
    _registrations.add(registration)
    return registration


def read_preview(directory: Path, port: int) -> PreviewRecord | None:
    """The live preview registered on ``port`` in ``directory``, or ``None``.

    A file whose kernel process is gone is deleted. A file that is unreadable, not
    ours, writable by others, or malformed counts as no registration (logged).
    """
    path = directory / f"{port}.json"
    record = _load(path)
    if record is None or record.port != port:
        return None
    if not process_alive(record.process):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return None
    return record


def live_previews(directory: Path) -> list[PreviewRecord]:
    """Every live preview registered in ``directory``, by port; stale files deleted."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    records = []
    for name in names:
        match = _FILE_NAME.fullmatch(name)
        if match is None:
            continue
        record = read_preview(directory, int(match.group(1)))
        if record is not None:
            records.append(record)
    return sorted(records, key=lambda record: record.port)


# -- helpers ----------------------------------------------------------------------------


def _parse_credential(data: object) -> PreviewCredential:
    if not isinstance(data, Mapping) or data.get("kind") != "signing_key":
        raise ValueError("credential must be an object of kind 'signing_key'")
    if data.get("algorithm") != "HS256":
        raise ValueError("credential algorithm must be HS256")
    fields = {}
    for name in ("secret", "subject", "tenant_id"):
        if not isinstance(data.get(name), str):
            raise ValueError(f"credential {name} must be a string")
        fields[name] = data[name]
    for name in ("issuer", "audience"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise ValueError(f"credential {name} must be a string or null")
        fields[name] = data.get(name)
    return PreviewCredential(**fields)


def _load(path: Path) -> PreviewRecord | None:
    try:
        with open(path, encoding="utf-8") as handle:
            info = os.fstat(handle.fileno())
            if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                logger.warning("ignoring preview record %s: not private to this user", path)
                return None
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        logger.warning("ignoring unreadable preview record %s: %s", path, error)
        return None
    try:
        return PreviewRecord.from_json(data)
    except ValueError as error:
        logger.warning("ignoring malformed preview record %s: %s", path, error)
        return None


def _write_private(directory: Path, path: Path, text: str) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    # Created 0600 by mkstemp, then renamed over the old file: a reader sees either
    # the whole old record or the whole new one.
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _kernel_id() -> str | None:
    # Only an already imported ipykernel is asked: registering imports nothing.
    if "ipykernel" not in sys.modules:
        return None
    try:
        from ipykernel.connect import get_connection_file

        name = Path(get_connection_file()).name
    except RuntimeError:  # ipykernel is imported, but this is no running kernel
        return None
    match = re.fullmatch(r"kernel-(.+)\.json", name)
    return match.group(1) if match else None


_services: dict[PreviewCredential, Any] = {}


def _token_service(credential: PreviewCredential) -> Any:
    service = _services.get(credential)
    if service is None:
        from kailash_nb.security.config import SecurityConfig
        from kailash_nb.security.tokens import TokenService

        config = SecurityConfig(
            jwt_secret=credential.secret,
            issuer=credential.issuer,
            audience=credential.audience,
            access_token_ttl=PROXY_TOKEN_TTL,
            enable_rate_limiting=False,
        )
        # Minting only: no refresh tokens, no audit rows, sessions in memory.
        service = TokenService(config, "sqlite://", refresh_tokens=False, audit=False)
        if len(_services) >= 64:
            _services.pop(next(iter(_services)))
        _services[credential] = service
    return service


@atexit.register
def _remove_all() -> None:
    for registration in list(_registrations):
        with contextlib.suppress(OSError):
            registration.remove()
