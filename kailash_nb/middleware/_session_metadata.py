"""Validation of a session's ``metadata`` (pydantic), used by ``AgentUIMiddleware``.

Accepted shape (every key optional)::

    {
        "tenant_id": "acme",                  # must agree with the owner's tenant
        "isolation_level": "strict",          # the only level: sessions never mix owners
        "resource_limits": {
            "max_concurrent_workflows": 10,   # positive int, enforced per session
            "max_memory_mb": 1024,            # positive int, recorded, not enforced
        },
        ...                                   # other JSON keys are stored as given
    }
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kailash_nb.sdk_exceptions import KailashException

__all__ = [
    "MAX_METADATA_BYTES",
    "ResourceLimits",
    "SessionMetadata",
    "SessionMetadataError",
    "validate_metadata",
]

#: Largest accepted metadata, as compact JSON.
MAX_METADATA_BYTES = 16 * 1024

_PositiveInt = Annotated[int, Field(strict=True, gt=0, le=1_000_000)]
_TenantId = Annotated[str, Field(strict=True, min_length=1, max_length=256)]


class ResourceLimits(BaseModel):
    """Per-session limits.

    Attributes:
        max_concurrent_workflows: runs of this session executing at once; a further
            run is refused (HTTP 429) until one ends. ``None``: no per-session limit.
        max_memory_mb: recorded with the session but **not enforced** in-process (runs
            share the gateway's process; there is no per-run memory cap).
    """

    model_config = ConfigDict(extra="forbid")

    max_concurrent_workflows: _PositiveInt | None = None
    max_memory_mb: _PositiveInt | None = None


class SessionMetadata(BaseModel):
    """A session's metadata: the known keys typed, other JSON keys kept as given."""

    model_config = ConfigDict(extra="allow")

    tenant_id: _TenantId | None = None
    isolation_level: Literal["strict"] = "strict"
    resource_limits: ResourceLimits = Field(default_factory=ResourceLimits)


class SessionMetadataError(KailashException, ValueError):
    """The metadata does not validate; ``str()`` lists each problem (no input values)."""


def validate_metadata(metadata: Any) -> SessionMetadata:
    """``metadata`` (``None`` or a dict) validated as :class:`SessionMetadata`.

    Raises:
        SessionMetadataError: not an object, a bad field, not JSON, or above 16 KiB.
    """
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise SessionMetadataError("metadata must be a JSON object")
    try:
        size = len(json.dumps(metadata, allow_nan=False, separators=(",", ":")))
    except (TypeError, ValueError) as exc:
        raise SessionMetadataError(f"metadata must be plain JSON ({exc})") from None
    if size > MAX_METADATA_BYTES:
        raise SessionMetadataError(f"metadata is {size} bytes; the limit is {MAX_METADATA_BYTES}")
    try:
        return SessionMetadata.model_validate(metadata)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])[:120]}: {error['msg']}"
            for error in exc.errors(include_input=False)[:10]
        )
        raise SessionMetadataError(f"invalid session metadata: {problems}") from None
