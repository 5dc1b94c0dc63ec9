"""Hand-made JWTs for the token tests: the test secret, base64url segments, an HS256
signature over any header with any key (pyjwt refuses some of these) and a complete,
valid payload to change claim by claim."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid

TEST_JWT_SECRET = "kailash-nb-test-secret-0123456789-abcdefghijklmn"
DELETE = object()


def b64(data: bytes) -> str:
    """``data`` as unpadded base64url text."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value) -> str:
    """``value`` as a token segment: JSON, then unpadded base64url."""
    return b64(json.dumps(value).encode())


def sign_hs(header, payload, key: str | bytes = TEST_JWT_SECRET) -> str:
    """A token of ``header`` and ``payload`` with an HS256 signature keyed by ``key``."""
    key = key.encode() if isinstance(key, str) else key
    signing_input = f"{segment(header)}.{segment(payload)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def claims(now: float, *, issuer: str | None = None, audience: str | None = None, **overrides):
    """A complete, valid access-token payload issued at ``now`` (with ``iss``/``aud`` when
    given); each override sets a claim, or removes it when its value is ``DELETE``."""
    payload = {
        "sub": "user-1",
        "tenant_id": "acme",
        "roles": ["analyst"],
        "token_type": "access",
        "jti": uuid.uuid4().hex,
        "family": uuid.uuid4().hex,
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now) + 300,
    }
    if issuer is not None:
        payload["iss"] = issuer
    if audience is not None:
        payload["aud"] = audience
    for name, value in overrides.items():
        if value is DELETE:
            payload.pop(name, None)
        else:
            payload[name] = value
    return payload
