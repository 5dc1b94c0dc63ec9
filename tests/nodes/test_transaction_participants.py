"""The ``"http"`` participant kind against a real ``ParticipantService`` on 127.0.0.1.

Each test gets its own service (a Tornado server on a free loopback port, its SQLite
ledger in a temporary directory). The service's ledger is what took effect; its
``calls()`` are every request it answered, which is how retries are counted. Nothing
here stands in for HTTP: every call crosses a real socket.
"""

from __future__ import annotations

import logging
import socket

import httpx
import pytest

from kailash_nb.nodes.transaction import (
    HttpParticipant,
    NodeParticipant,
    ParticipantConfigurationError,
)
from kailash_nb.transactions.participants import (
    ParticipantError,
    ParticipantSpec,
    PermanentParticipantError,
    StepCall,
    Vote,
    resolve,
)
from kailash_nb.transactions.service import FailureInjection, ParticipantService


@pytest.fixture
def service():
    with ParticipantService("payments") as running:
        yield running


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def participant(service: ParticipantService, **options) -> HttpParticipant:
    """The service as an http participant, without backoff waits unless asked."""
    built = resolve(service.participant_spec(**{"backoff_factor": 0.0, **options}))
    assert isinstance(built, HttpParticipant)
    return built


def call(step_id: str = "tx-1/payments", transaction_id: str = "tx-1", **context) -> StepCall:
    return StepCall(transaction_id, step_id, "payments", context)


def outcomes(service: ParticipantService) -> list[tuple[str, str, str]]:
    return [(e["step_id"], e["operation"], e["outcome"]) for e in service.entries()]


# -- kinds ---------------------------------------------------------------------------


def test_importing_the_package_registers_the_http_and_node_kinds():
    http = resolve(ParticipantSpec("a", "http", options={"endpoint": "https://pay.example/tx"}))
    node = resolve(
        ParticipantSpec(
            "b",
            "node",
            options={"execute": {"node_type": "PythonCodeNode", "config": {"code": "result = 1"}}},
        )
    )
    assert isinstance(http, HttpParticipant)
    assert http.endpoint == "https://pay.example/tx"
    assert isinstance(node, NodeParticipant)


# -- two-phase commit ----------------------------------------------------------------


def test_prepare_then_commit_takes_effect_once_each(service):
    payments = participant(service)
    step = call(amount=12)
    assert payments.prepare(step) is Vote.PREPARED
    payments.commit(step)
    assert outcomes(service) == [
        ("tx-1/payments", "prepare", "prepared"),
        ("tx-1/payments", "commit", "committed"),
    ]
    entry = service.entries()[0]
    assert (entry["transaction_id"], entry["participant_id"], entry["context"]) == (
        "tx-1",
        "payments",
        {"amount": 12},
    )


def test_an_abort_vote_is_abort_and_the_step_cannot_then_commit(service, caplog):
    service.faults.abort_vote("tx-1/payments")
    payments = participant(service)
    with caplog.at_level(logging.WARNING, "kailash_nb.nodes.transaction"):
        assert payments.prepare(call()) is Vote.ABORT
    assert caplog.records == []
    with pytest.raises(PermanentParticipantError, match="409"):
        payments.commit(call())
    payments.abort(call())
    assert outcomes(service) == [
        ("tx-1/payments", "prepare", "vote_abort"),
        ("tx-1/payments", "abort", "aborted"),
    ]


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (200, "{}", "application/json"),
        (200, '{"vote": "maybe"}', "application/json"),
        (200, '{"vote": "PREPARED"}', "application/json"),
        (200, '{"vote": null}', "application/json"),
        (200, '"prepared"', "application/json"),
        (200, '[{"vote": "prepared"}]', "application/json"),
        (200, "prepared", "text/plain"),
        (200, "<html>ok</html>", "text/html"),
        (200, '{"vote": "prepared"', "application/json"),
        (200, "", "application/json"),
        (204, "", "application/json"),
    ],
    ids=[
        "no-vote",
        "unknown-vote",
        "wrong-case",
        "null-vote",
        "json-string",
        "json-list",
        "plain-text",
        "html",
        "truncated-json",
        "empty-200",
        "204",
    ],
)
def test_dtm_07_no_vote_an_unknown_vote_or_garbage_counts_as_abort(
    service, caplog, status, body, content_type
):
    service.faults.answer("prepare", None, status, body, content_type=content_type)
    with caplog.at_level(logging.WARNING, "kailash_nb.nodes.transaction"):
        assert participant(service).prepare(call()) is Vote.ABORT
    assert service.entries() == []
    assert "answered prepare of step 'tx-1/payments' without a vote" in caplog.text


def test_abort_before_prepare_leaves_a_tombstone_and_a_late_prepare_votes_abort(service):
    payments = participant(service)
    payments.abort(call())
    assert payments.prepare(call()) is Vote.ABORT
    assert outcomes(service) == [("tx-1/payments", "abort", "tombstone")]


def test_dtm_06_a_prepare_that_times_out_arrives_late_and_votes_abort(service):
    service.faults.stall("prepare", "tx-1/payments", 0.4)
    with pytest.raises(ParticipantError, match="timed out") as raised:
        participant(service, timeout=0.1, retries=0).prepare(call())
    assert not isinstance(raised.value, PermanentParticipantError)
    participant(service).abort(call())
    # Asked again, with time to wait out the stall: the late first prepare is answered
    # before this one (its stall started earlier), and both find the step aborted.
    assert participant(service, timeout=5).prepare(call()) is Vote.ABORT
    prepares = [c for c in service.calls() if c["operation"] == "prepare"]
    assert [c["status"] for c in prepares] == [200, 200]
    assert outcomes(service) == [("tx-1/payments", "abort", "tombstone")]


def test_a_prepare_repeated_after_the_abort_votes_abort(service):
    payments = participant(service)
    assert payments.prepare(call()) is Vote.PREPARED
    payments.abort(call())
    assert payments.prepare(call()) is Vote.ABORT
    assert outcomes(service) == [
        ("tx-1/payments", "prepare", "prepared"),
        ("tx-1/payments", "abort", "aborted"),
    ]


def test_commit_of_an_unprepared_step_and_abort_of_a_committed_one_are_refused(service):
    payments = participant(service)
    with pytest.raises(PermanentParticipantError, match="is not prepared"):
        payments.commit(call())
    payments.prepare(call())
    payments.commit(call())
    with pytest.raises(PermanentParticipantError, match="is committed"):
        payments.abort(call())


# -- sagas ---------------------------------------------------------------------------


def test_execute_returns_the_result_member_of_the_answer(service):
    result = participant(service).execute(call("tx-1/charge", amount=5))
    assert result == {"service": "payments", "step_id": "tx-1/charge", "context": {"amount": 5}}


def test_execute_then_compensate(service):
    payments = participant(service)
    payments.execute(call("tx-1/charge"))
    payments.compensate(call("tx-1/charge"))
    with pytest.raises(PermanentParticipantError, match="409"):
        payments.execute(call("tx-1/charge"))
    assert outcomes(service) == [
        ("tx-1/charge", "execute", "executed"),
        ("tx-1/charge", "compensate", "compensated"),
    ]


def test_dtm_14_compensate_before_execute_leaves_a_tombstone_and_a_late_execute_is_refused(
    service,
):
    payments = participant(service)
    payments.compensate(call("tx-1/charge"))
    with pytest.raises(PermanentParticipantError, match=r"409.*compensated \(tombstone\)"):
        payments.execute(call("tx-1/charge"))
    payments.compensate(call("tx-1/charge"))
    assert outcomes(service) == [("tx-1/charge", "compensate", "tombstone")]


@pytest.mark.parametrize("body", ["not json", '["a list"]', '"text"', ""])
def test_an_execute_answer_that_is_not_a_json_object_is_permanent(service, body):
    service.faults.answer("execute", None, 200, body)
    with pytest.raises(PermanentParticipantError, match="not a JSON object"):
        participant(service).execute(call("tx-1/charge"))


# -- deduplication by step id ---------------------------------------------------------


def test_every_operation_repeated_with_the_same_step_id_takes_effect_once(service):
    payments = participant(service)
    for _ in range(3):
        assert payments.prepare(call()) is Vote.PREPARED
    for _ in range(3):
        payments.commit(call())
    results = [payments.execute(call("tx-1/charge", amount=1)) for _ in range(3)]
    for _ in range(3):
        payments.compensate(call("tx-1/charge"))
    assert results[0] == results[1] == results[2]
    assert outcomes(service) == [
        ("tx-1/payments", "prepare", "prepared"),
        ("tx-1/payments", "commit", "committed"),
        ("tx-1/charge", "execute", "executed"),
        ("tx-1/charge", "compensate", "compensated"),
    ]
    assert len(service.calls()) == 12


def test_the_same_step_id_in_another_transaction_is_another_step(service):
    payments = participant(service)
    payments.execute(call("charge", "tx-1"))
    payments.execute(call("charge", "tx-2"))
    assert [(e["transaction_id"], e["operation"]) for e in service.entries()] == [
        ("tx-1", "execute"),
        ("tx-2", "execute"),
    ]


def test_the_ledger_outlives_a_restart_and_still_deduplicates(tmp_path):
    ledger = tmp_path / "payments.sqlite3"
    with ParticipantService("payments", ledger) as first:
        first_result = participant(first).execute(call("tx-1/charge"))
    with ParticipantService("payments", ledger) as second:
        assert participant(second).execute(call("tx-1/charge")) == first_result
        assert outcomes(second) == [("tx-1/charge", "execute", "executed")]


# -- failures: transient or permanent ---------------------------------------------------


def test_transient_failures_are_retried_until_one_succeeds(service):
    service.faults.fail("commit", "tx-1/payments", times=2, status=503)
    payments = participant(service, retries=2)
    payments.prepare(call())
    payments.commit(call())
    commits = [c["status"] for c in service.calls() if c["operation"] == "commit"]
    assert commits == [503, 503, 200]
    assert outcomes(service)[-1] == ("tx-1/payments", "commit", "committed")


def test_retries_zero_sends_once(service):
    service.faults.fail("execute", None, times=1, status=503)
    with pytest.raises(ParticipantError, match="answered 503"):
        participant(service, retries=0).execute(call("tx-1/charge"))
    assert len(service.calls()) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_5xx_408_and_429_beyond_the_retries_are_transient(service, status):
    service.faults.fail("commit", None, status=status)
    with pytest.raises(ParticipantError, match=f"answered {status}") as raised:
        participant(service, retries=1).commit(call())
    assert not isinstance(raised.value, PermanentParticipantError)
    expected_attempts = 1 if status == 408 else 2
    assert len(service.calls()) == expected_attempts
    assert f"after {expected_attempts} attempt(s)" in str(raised.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422, 501, 505, 307])
def test_other_4xx_501_505_and_redirects_are_permanent_and_not_retried(service, status):
    service.faults.fail("execute", None, status=status)
    with pytest.raises(PermanentParticipantError, match=f"answered {status}"):
        participant(service, retries=3).execute(call("tx-1/charge"))
    assert len(service.calls()) == 1


def test_the_services_own_failure_injection_for_prepare_and_execute():
    with ParticipantService("shipping", fail_prepare=["p"], fail_execute=["e"]) as shipping:
        shipping_participant = participant(shipping)
        with pytest.raises(PermanentParticipantError, match="422"):
            shipping_participant.prepare(call("p"))
        with pytest.raises(PermanentParticipantError, match="422"):
            shipping_participant.execute(call("e"))
        assert shipping_participant.execute(call("other"))["step_id"] == "other"
        assert outcomes(shipping) == [("other", "execute", "executed")]


def test_a_timeout_is_transient_and_each_attempt_waits_the_timeout(service):
    service.faults.stall("execute", None, 5)
    with pytest.raises(ParticipantError, match=r"after 2 attempt\(s\): timed out") as raised:
        participant(service, timeout=0.1, retries=1).execute(call("tx-1/charge"))
    assert not isinstance(raised.value, PermanentParticipantError)


def test_an_unreachable_endpoint_is_transient(closed_port):
    spec = ParticipantSpec(
        "payments",
        "http",
        options={
            "endpoint": f"http://127.0.0.1:{closed_port}",
            "allow_private_network": True,
            "retries": 1,
            "backoff_factor": 0.0,
        },
    )
    connect_failed = r"after 2 attempt\(s\): could not connect"
    with pytest.raises(ParticipantError, match=connect_failed) as raised:
        resolve(spec).prepare(call())
    assert not isinstance(raised.value, PermanentParticipantError)


def test_credentials_in_the_endpoint_stay_out_of_messages(closed_port):
    spec = ParticipantSpec(
        "payments",
        "http",
        options={
            "endpoint": f"http://admin:s3cret-pw@127.0.0.1:{closed_port}/tx",
            "allow_private_network": True,
            "retries": 0,
        },
    )
    with pytest.raises(ParticipantError) as raised:
        resolve(spec).commit(call())
    assert "s3cret-pw" not in str(raised.value)
    assert "admin" not in str(raised.value)
    assert f"127.0.0.1:{closed_port}/tx/commit" in str(raised.value)


# -- destinations ----------------------------------------------------------------------


def test_a_private_address_is_refused_by_default_and_nothing_is_sent(service):
    spec = ParticipantSpec("payments", "http", options={"endpoint": service.endpoint})
    with pytest.raises(PermanentParticipantError, match="refused, nothing was sent") as raised:
        resolve(spec).prepare(call())
    assert "a loopback address" in str(raised.value)
    assert "allow_private_network=True" in str(raised.value)
    assert service.calls() == []
    assert service.entries() == []


def test_allow_private_network_reaches_the_loopback_service(service):
    spec = ParticipantSpec(
        "payments",
        "http",
        options={"endpoint": service.endpoint, "allow_private_network": True},
    )
    assert resolve(spec).prepare(call()) is Vote.PREPARED


def test_a_name_resolving_to_loopback_is_refused_too(service):
    spec = ParticipantSpec(
        "payments", "http", options={"endpoint": f"http://localhost:{service.port}"}
    )
    with pytest.raises(PermanentParticipantError, match="loopback"):
        resolve(spec).execute(call())
    assert service.calls() == []


# -- options and calls -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({}, "'endpoint'"),
        ({"endpoint": ""}, "'endpoint'"),
        ({"endpoint": "ftp://pay.example"}, "not an http"),
        ({"endpoint": "http://"}, "not an http"),
        ({"endpoint": "https://pay.example/tx?key=1"}, "query or fragment"),
        ({"endpoint": "https://pay.example", "timeout": 0}, "timeout"),
        ({"endpoint": "https://pay.example", "timeout": "10"}, "timeout"),
        ({"endpoint": "https://pay.example", "retries": -1}, "retries"),
        ({"endpoint": "https://pay.example", "retries": True}, "retries"),
        ({"endpoint": "https://pay.example", "backoff_factor": -0.5}, "backoff_factor"),
        ({"endpoint": "https://pay.example", "allow_private_network": "yes"}, "allow_private"),
        ({"endpoint": "https://pay.example", "timout": 3}, "did you mean 'timeout'"),
    ],
)
def test_unusable_options_are_refused_when_the_participant_is_built(options, problem):
    with pytest.raises(ParticipantConfigurationError, match=problem) as raised:
        resolve(ParticipantSpec("payments", "http", options=options))
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, PermanentParticipantError)


def test_a_context_that_is_not_json_is_permanent_and_not_sent(service):
    with pytest.raises(PermanentParticipantError, match="cannot be sent as JSON"):
        participant(service).execute(call("tx-1/charge", tags={"a", "b"}))
    assert service.calls() == []


def test_the_request_body_is_the_step_calls_payload(service):
    participant(service).execute(
        StepCall("tx-9", "tx-9/charge", "payments", {"amount": 3, "currency": "EUR"}, attempt=4)
    )
    (entry,) = service.entries("tx-9")
    assert (entry["step_id"], entry["participant_id"], entry["context"]) == (
        "tx-9/charge",
        "payments",
        {"amount": 3, "currency": "EUR"},
    )
    assert service.calls()[0]["attempt"] == 4


# -- the service on its own --------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"transaction_id": "t", "step_id": "s", "participant_id": "p", "context": {}}',
        b'{"transaction_id": "", "step_id": "s", "participant_id": "p", "context": {},'
        b' "attempt": 1}',
        b'{"transaction_id": "t", "step_id": "s", "participant_id": "p", "context": [],'
        b' "attempt": 1}',
    ],
)
def test_the_service_answers_400_to_a_malformed_call(service, body):
    response = httpx.post(f"{service.endpoint}/execute", content=body)
    assert response.status_code == 400
    assert "error" in response.json()
    assert service.entries() == []


def test_the_service_serves_only_the_five_operations(service):
    assert httpx.post(f"{service.endpoint}/delete", json={}).status_code == 404
    assert httpx.get(f"{service.endpoint}/prepare").status_code == 405


def test_a_duplicate_answer_says_so(service):
    payload = call("tx-1/charge").payload()
    first = httpx.post(f"{service.endpoint}/execute", json=payload).json()
    second = httpx.post(f"{service.endpoint}/execute", json=payload).json()
    assert "duplicate" not in first
    assert second == {**first, "duplicate": True}


def test_failure_injection_is_checked():
    faults = FailureInjection()
    with pytest.raises(ValueError, match="unknown operation"):
        faults.fail("delete", "s")
    with pytest.raises(ValueError, match="times"):
        faults.fail("commit", "s", times=0)


def test_stop_answers_a_stalled_call_and_ends_the_thread():
    service = ParticipantService("slow").start()
    service.faults.stall("prepare", None, 30)
    port = service.port
    with httpx.Client() as client:
        pending = client.build_request(
            "POST", f"{service.endpoint}/prepare", json=call().payload(), timeout=0.2
        )
        with pytest.raises(httpx.ReadTimeout):
            client.send(pending)
    service.stop()
    service.stop()
    assert service.entries() == []
    with pytest.raises(RuntimeError, match="not started"):
        _ = service.endpoint
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"http://127.0.0.1:{port}/prepare", json=call().payload())


def test_three_services_side_by_side_each_keep_their_own_ledger():
    with (
        ParticipantService("orders") as orders,
        ParticipantService("payments", vote_abort=["tx-1/payments"]) as payments,
        ParticipantService("shipping") as shipping,
    ):
        assert len({orders.port, payments.port, shipping.port}) == 3
        votes = {
            service.name: participant(service).prepare(
                StepCall("tx-1", f"tx-1/{service.name}", service.name, {})
            )
            for service in (orders, payments, shipping)
        }
        assert votes == {"orders": Vote.PREPARED, "payments": Vote.ABORT, "shipping": Vote.PREPARED}
        for service in (orders, payments, shipping):
            participant(service).abort(StepCall("tx-1", f"tx-1/{service.name}", service.name, {}))
        assert [outcomes(service) for service in (orders, payments, shipping)] == [
            [("tx-1/orders", "prepare", "prepared"), ("tx-1/orders", "abort", "aborted")],
            [("tx-1/payments", "prepare", "vote_abort"), ("tx-1/payments", "abort", "aborted")],
            [("tx-1/shipping", "prepare", "prepared"), ("tx-1/shipping", "abort", "aborted")],
        ]


def test_a_cloud_metadata_address_stays_refused_with_allow_private_network():
    spec = ParticipantSpec(
        "payments",
        "http",
        options={"endpoint": "http://169.254.169.254/tx", "allow_private_network": True},
    )
    with pytest.raises(PermanentParticipantError, match="link-local") as raised:
        resolve(spec).prepare(call())
    assert "KAILASH_NB_HTTP_ALLOW_NETWORKS" in str(raised.value)
    assert "set allow_private_network" not in str(raised.value)
