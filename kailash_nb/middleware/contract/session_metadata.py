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

from kailash_nb.middleware.contract.fields import json_int
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

# A JSON integer (1.0 counts, as in the published schema; "1" and true do not).
_PositiveInt = json_int(1, 1_000_000)
_TenantId = Annotated[str, Field(strict=True, min_length=1, max_length=256)]


class ResourceLimits(BaseModel):
    """Per-session limits (``null``: none). ``max_memory_mb`` is recorded with the
    session but not enforced in-process: runs share the gateway's process."""

    model_config = ConfigDict(extra="forbid")

    max_concurrent_workflows: _PositiveInt | None = Field(
        default=None,
        description="runs of the session executing at once; a further run is refused "
        "with 429 until one ends",
    )
    max_memory_mb: _PositiveInt | None = Field(
        default=None, description="recorded with the session, not enforced in-process"
    )


class SessionMetadata(BaseModel):
    """A session's metadata (at most 16 KiB as compact JSON): the known keys typed,
    other JSON keys kept as given."""

    model_config = ConfigDict(extra="allow")

    tenant_id: _TenantId | None = Field(
        default=None, description="must be the token's tenant (403 otherwise)"
    )
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
