"""``EnterpriseLogger``: the seed's block, the JSON record, context ids, metrics, the
hash-chained compliance stream and PII redaction in tracebacks."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import pytest

from kailash_nb.logging import (
    ComplianceChainError,
    EnterpriseLogger,
    log_context,
    verify_compliance_log,
)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_seed_enterprise_logging_block(capsys):
    # The seed's block with only the import renamed; it logs to stderr.
    import logging

    from kailash_nb.logging import EnterpriseLogger

    # Structured logging for enterprises
    logger = EnterpriseLogger(
        level=logging.INFO,
        format="json",                 # Structured logs for parsing
        include_metrics=True,
        compliance_logging=True,       # For audit requirements
        pii_redaction=True            # Automatic PII protection
    )  # fmt: skip

    logger.info("signup", email="jane@example.com", card="4111 1111 1111 1111")
    logger.debug("not logged at INFO")
    logger.warning("payment from 203.0.113.9 retried", order_id="ORD-2024-000123")
    err = capsys.readouterr().err
    records = [json.loads(line) for line in err.splitlines()]
    assert [r["level"] for r in records] == ["INFO", "WARNING"]  # structured JSON
    assert records[0]["email"] == "<redacted:email>"  # PII redaction
    assert records[0]["card"] == "<redacted:credit_card>"
    assert records[1]["message"] == "payment from <redacted:ip_address> retried"
    assert records[1]["order_id"] == "ORD-2024-000123"
    assert records[1]["metrics"]["rss_bytes"] > 0  # metrics
    assert records[1]["metrics"]["records"] == {"INFO": 1, "WARNING": 1}
    assert verify_compliance_log(err.splitlines()).ok  # compliance stream
    assert [r["chain"]["seq"] for r in records] == [1, 2]


def test_record_layout_fields_bind_and_context():
    stream = io.StringIO()
    logger = EnterpriseLogger(level="DEBUG", stream=stream, name="orders")
    bound = logger.bind(component="billing", attempt=1)
    with log_context(run_id="run-1", request_id="req-9"):
        bound.debug("charged %s", "ORD-1", amount=12.5, extra={"currency": "EUR"})
    logger.info("plain")
    first, second = lines(stream)
    assert first["level"] == "DEBUG" and first["logger"] == "orders"
    assert first["message"] == "charged ORD-1"
    assert first["timestamp"].endswith("Z") and "T" in first["timestamp"]
    assert {k: first[k] for k in ("run_id", "request_id", "component", "attempt", "amount")} == {
        "run_id": "run-1",
        "request_id": "req-9",
        "component": "billing",
        "attempt": 1,
        "amount": 12.5,
    }
    assert first["currency"] == "EUR"
    assert "component" not in second and "run_id" not in second and "metrics" not in second


def test_log_context_refuses_unknown_ids():
    with pytest.raises(TypeError, match="run_id"), log_context(flow="x"):
        pass


def test_exception_type_and_redacted_traceback():
    stream = io.StringIO()
    logger = EnterpriseLogger(stream=stream, pii_redaction=True)
    try:
        raise KeyError("jane@example.com")
    except KeyError:
        logger.exception("lookup failed for %s", "078-05-1120")
    (record,) = lines(stream)
    assert record["level"] == "ERROR"
    assert record["message"] == "lookup failed for <redacted:us_ssn>"
    assert record["exception"]["type"] == "builtins.KeyError"
    assert "Traceback (most recent call last)" in record["exception"]["traceback"]
    assert "jane@example.com" not in stream.getvalue()


def test_text_format_and_logger_api():
    stream = io.StringIO()
    logger = EnterpriseLogger(level=logging.WARNING, format="text", stream=stream)
    assert isinstance(logger, logging.LoggerAdapter)
    assert not logger.isEnabledFor(logging.INFO) and logger.isEnabledFor(logging.ERROR)
    logger.log(logging.CRITICAL, "disk full", volume="/data")
    logger.setLevel(logging.INFO)
    logger.info("back")
    text = stream.getvalue().splitlines()
    assert 'CRITICAL kailash_nb: disk full volume="/data"' in text[0]
    assert text[1].endswith("INFO     kailash_nb: back")


def test_extra_handlers_get_the_same_records():
    collected = io.StringIO()
    logger = EnterpriseLogger(stream=io.StringIO(), handlers=[logging.StreamHandler(collected)])
    logger.info("x", k=1)
    assert lines(collected)[0]["k"] == 1


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="format"):
        EnterpriseLogger(format="xml")
    with pytest.raises(ValueError, match="level"):
        EnterpriseLogger(level="LOUD")


def test_compliance_file_is_chained_continued_and_tamper_evident(tmp_path):
    path = tmp_path / "compliance.jsonl"
    main = io.StringIO()
    logger = EnterpriseLogger(
        stream=main, compliance_logging=True, compliance_sink=path, pii_redaction=True
    )
    logger.info("one", email="a@example.com")
    logger.warning("two")
    logger.close()
    assert "chain" not in lines(main)[0]  # the chain lives in the compliance file
    again = EnterpriseLogger(stream=io.StringIO(), compliance_logging=True, compliance_sink=path)
    again.error("three")
    again.close()
    written = path.read_text().splitlines()
    assert verify_compliance_log(written).records == 3
    assert "a@example.com" not in path.read_text()

    edited = list(written)
    edited[1] = edited[1].replace('"two"', '"TWO"')
    assert verify_compliance_log(edited).line == 2
    assert "does not match" in verify_compliance_log(edited).message
    deleted = [written[0], written[2]]
    assert "sequence number 3, expected 2" in verify_compliance_log(deleted).message
    swapped = [written[1], written[0], written[2]]
    assert not verify_compliance_log(swapped)


def test_compliance_file_that_is_not_a_chain_is_refused(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("not json\n")
    with pytest.raises(ComplianceChainError, match="not a chained compliance record"):
        EnterpriseLogger(compliance_logging=True, compliance_sink=path)


def test_the_package_does_not_shadow_stdlib_logging():
    code = (
        "import logging, kailash_nb.logging, kailash_nb.logging.enterprise as e, "
        "kailash_nb.store.audit_trail\n"
        "assert e.logging is logging and logging.__file__.endswith('logging/__init__.py')\n"
        "assert 'site-packages' not in logging.__file__ and 'kailash_nb' not in logging.__file__\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_secret_fields_are_masked_even_without_pii_redaction():
    stream = io.StringIO()
    EnterpriseLogger(stream=stream).info("login", password="hunter2", user="alice")
    (record,) = lines(stream)
    assert record["password"] == "<redacted>" and record["user"] == "alice"


def test_run_counters_join_the_metrics():
    stream = io.StringIO()
    counters = {"workflows_started": 3, "workflows_completed": 2}
    logger = EnterpriseLogger(stream=stream, include_metrics=True, run_metrics=lambda: counters)
    logger.info("tick")
    assert lines(stream)[0]["metrics"]["runs"] == counters
