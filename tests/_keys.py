"""Asymmetric keys as PEM text, for the token tests (RS256/ES256 deployments and
forged tokens); the keys themselves are session fixtures in ``conftest.py``."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization


def private_pem(key) -> str:
    """``key``'s private half as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(key, fmt=serialization.PublicFormat.SubjectPublicKeyInfo) -> str:
    """``key``'s public half as PEM."""
    return key.public_key().public_bytes(serialization.Encoding.PEM, fmt).decode()
