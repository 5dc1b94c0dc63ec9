"""``Identity``: who is calling the gateway, as the HTTP side verified it and the run
side records it (a run's owner is a tenant and a subject)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ANONYMOUS", "Identity"]


@dataclass(frozen=True)
class Identity:
    """Who is calling: from a verified access token, or anonymous in open mode."""

    subject: str
    tenant_id: str
    roles: tuple[str, ...]
    anonymous: bool = False

    @property
    def is_admin(self) -> bool:
        """True when the caller holds the ``admin`` role."""
        return "admin" in self.roles


#: The caller of a gateway served without authentication (loopback only).
ANONYMOUS = Identity("anonymous", "default", (), anonymous=True)
