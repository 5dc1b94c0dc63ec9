"""``kailash-nb audit verify|show``: in-process ``main([...])`` on a store written by
:class:`AuditTrail`, and the real entry point in a subprocess for the exit code and the
one error line."""

from __future__ import annotations

import json

import pytest
from _run_cli import cli_env, one_error_line, run_cli

from kailash_nb.cli import main
from kailash_nb.store.audit_trail import AUDIT_KEY_ENV, AuditRecord, AuditTrail
from kailash_nb.store.database import get_engine
from kailash_nb.store.schema import audit_records

KEY = "a key for the audit checkpoints, 32+ bytes"


@pytest.fixture
def store(sqlite_url, monkeypatch):
    """A store with 12 records of tenant acme and 3 of globex, signed with KEY."""
    monkeypatch.setenv(AUDIT_KEY_ENV, KEY)
    trail = AuditTrail(sqlite_url, checkpoint_key=KEY.encode(), checkpoint_every=5)
    for n in range(12):
        trail.append(
            AuditRecord(
                "acme",
                "alice" if n % 3 else "bob",
                "execute" if n % 2 else "read_output",
                f"workflow:w{n}",
                "deny" if n % 4 == 0 else "allow",
                rule_ids=(f"rule-{n}",),
                cached=n == 5,
            )
        )
    for n in range(3):
        trail.append(AuditRecord("globex", "carol", "execute", f"workflow:g{n}", "allow"))
    return sqlite_url


def _tamper(url: str, tenant: str, seq: int, **values) -> None:
    where = (audit_records.c.tenant_id == tenant) & (audit_records.c.seq == seq)
    with get_engine(url).begin() as connection:
        if values:
            connection.execute(audit_records.update().where(where).values(**values))
        else:
            connection.execute(audit_records.delete().where(where))


def test_verify_an_intact_trail_exits_0_with_one_line(store, capsys):
    assert main(["audit", "verify", "--database-url", store]) == 0
    out = capsys.readouterr().out
    assert out == "audit trail ok: 15 records in 2 tenant(s), 2 checkpoint(s), signatures checked\n"
    assert main(["audit", "verify", "--tenant", "globex", "--database", store]) == 0
    assert "3 records in 1 tenant(s)" in capsys.readouterr().out


def test_verify_without_the_key_says_signatures_were_not_checked(store, capsys, monkeypatch):
    monkeypatch.delenv(AUDIT_KEY_ENV)
    assert main(["audit", "verify", "--database-url", store]) == 0
    assert "signatures NOT checked" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("damage", "first_bad", "why"),
    [
        ({"seq": 7, "values": {"decision": "deny"}}, 7, "edited"),
        ({"seq": 4}, 4, "deleted"),
    ],
)
def test_stor_09_verify_names_the_first_bad_record_in_one_line(
    store, damage, first_bad, why, capsys
):
    _tamper(store, "acme", damage["seq"], **damage.get("values", {}))
    assert main(["audit", "verify", "--tenant", "acme", "--database-url", store]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"error: audit trail broken: tenant 'acme' seq {first_bad}: ")
    assert why in captured.err
    # The other tenant's chain is unaffected.
    assert main(["audit", "verify", "--tenant", "globex", "--database-url", store]) == 0


def test_stor_09_verify_names_a_truncated_tail_in_a_subprocess(store):
    for seq in (11, 12):
        _tamper(store, "acme", seq)
    result = run_cli(
        "audit", "verify", "--database-url", store, env=cli_env(**{AUDIT_KEY_ENV: KEY})
    )
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert line.startswith("error: audit trail broken: tenant 'acme' seq 11: records 11..12")
    assert "truncated" in line


def test_verify_refuses_a_short_key_in_one_line(store):
    result = run_cli(
        "audit", "verify", "--database-url", store, env=cli_env(**{AUDIT_KEY_ENV: "x"})
    )
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        f"error: {AUDIT_KEY_ENV}: checkpoint_key must be at least 32 bytes, got 1"
    )


def test_stor_08_an_unreachable_store_is_one_error_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'audit.db'}"
    result = run_cli("audit", "show", "--database-url", url)
    assert result.returncode == 1
    assert "unavailable" in one_error_line(result.stderr)


def test_show_lists_records_most_recent_first_with_filters(store, capsys):
    assert main(["audit", "show", "--tenant", "acme", "--limit", "3", "--database-url", store]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "tenant", "seq", "time", "subject", "action", "resource", "decision", "rules", "cached",
    ]  # fmt: skip
    assert [line.split()[1] for line in lines[2:]] == ["12", "11", "10"]

    assert main(["audit", "show", "--decision", "deny", "--database-url", store]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [row.split()[1] for row in rows] == ["9", "5", "1"]
    assert all(" deny " in row for row in rows)

    args = ["audit", "show", "--subject", "carol", "--action", "execute", "--json"]
    assert main([*args, "--database-url", store]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["tenant_id"], r["seq"]) for r in records] == [
        ("globex", 3),
        ("globex", 2),
        ("globex", 1),
    ]
    assert set(records[0]) >= {
        "at",
        "subject",
        "action",
        "resource",
        "decision",
        "rule_ids",
        "hash",
    }

    assert main(["audit", "show", "--subject", "nobody", "--database-url", store]) == 0
    assert capsys.readouterr().out == "no audit records\n"


def test_show_marks_cached_decisions(store, capsys):
    assert main(["audit", "show", "--tenant", "acme", "--json", "--database-url", store]) == 0
    cached = [r["seq"] for r in json.loads(capsys.readouterr().out) if r["cached"]]
    assert cached == [6]


def test_show_refuses_a_bad_decision_or_limit_as_usage(store, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "show", "--decision", "maybe", "--database-url", store])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "show", "--limit", "0", "--database-url", store])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 2


def test_stor_09_checkpoints_kept_in_a_file_catch_a_rolled_back_chain(store, tmp_path, capsys):
    kept = tmp_path / "kept.jsonl"
    assert main(["audit", "checkpoint", "--database-url", store]) == 0
    kept.write_text(capsys.readouterr().out)
    assert [json.loads(line)["tenant_id"] for line in kept.read_text().splitlines()] == [
        "acme",
        "globex",
    ]
    args = ["audit", "verify", "--checkpoints", str(kept), "--database-url", store]
    assert main(args) == 0
    assert "4 checkpoint(s)" in capsys.readouterr().out  # 2 stored + 2 kept
    # Tenant globex wiped from the database: only the kept checkpoint knows.
    from kailash_nb.store.schema import audit_checkpoints, audit_heads

    with get_engine(store).begin() as connection:
        for table in (audit_records, audit_heads, audit_checkpoints):
            connection.execute(table.delete().where(table.c.tenant_id == "globex"))
    assert main(["audit", "verify", "--database-url", store]) == 0
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: audit trail broken: tenant 'globex' seq 1: records 1..3 missing")


def test_a_bad_checkpoints_file_is_one_error_line(store, tmp_path):
    bad = tmp_path / "kept.jsonl"
    bad.write_text('{"tenant_id": "acme", "seq": 1}\n')
    for path, expected in (
        (
            bad,
            f"error: {bad} line 1: a checkpoint is a JSON object with tenant_id, seq, hash and mac",
        ),
        (tmp_path / "missing.jsonl", f"error: no checkpoints file '{tmp_path / 'missing.jsonl'}'"),
    ):
        result = run_cli("audit", "verify", "--checkpoints", str(path), "--database-url", store)
        assert result.returncode == 1
        assert one_error_line(result.stderr) == expected
