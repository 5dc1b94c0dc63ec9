"""``kailash-nb users add|list|remove|totp``: in-process ``main([...])`` on a SQLite
store; a user the CLI creates (and enrolls in TOTP) logs in at a real gateway's
``POST /auth/token``."""

from __future__ import annotations

import io

import pyotp
import pytest
from _gateway_server import ServedGateway

from kailash_nb.cli import main
from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.security.passwords import UserStore

PASSWORD = "correct horse battery staple"


def add(url: str, username: str, *extra: str, password: str = PASSWORD, monkeypatch) -> int:
    """``kailash-nb users add USERNAME ... --password-stdin`` with ``password`` on stdin."""
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return main(["users", "add", username, *extra, "--password-stdin", "--database-url", url])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("error: ")
    return err


def test_add_list_remove(sqlite_url, capsys, monkeypatch):
    tenant = ["--tenant", "acme"]
    assert (
        add(
            sqlite_url,
            "Alice",
            *tenant,
            "--role",
            "analyst",
            "--role",
            "admin",
            monkeypatch=monkeypatch,
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "added user 'Alice' to tenant 'acme' (analyst, admin)" in out
    user = UserStore(sqlite_url).authenticate("alice", PASSWORD)
    assert (user.username, user.tenant_id, user.roles) == ("Alice", "acme", ("analyst", "admin"))
    assert add(sqlite_url, "bob", "--tenant", "globex", monkeypatch=monkeypatch) == 0
    capsys.readouterr()

    assert main(["users", "list", "--database-url", sqlite_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["username", "tenant", "roles", "user_id", "created"]
    assert [line.split()[:2] for line in lines[2:]] == [["Alice", "acme"], ["bob", "globex"]]
    assert "analyst,admin" in lines[2]
    assert PASSWORD not in "\n".join(lines)

    assert main(["users", "list", "--tenant", "globex", "--database-url", sqlite_url]) == 0
    only = capsys.readouterr().out.splitlines()
    assert len(only) == 3 and only[2].startswith("bob ")

    assert main(["users", "remove", "ALICE", *tenant, "--database-url", sqlite_url]) == 0
    assert "removed user 'Alice' from tenant 'acme'" in capsys.readouterr().out
    assert UserStore(sqlite_url).get_user("alice") is None
    assert main(["users", "list", "--tenant", "acme", "--database-url", sqlite_url]) == 0
    assert capsys.readouterr().out == "no users in tenant 'acme'\n"


def test_store_from_the_environment(sqlite_url, capsys, monkeypatch):
    monkeypatch.setenv("KAILASH_NB_DATABASE_URL", sqlite_url)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "add", "carol", "--tenant", "acme", "--password-stdin"]) == 0
    assert UserStore(sqlite_url).get_user("carol") is not None
    assert main(["users", "list"]) == 0
    assert "carol" in capsys.readouterr().out


def test_existing_user_is_one_error_line(sqlite_url, capsys, monkeypatch):
    assert add(sqlite_url, "dave", "--tenant", "acme", monkeypatch=monkeypatch) == 0
    capsys.readouterr()
    assert add(sqlite_url, "DAVE", "--tenant", "globex", monkeypatch=monkeypatch) == 1
    assert "already exists" in one_error_line(capsys)


@pytest.mark.parametrize("password", ["short", "x" * 1025])
def test_weak_password_is_refused(sqlite_url, capsys, monkeypatch, password):
    assert (
        add(sqlite_url, "erin", "--tenant", "acme", password=password, monkeypatch=monkeypatch) == 1
    )
    err = one_error_line(capsys)
    assert "password must be 8-1024 characters" in err and password not in err
    assert UserStore(sqlite_url).get_user("erin") is None


def test_empty_stdin_is_refused(sqlite_url, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    args = ["users", "add", "frank", "--tenant", "acme", "--password-stdin"]
    assert main([*args, "--database-url", sqlite_url]) == 1
    assert "no password on stdin" in one_error_line(capsys)


def test_unknown_user_and_wrong_tenant(sqlite_url, capsys, monkeypatch):
    remove = ["users", "remove", "ghost", "--tenant", "acme", "--database-url", sqlite_url]
    assert main(remove) == 1
    assert "no user named 'ghost' in tenant 'acme'" in one_error_line(capsys)
    assert add(sqlite_url, "gina", "--tenant", "acme", monkeypatch=monkeypatch) == 0
    capsys.readouterr()
    assert (
        main(["users", "remove", "gina", "--tenant", "globex", "--database-url", sqlite_url]) == 1
    )
    assert "no user named 'gina' in tenant 'globex'" in one_error_line(capsys)
    assert UserStore(sqlite_url).get_user("gina") is not None


def test_password_is_prompted_twice(sqlite_url, capsys, monkeypatch):
    answers = iter([PASSWORD, PASSWORD])
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    assert main(["users", "add", "hank", "--tenant", "acme", "--database-url", sqlite_url]) == 0
    assert len(prompts) == 2
    UserStore(sqlite_url).authenticate("hank", PASSWORD)

    answers = iter([PASSWORD, PASSWORD + "!"])
    assert main(["users", "add", "ivy", "--tenant", "acme", "--database-url", sqlite_url]) == 1
    assert "the passwords do not match" in one_error_line(capsys)
    assert UserStore(sqlite_url).get_user("ivy") is None


def test_password_is_never_an_argument(sqlite_url, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["users", "add", "jo", "--tenant", "acme", "--password", PASSWORD])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main(["users", "add", "jo", "--tenant", "acme", PASSWORD])
    with pytest.raises(SystemExit):
        main(["users", "add", "jo"])  # --tenant is required
    assert "--tenant" in capsys.readouterr().err


def test_users_without_a_subcommand_prints_help(capsys):
    assert main(["users"]) == 2
    assert "add" in capsys.readouterr().err


def test_a_cli_user_gets_a_token_from_a_real_gateway(
    security_config, sqlite_url, capsys, monkeypatch
):
    assert (
        add(sqlite_url, "kim", "--tenant", "acme", "--role", "analyst", monkeypatch=monkeypatch)
        == 0
    )
    config = security_config(max_requests_per_minute=10_000)
    gateway = create_gateway(title="CLI users", security_config=config, database_url=sqlite_url)
    with ServedGateway(gateway) as served:
        login = {"username": "kim", "password": PASSWORD}
        pair = served.client.post("/auth/token", json=login)
        assert pair.status_code == 200, pair.text
        headers = {"Authorization": f"Bearer {pair.json()['access_token']}"}
        assert served.client.get("/workflows", headers=headers).status_code == 200
        wrong = served.client.post("/auth/token", json={**login, "password": PASSWORD + "x"})
        assert wrong.status_code == 401

        assert (
            main(["users", "remove", "kim", "--tenant", "acme", "--database-url", sqlite_url]) == 0
        )
        gone = served.client.post("/auth/token", json=login)
        assert gone.status_code == 401


def test_interrupted_prompt_adds_nobody(sqlite_url, capsys, monkeypatch):
    def interrupted(prompt: str = "") -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr("getpass.getpass", interrupted)
    assert main(["users", "add", "lee", "--tenant", "acme", "--database-url", sqlite_url]) == 1
    assert "cancelled" in one_error_line(capsys)
    assert UserStore(sqlite_url).get_user("lee") is None


def enrollment_from(out: str) -> tuple[str, list[str]]:
    """The TOTP secret and the backup codes a ``--totp`` / ``users totp`` run printed."""
    lines = [line.strip() for line in out.splitlines()]
    uri = next(line for line in lines if line.startswith("otpauth://totp/"))
    secret = pyotp.parse_uri(uri).secret
    assert f"secret: {secret}" in lines
    codes = lines[lines.index(next(x for x in lines if x.startswith("Backup codes"))) + 1 :]
    return secret, codes


def test_auth28_add_with_totp_prints_the_enrollment_once_and_gates_login(
    security_config, sqlite_url, capsys, monkeypatch
):
    assert add(sqlite_url, "max", "--tenant", "acme", "--totp", monkeypatch=monkeypatch) == 0
    out = capsys.readouterr().out
    assert "added user 'max'" in out and "shown once" in out
    secret, codes = enrollment_from(out)
    assert len(codes) == 10 and all(len(code) == 19 for code in codes)
    config = security_config(max_requests_per_minute=10_000)
    gateway = create_gateway(title="CLI totp", security_config=config, database_url=sqlite_url)
    with ServedGateway(gateway) as served:
        login = {"username": "max", "password": PASSWORD}
        missing = served.client.post("/auth/token", json=login)
        assert missing.status_code == 401 and missing.json()["code"] == "second_factor_required"
        with_code = served.client.post(
            "/auth/token", json={**login, "totp": pyotp.TOTP(secret).now()}
        )
        assert with_code.status_code == 200, with_code.text
        backup = served.client.post("/auth/token", json={**login, "backup_code": codes[0]})
        assert backup.status_code == 200, backup.text
        again = served.client.post("/auth/token", json={**login, "backup_code": codes[0]})
        assert again.status_code == 401


def test_auth31_users_totp_reenrolls_and_disables(sqlite_url, capsys, monkeypatch):
    assert add(sqlite_url, "nia", "--tenant", "acme", monkeypatch=monkeypatch) == 0
    capsys.readouterr()
    store = UserStore(sqlite_url)
    assert not store.totp_enrolled(store.get_user("nia"))
    totp = ["users", "totp", "nia", "--tenant", "acme", "--database-url", sqlite_url]
    assert main([*totp, "--issuer", "Acme"]) == 0
    first_secret, first_codes = enrollment_from(capsys.readouterr().out)
    assert main(totp) == 0
    second_secret, second_codes = enrollment_from(capsys.readouterr().out)
    assert first_secret != second_secret and not set(first_codes) & set(second_codes)
    user = store.get_user("nia")
    assert store.totp_enrolled(user)
    # Only hashes of the codes are kept; the old ones are gone.
    assert store.second_factors.use_backup_code(user.user_id, first_codes[0]) is False
    assert store.second_factors.use_backup_code(user.user_id, second_codes[0]) is True
    assert store.second_factors.use_backup_code(user.user_id, second_codes[0]) is False

    assert main([*totp, "--disable"]) == 0
    assert "removed the TOTP enrollment" in capsys.readouterr().out
    assert not store.totp_enrolled(user)
    assert main([*totp, "--disable"]) == 1
    assert "not enrolled in TOTP" in one_error_line(capsys)


def test_users_totp_refuses_unknown_users_and_bad_issuers(sqlite_url, capsys, monkeypatch):
    args = ["users", "totp", "ghost", "--tenant", "acme", "--database-url", sqlite_url]
    assert main(args) == 1
    assert "no user named 'ghost' in tenant 'acme'" in one_error_line(capsys)
    assert add(sqlite_url, "olga", "--tenant", "acme", monkeypatch=monkeypatch) == 0
    capsys.readouterr()
    wrong_tenant = ["users", "totp", "olga", "--tenant", "globex", "--database-url", sqlite_url]
    assert main(wrong_tenant) == 1
    assert "no user named 'olga' in tenant 'globex'" in one_error_line(capsys)
    bad_issuer = ["users", "totp", "olga", "--tenant", "acme", "--issuer", "a:b"]
    assert main([*bad_issuer, "--database-url", sqlite_url]) == 1
    assert "issuer" in one_error_line(capsys)
