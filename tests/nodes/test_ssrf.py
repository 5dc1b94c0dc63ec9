"""WF-09: HTTP nodes reach only public addresses (``kailash_nb.nodes._ssrf``).

Real servers listen on 127.0.0.1 and 127.0.0.2 and count every request, which is how
"nothing was sent" is proven. Names are pinned with a resolver function given to the
transport (the system resolver cannot be told to answer differently twice).
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import ipaddress
import json
import re
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kailash_nb import LocalRuntime, WorkflowBuilder
from kailash_nb.middleware.schemas import CALLER_FORBIDDEN_KEYS, settable_inputs
from kailash_nb.nodes._ssrf import (
    ALLOW_NETWORKS_ENV,
    DestinationNotAllowedError,
    DestinationPolicy,
    async_guarded_transport,
    guarded_transport,
)
from kailash_nb.nodes.api import AsyncHTTPRequestNode, HTTPRequestNode
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    NodeExecutionError,
    NodeValidationError,
    WorkflowValidationError,
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: str) -> None:
        super().__init__((address, 0), _Handler)
        self.calls: collections.Counter[str] = collections.Counter()
        self.hosts: list[str] = []
        self.server_names: list[str | None] = []

    @property
    def port(self) -> int:
        return self.server_address[1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.calls[self.path] += 1
        self.server.hosts.append(self.headers.get("Host", ""))
        if self.path.startswith("/to/"):
            self.send_response(302)
            self.send_header("Location", "http://" + self.path[len("/to/") :])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"host": self.headers.get("Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(address: str, tls: ssl.SSLContext | None = None) -> Iterator[_Server]:
    httpd = _Server(address)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def server() -> Iterator[_Server]:
    yield from _serve("127.0.0.1")


@pytest.fixture
def second_server() -> Iterator[_Server]:
    """Another loopback address: what a redirect or a rebinding name aims at."""
    yield from _serve("127.0.0.2")


@pytest.fixture(params=[HTTPRequestNode, AsyncHTTPRequestNode], ids=["sync", "async"])
def node_class(request):
    return request.param


def _execute(node: HTTPRequestNode | AsyncHTTPRequestNode) -> dict[str, Any]:
    if isinstance(node, AsyncHTTPRequestNode):
        return asyncio.run(node.execute_async())
    return node.execute()


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("localhost", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("2130706433", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("10.0.0.1", "private (RFC 1918)"),
        ("192.168.1.1", "private (RFC 1918)"),
        ("[fe80::1]", "link-local"),
        ("[fc00::1]", "unique-local"),
        ("[::1]", "loopback"),
        ("[::]", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("[ff02::1]", "multicast"),
    ],
)
def test_wf09_internal_destinations_are_refused_before_sending(server, node_class, host, reason):
    """WF-09: each internal address (or a name/number resolving to one) is refused with a
    typed error naming the host and why; the loopback server sees no request."""
    node = node_class(url=f"http://{host}:{server.port}/secret", retries=3, backoff_factor=1)
    started = time.perf_counter()
    with pytest.raises(DestinationNotAllowedError) as refused:
        _execute(node)
    assert time.perf_counter() - started < 1, "a refusal is not retried"
    message = str(refused.value)
    assert f"host {host.strip('[]')!r}" in message and reason in message
    assert "nothing was sent" in message and "KAILASH_NB_HTTP_ALLOW_NETWORKS" in message
    assert isinstance(refused.value, NodeExecutionError)
    assert refused.value.host == host.strip("[]") and reason in refused.value.reason
    assert sum(server.calls.values()) == 0


def test_wf09_allow_private_network_reaches_internal_services_only(server, node_class):
    """WF-09: the workflow author's ``allow_private_network=True`` opens loopback and
    private networks, but not link-local (cloud metadata) addresses."""
    allowed = node_class(url=f"http://localhost:{server.port}/ok", allow_private_network=True)
    assert _execute(allowed)["content"] == {"host": f"localhost:{server.port}"}
    metadata = node_class(url="http://169.254.169.254/latest/", allow_private_network=True)
    with pytest.raises(DestinationNotAllowedError, match="link-local") as refused:
        _execute(metadata)
    assert "allow_private_network=True" not in str(refused.value)


def test_wf09_allow_private_network_is_config_only(server):
    """WF-09: no caller sets ``allow_private_network``: it is not an input of the node,
    the gateway never lists it as settable, and a non-bool is a configuration error."""
    with pytest.raises(NodeValidationError, match="has no input 'allow_private_network'"):
        HTTPRequestNode(url=f"http://127.0.0.1:{server.port}/").execute(allow_private_network=True)
    builder = WorkflowBuilder()
    builder.add_node("HTTPRequestNode", "fetch", {"url": f"http://127.0.0.1:{server.port}/"})
    workflow = builder.build()
    assert "allow_private_network" not in settable_inputs(workflow)["fetch"]
    assert "allow_private_network" in CALLER_FORBIDDEN_KEYS
    with pytest.raises(WorkflowValidationError, match="has no input 'allow_private_network'"):
        LocalRuntime().execute(workflow, parameters={"fetch": {"allow_private_network": True}})
    assert sum(server.calls.values()) == 0
    with pytest.raises(NodeConfigurationError, match="allow_private_network must be True or"):
        HTTPRequestNode(url="https://example.com/", allow_private_network="yes")


def test_wf09_environment_allowlist_opens_listed_networks_only(
    server, second_server, node_class, monkeypatch
):
    """WF-09: ``KAILASH_NB_HTTP_ALLOW_NETWORKS`` allows the listed networks, nothing else;
    a malformed entry is a clear configuration error."""
    monkeypatch.setenv(ALLOW_NETWORKS_ENV, " 127.0.0.1/32 , 192.0.2.0/24")
    assert _execute(node_class(url=f"http://127.0.0.1:{server.port}/ok"))["status_code"] == 200
    with pytest.raises(DestinationNotAllowedError, match=re.escape("'127.0.0.2' is 127.0.0.2")):
        _execute(node_class(url=f"http://127.0.0.2:{second_server.port}/ok"))
    assert sum(second_server.calls.values()) == 0
    monkeypatch.setenv(ALLOW_NETWORKS_ENV, "127.0.0.1/32, not-a-network")
    with pytest.raises(NodeConfigurationError, match="'not-a-network' is not a network"):
        _execute(node_class(url=f"http://127.0.0.1:{server.port}/ok"))


def test_wf09_each_redirect_hop_is_checked(server, second_server, node_class, monkeypatch):
    """WF-09: an allowed server redirecting to an internal address: the hop is refused
    and the internal server never sees a request."""
    monkeypatch.setenv(ALLOW_NETWORKS_ENV, "127.0.0.1/32")
    target = f"127.0.0.2:{second_server.port}/admin"
    node = node_class(url=f"http://127.0.0.1:{server.port}/to/{target}", id="hop")
    with pytest.raises(DestinationNotAllowedError, match=re.escape("host '127.0.0.2'")) as refused:
        _execute(node)
    assert refused.value.address == "127.0.0.2"
    assert server.calls[f"/to/{target}"] == 1
    assert sum(second_server.calls.values()) == 0
    # The same redirect within an allowed network is followed.
    monkeypatch.setenv(ALLOW_NETWORKS_ENV, "127.0.0.0/30")
    assert _execute(node)["content"] == {"host": f"127.0.0.2:{second_server.port}"}


class _Rebinding:
    """A DNS answer that changes between lookups, as an attacker's name server does."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


def test_wf09_the_checked_address_is_the_one_connected(server, second_server, monkeypatch):
    """WF-09 (DNS rebinding): the name is resolved once per connection and the socket
    goes to the address that passed the check, keeping the name in ``Host``; a second
    answer pointing inside is refused, as is an answer mixing public and internal."""
    monkeypatch.setenv(ALLOW_NETWORKS_ENV, "127.0.0.1/32")
    resolver = _Rebinding(["127.0.0.1"], ["127.0.0.2"])
    policy = DestinationPolicy()
    with httpx.Client(transport=guarded_transport(policy, resolver)) as client:
        response = client.get(f"http://rebind.example:{server.port}/first")
        assert response.json() == {"host": f"rebind.example:{server.port}"}
    assert resolver.lookups == ["rebind.example"]
    with (
        httpx.Client(transport=guarded_transport(policy, resolver)) as client,
        pytest.raises(DestinationNotAllowedError, match=re.escape("'rebind.example' resolves to")),
    ):
        client.get(f"http://rebind.example:{second_server.port}/second")
    assert sum(second_server.calls.values()) == 0
    mixed = _Rebinding(["127.0.0.1", "10.0.0.7"])
    with (
        httpx.Client(transport=guarded_transport(policy, mixed)) as client,
        pytest.raises(DestinationNotAllowedError, match=re.escape("resolves to 10.0.0.7")),
    ):
        client.get(f"http://mixed.example:{server.port}/mixed")
    assert server.calls["/mixed"] == 0


def test_wf09_async_transport_pins_the_checked_address(server, second_server, monkeypatch):
    """WF-09: the async transport resolves once, connects to the checked address."""
    monkeypatch.setenv(ALLOW_NETWORKS_ENV, "127.0.0.1/32")
    resolver = _Rebinding(["127.0.0.1"], ["127.0.0.2"])

    async def fetch(port: int) -> httpx.Response:
        transport = async_guarded_transport(DestinationPolicy(), resolver)
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.get(f"http://rebind.example:{port}/async")

    assert asyncio.run(fetch(server.port)).json() == {"host": f"rebind.example:{server.port}"}
    with pytest.raises(DestinationNotAllowedError, match=re.escape("resolves to 127.0.0.2")):
        asyncio.run(fetch(second_server.port))
    assert resolver.lookups == ["rebind.example", "rebind.example"]
    assert sum(second_server.calls.values()) == 0


def _certificates(tmp_path, name: str) -> tuple[str, ssl.SSLContext]:
    """A CA file and a server TLS context whose certificate is for ``name`` only."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kailash_nb test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = tmp_path / "server.pem"
    chain.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + leaf.public_bytes(serialization.Encoding.PEM)
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain)
    return str(ca_file), context


def test_wf09_tls_keeps_the_names_sni_and_certificate_check(tmp_path, monkeypatch):
    """WF-09: connecting to the pinned address still sends the URL's name as TLS SNI and
    verifies the certificate against that name."""
    ca_file, context = _certificates(tmp_path, "pinned.example")
    seen_names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: seen_names.append(name)
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    monkeypatch.setenv(ALLOW_NETWORKS_ENV, "127.0.0.1/32")
    for tls_server in _serve("127.0.0.1", context):
        pinned = _Rebinding(["127.0.0.1"])
        with httpx.Client(transport=guarded_transport(DestinationPolicy(), pinned)) as client:
            response = client.get(f"https://pinned.example:{tls_server.port}/tls")
        assert response.json() == {"host": f"pinned.example:{tls_server.port}"}
        assert seen_names == ["pinned.example"]
        wrong = _Rebinding(["127.0.0.1"])
        with (
            httpx.Client(transport=guarded_transport(DestinationPolicy(), wrong)) as client,
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            client.get(f"https://other.example:{tls_server.port}/tls")


def test_wf09_public_addresses_pass_the_policy():
    """WF-09: the policy is a deny-list of internal ranges, not an allow-list: public
    IPv4/IPv6 addresses and IPv4-mapped public addresses pass."""
    policy = DestinationPolicy()
    policy.check("example.com", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
    policy.check("mapped", ["::ffff:8.8.8.8"])
    for internal in ("64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "198.18.0.1", "255.255.255.255"):
        with pytest.raises(DestinationNotAllowedError):
            policy.check("x", [internal])
    assert ipaddress.ip_address("64:ff9b::a9fe:a9fe")  # NAT64 of 169.254.169.254


def test_allow_loopback_opens_loopback_only():
    """The Ollama provider's policy: this machine, and nothing else internal."""
    policy = DestinationPolicy(allow_loopback=True)
    policy.check("localhost", ["127.0.0.1", "::1"])
    policy.check("mapped", ["::ffff:127.0.0.1"])
    for address, reason in (
        ("10.1.2.3", "private"),
        ("169.254.169.254", "link-local"),
        ("fd00::1", "unique-local"),
    ):
        with pytest.raises(DestinationNotAllowedError, match=reason):
            policy.check("internal", [address])
    with pytest.raises(DestinationNotAllowedError, match="loopback"):
        DestinationPolicy().check("localhost", ["127.0.0.1"])
