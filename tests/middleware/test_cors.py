"""CorsPolicy: exact origin matching (GW-21), echo with credentials and never ``*``,
``Vary: Origin`` on every answer (GW-20)."""

from __future__ import annotations

import pytest

from kailash_nb.middleware.cors import CorsPolicy

APP = "https://app.company.com"


@pytest.fixture
def cors():
    return CorsPolicy([APP, "http://localhost:3000"])


def test_listed_origin_preflight_echoes_it_exactly_with_credentials(cors):
    headers = cors.preflight(APP, "POST", "authorization, content-type")
    assert headers == {
        "Access-Control-Allow-Origin": APP,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE",
        "Access-Control-Allow-Headers": (
            "Authorization, Content-Type, Idempotency-Key, X-Request-ID"
        ),
        "Access-Control-Max-Age": "600",
        "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    }
    assert cors.preflight("http://localhost:3000", "GET")["Access-Control-Allow-Origin"] == (
        "http://localhost:3000"
    )


@pytest.mark.parametrize(
    "origin",
    [
        "null",
        "https://app.company.com.evil.io",
        "https://evilcompany.com",
        "https://evil.app.company.com",
        "https://app.company.co",
        "http://app.company.com",  # other scheme
        "https://app.company.com:8443",  # other port
        "https://app.company.com/",
        "https://APP.company.com",
        " https://app.company.com",
        "https://app.company.com\r\nX-Injected: 1",
        "*",
        "",
        None,
    ],
)
def test_unlisted_origins_get_no_cors_headers(cors, origin):
    assert not cors.is_allowed(origin)
    assert cors.preflight(origin, "POST", "content-type") is None
    assert cors.simple(origin) == {"Vary": "Origin"}


def test_simple_response_for_a_listed_origin(cors):
    assert cors.simple(APP) == {
        "Access-Control-Allow-Origin": APP,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": "Retry-After, X-Request-ID",
        "Vary": "Origin",
    }


def test_no_origin_header_still_varies_on_origin(cors):
    assert cors.simple(None) == {"Vary": "Origin"}


@pytest.mark.parametrize(
    ("method", "request_headers"),
    [
        ("TRACE", None),
        ("post", None),  # methods are compared exactly, as browsers send them
        (None, None),
        ("POST", "content-type, x-admin-override"),
        ("POST", ["Authorization", "Cookie"]),
    ],
)
def test_preflight_refuses_unlisted_methods_and_headers(cors, method, request_headers):
    assert cors.preflight(APP, method, request_headers) is None


def test_requested_headers_are_matched_case_insensitively(cors):
    assert cors.preflight(APP, "PUT", ["AUTHORIZATION", " Content-Type ", ""]) is not None
    assert cors.preflight(APP, "DELETE", "") is not None


def test_wildcard_with_credentials_is_refused_at_construction():
    with pytest.raises(ValueError, match="allow_credentials=True"):
        CorsPolicy(["*"])
    with pytest.raises(ValueError, match="allow_credentials=True"):
        CorsPolicy([APP, "*"], allow_credentials=True)


def test_wildcard_without_credentials_answers_star_and_never_credentials():
    cors = CorsPolicy("*", allow_credentials=False)
    preflight = cors.preflight("https://anyone.example", "GET")
    assert preflight["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in preflight
    simple = cors.simple("https://anyone.example")
    assert simple["Access-Control-Allow-Origin"] == "*" and simple["Vary"] == "Origin"
    assert "Access-Control-Allow-Credentials" not in simple
    assert cors.preflight("null", "GET") is None
    with pytest.raises(ValueError, match="must stand alone"):
        CorsPolicy(["*", APP], allow_credentials=False)


def test_without_credentials_a_listed_origin_is_echoed_without_the_credentials_header():
    headers = CorsPolicy([APP], allow_credentials=False).simple(APP)
    assert headers["Access-Control-Allow-Origin"] == APP
    assert "Access-Control-Allow-Credentials" not in headers


@pytest.mark.parametrize(
    "origin",
    [
        "https://*.company.com",
        "*.company.com",
        "company.com",
        "null",
        "ftp://app.company.com",
        "https://app.company.com/path",
        "https://app.company.com?x=1",
        "https://user:pw@app.company.com",
        "https://",
        "https://app.company.com:99999",
        "https://app.company.com\n",
    ],
)
def test_configured_origins_must_be_exact_scheme_host_port(origin):
    with pytest.raises(ValueError, match="allowed origin"):
        CorsPolicy([origin])


def test_configured_origins_are_stored_as_browsers_send_them():
    cors = CorsPolicy(["HTTPS://App.Company.com:443/", "http://[::1]:80", "http://h:8080"])
    assert cors.allowed_origins == {APP, "http://[::1]", "http://h:8080"}
    assert cors.is_allowed(APP)


def test_wildcard_methods_and_headers_are_refused():
    with pytest.raises(ValueError, match="allowed_methods"):
        CorsPolicy([APP], allowed_methods=["*"])
    with pytest.raises(ValueError, match="allowed_headers"):
        CorsPolicy([APP], allowed_headers=["*"])
    with pytest.raises(ValueError, match="max_age"):
        CorsPolicy([APP], max_age=-1)


def test_no_configured_origins_means_cors_is_off():
    cors = CorsPolicy([])
    assert cors.simple(APP) == {}
    assert cors.preflight(APP, "GET") is None
