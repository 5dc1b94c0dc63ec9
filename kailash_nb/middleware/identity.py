"""``Identity``: who is calling the gateway, as the HTTP side verified it and the run
side records it (a run's owner is a tenant and a subject)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ANONYMOUS", "Identity", "rate_key"]


@dataclass(frozen=True)
class Identity:
    """Who is calling: from a verified access token, or anonymous in open mode.

    Attributes:
        subject: the token's subject (the user or service).
        tenant_id: the token's tenant, the only source of tenant for a request.
        roles: the token's roles.
        anonymous: the caller of a gateway served without authentication.
        attributes: the token's other claims (``extra`` at issue time), which access
            policies read as ``user.attributes``.
        address: the client's IP address, which access policies read as the caller's
            address (``environment.ip``).
    """

    subject: str
    tenant_id: str
    roles: tuple[str, ...]
    anonymous: bool = False
    attributes: Mapping[str, Any] = dataclasses.field(
        default_factory=dict, compare=False, hash=False
    )
    address: str | None = dataclasses.field(default=None, compare=False, hash=False)

    @property
    def is_admin(self) -> bool:
        """True when the caller holds the ``admin`` role."""
        return "admin" in self.roles


#: The caller of a gateway served without authentication (loopback only).
ANONYMOUS = Identity("anonymous", "default", (), anonymous=True)


def rate_key(identity: Identity, remote_ip: str | None) -> str:
    """The rate limiter's key of a caller: its tenant and subject, or its address when
    anonymous (every route and protocol counts one caller against one bucket)."""
    if identity.anonymous:
        return f"ip:{remote_ip}"
    return f"sub:{identity.tenant_id}:{identity.subject}"
