"""SecurityConfig: safe defaults, AUTH-24 (weak/missing secrets refuse to start) and the
algorithm/key consistency checks."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from _keys import private_pem, public_pem
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

import kailash_nb.security
from kailash_nb.security import RetiredKey, SecurityConfig

SECRET = "0123456789abcdef0123456789abcdef-config-tests"


def test_defaults_are_safe():
    config = SecurityConfig(jwt_secret=SECRET)
    assert config.jwt_algorithm == "HS256"
    assert config.access_token_ttl == timedelta(minutes=15)
    assert config.access_token_ttl < config.refresh_token_ttl <= timedelta(days=90)
    assert 0 <= config.leeway <= 30
    assert config.development_mode is False
    assert config.enable_rate_limiting is True
    assert config.issuer is None and config.audience is None and config.jwks_url is None


def test_every_field_is_documented():
    for name, field in SecurityConfig.model_fields.items():
        assert field.description, name


def test_seed_example_with_a_strong_secret():
    config = SecurityConfig(
        jwt_secret=SECRET, enable_rate_limiting=True, max_requests_per_minute=1000
    )
    assert config.max_requests_per_minute == 1000


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (None, "jwt_secret is required"),
        ("", "jwt_secret is empty"),
        ("enterprise-secret-key", "21 bytes"),  # the seed document's example
        ("x" * 31, "31 bytes"),
    ],
)
def test_auth_24_weak_or_missing_hs_secret_refused(secret, message):
    with pytest.raises(ValidationError, match=message):
        SecurityConfig(jwt_secret=secret)


def test_auth_24_secret_length_counts_bytes_not_characters():
    with pytest.raises(ValidationError, match="30 bytes"):
        SecurityConfig(jwt_secret="é" * 15)
    SecurityConfig(jwt_secret="é" * 16)  # 32 bytes
    SecurityConfig(jwt_secret="x" * 32)


def test_auth_24_errors_never_echo_the_secret():
    with pytest.raises(ValidationError) as caught:
        SecurityConfig(jwt_secret="enterprise-secret-key")
    assert "enterprise-secret-key" not in str(caught.value)
    assert "enterprise-secret-key" not in repr(caught.value)
    assert SECRET not in repr(SecurityConfig(jwt_secret=SECRET))


def test_auth_24_development_mode_generates_a_throwaway_secret(caplog):
    with caplog.at_level(logging.WARNING, logger="kailash_nb.security.config"):
        first = SecurityConfig(development_mode=True)
    second = SecurityConfig(development_mode=True)
    assert "throwaway jwt_secret" in caplog.text
    assert len(first.jwt_secret.get_secret_value().encode()) >= 32
    assert first.jwt_secret.get_secret_value() != second.jwt_secret.get_secret_value()


def test_auth_24_development_mode_accepts_a_short_secret_but_never_an_empty_one():
    assert SecurityConfig(jwt_secret="dev", development_mode=True).jwt_secret is not None
    with pytest.raises(ValidationError, match="empty"):
        SecurityConfig(jwt_secret="", development_mode=True)


@pytest.mark.parametrize(
    "algorithm", ["none", "None", "NONE", "nOnE", "", "hs256", "HS512", "RS512", "PS256", "EdDSA"]
)
def test_alg_none_and_unknown_algorithms_refused(algorithm):
    with pytest.raises(ValidationError, match="HS256"):
        SecurityConfig(jwt_secret=SECRET, jwt_algorithm=algorithm)


def test_hs256_refuses_asymmetric_keys_and_jwks(rsa_key):
    with pytest.raises(ValidationError, match="for RS256/ES256"):
        SecurityConfig(jwt_secret=SECRET, jwt_private_key=private_pem(rsa_key))
    with pytest.raises(ValidationError, match="for RS256/ES256"):
        SecurityConfig(jwt_secret=SECRET, jwt_public_key=public_pem(rsa_key))
    with pytest.raises(ValidationError, match="HS256 cannot use it"):
        SecurityConfig(jwt_secret=SECRET, jwks_url="https://keys.example.com/jwks.json")


def test_rs256_and_es256_accept_matching_keys(rsa_key, ec_key):
    rs = SecurityConfig(jwt_algorithm="RS256", jwt_private_key=private_pem(rsa_key))
    es = SecurityConfig(jwt_algorithm="ES256", jwt_private_key=private_pem(ec_key))
    verify_only = SecurityConfig(jwt_algorithm="RS256", jwt_public_key=public_pem(rsa_key))
    assert rs.key_id == verify_only.key_id  # derived from the public key
    assert es.key_id != rs.key_id
    SecurityConfig(
        jwt_algorithm="RS256",
        jwt_private_key=private_pem(rsa_key),
        jwt_public_key=public_pem(rsa_key),
    )
    assert "PRIVATE KEY" not in repr(rs)


def test_algorithm_key_mismatches_refused(rsa_key, ec_key):
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    p384 = ec.generate_private_key(ec.SECP384R1())
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = [
        ({"jwt_algorithm": "RS256", "jwt_secret": SECRET}, "jwt_secret is for HS256"),
        ({"jwt_algorithm": "RS256"}, "needs jwt_private_key"),
        ({"jwt_algorithm": "RS256", "jwt_private_key": private_pem(ec_key)}, "RSA key"),
        ({"jwt_algorithm": "ES256", "jwt_private_key": private_pem(rsa_key)}, "EC P-256"),
        ({"jwt_algorithm": "ES256", "jwt_public_key": public_pem(p384)}, "EC P-256"),
        ({"jwt_algorithm": "RS256", "jwt_private_key": private_pem(small_rsa)}, "2048"),
        ({"jwt_algorithm": "RS256", "jwt_private_key": "not a pem"}, "not a PEM private key"),
        ({"jwt_algorithm": "RS256", "jwt_public_key": private_pem(rsa_key)}, "not a PEM public"),
        (
            {
                "jwt_algorithm": "RS256",
                "jwt_private_key": private_pem(rsa_key),
                "jwt_public_key": public_pem(other_rsa),
            },
            "not the public half",
        ),
    ]
    for options, message in cases:
        with pytest.raises(ValidationError, match=message):
            SecurityConfig(**options)


def test_encrypted_private_key_refused(rsa_key):
    encrypted = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass"),
    ).decode()
    with pytest.raises(ValidationError, match="encrypted"):
        SecurityConfig(jwt_algorithm="RS256", jwt_private_key=encrypted)


def test_jwks_url_must_be_https_outside_development(rsa_key):
    SecurityConfig(jwt_algorithm="RS256", jwks_url="https://keys.example.com/jwks.json")
    for url in ("http://keys.example.com/jwks.json", "file:///etc/passwd", "https://", "keys"):
        with pytest.raises(ValidationError, match="https"):
            SecurityConfig(jwt_algorithm="RS256", jwks_url=url)
    SecurityConfig(jwt_algorithm="RS256", jwks_url="http://127.0.0.1:9/jwks", development_mode=True)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"access_token_ttl": timedelta(0)}, "access_token_ttl"),
        ({"access_token_ttl": timedelta(days=2)}, "access_token_ttl"),
        ({"refresh_token_ttl": timedelta(minutes=15)}, "refresh_token_ttl"),
        ({"refresh_token_ttl": timedelta(days=91)}, "refresh_token_ttl"),
        ({"leeway": -1}, "leeway"),
        ({"leeway": 121}, "leeway"),
        ({"max_requests_per_minute": 0}, "max_requests_per_minute"),
        ({"jwks_refresh_cooldown": 0}, "jwks_refresh_cooldown"),
        ({"jwt_key_id": ""}, "jwt_key_id"),
        ({"jwt_key_id": "has space"}, "jwt_key_id"),
        ({"jwt_secrett": SECRET}, "jwt_secrett"),  # typos are errors, not ignored
    ],
)
def test_out_of_range_options_refused(options, message):
    with pytest.raises(ValidationError, match=message):
        SecurityConfig(**{"jwt_secret": SECRET, **options})


def test_config_is_immutable():
    config = SecurityConfig(jwt_secret=SECRET)
    with pytest.raises(ValidationError):
        config.jwt_algorithm = "RS256"


def test_previous_keys_are_checked(rsa_key):
    later = datetime.now(UTC) + timedelta(hours=1)
    config = SecurityConfig(
        jwt_secret=SECRET,
        previous_keys=[RetiredKey(kid="old", secret="y" * 32, accept_until=later)],
    )
    assert config.previous_keys[0].kid == "old"
    bad = [
        ([RetiredKey(kid="old", secret="y" * 31, accept_until=later)], "31 bytes"),
        ([RetiredKey(kid="old", public_key=public_pem(rsa_key), accept_until=later)], "secret"),
        (
            [
                RetiredKey(kid="old", secret="y" * 32, accept_until=later),
                RetiredKey(kid="old", secret="z" * 32, accept_until=later),
            ],
            "used twice",
        ),
        ([RetiredKey(kid="current", secret="y" * 32, accept_until=later)], "used twice"),
    ]
    for keys, message in bad:
        with pytest.raises(ValidationError, match=message):
            SecurityConfig(jwt_secret=SECRET, jwt_key_id="current", previous_keys=keys)
    with pytest.raises(ValidationError, match="public_key"):
        SecurityConfig(
            jwt_algorithm="RS256",
            jwt_private_key=private_pem(rsa_key),
            previous_keys=[RetiredKey(kid="old", secret="y" * 32, accept_until=later)],
        )
    with pytest.raises(ValidationError, match="timezone-aware"):
        RetiredKey(kid="old", secret="y" * 32, accept_until=datetime(2030, 1, 1))


def test_public_api_of_kailash_nb_security():
    for name in kailash_nb.security.__all__:
        assert getattr(kailash_nb.security, name) is not None
    from kailash_nb.middleware.auth import KailashJWTAuth  # the Kailash path

    assert KailashJWTAuth is kailash_nb.middleware.KailashJWTAuth
