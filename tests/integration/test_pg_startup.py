"""fleet-hub on PostgreSQL refuses to start, with one clear line naming the
URL (password masked), when the server is unreachable or the password is
wrong, and when the database has a schema newer than the hub; an empty
database gets the schema. Runs with FLEET_TEST_STORE=postgresql (ctest
pg_startup_pg)."""
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
import fleet  # noqa: E402
from fleet import BUILD, Hub, free_port, per_test_timeout, broker, write_ini  # noqa: F401,E402

pytestmark = pytest.mark.skipif(fleet.STORE != "postgresql",
                                reason="needs FLEET_TEST_STORE=postgresql")
SECRET = "hunter2-secret"


def run_hub(tmp_path, url):
    """Starts fleet-hub on url (no broker: it must fail before that) and
    returns (exit status, everything it wrote)."""
    ini = tmp_path / "hub.ini"
    write_ini(ini, {"hub": {"state_dir": str(tmp_path)}, "mqtt": {"uri": "tcp://127.0.0.1:1"},
                    "http": {"port": 0}, "store": {"backend": "postgresql", "url": url}})
    done = subprocess.run([str(BUILD / "hub" / "fleet-hub"), "--config", str(ini)],
                          capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def store_line(out):
    lines = [l for l in out.splitlines() if "cannot connect to PostgreSQL" in l]
    assert len(lines) == 1, out
    return lines[0]


def test_unreachable_server_is_one_masked_line(tmp_path):
    port = free_port()
    rc, out = run_hub(tmp_path, f"postgresql://fleet:{SECRET}@127.0.0.1:{port}/fleet")
    assert rc == 2, out
    line = store_line(out)
    assert f"postgresql://fleet:***@127.0.0.1:{port}/fleet" in line, line
    assert "refused" in line.lower(), line
    assert SECRET not in out, out


def test_wrong_password_is_one_masked_line(tmp_path):
    pg = fleet.pg_cluster()
    user, _ = pg.add_password_role("fleet_pw", "right-password")
    rc, out = run_hub(tmp_path, pg.url("postgres", user, SECRET))
    assert rc == 2, out
    line = store_line(out)
    assert f"postgresql://fleet_pw:***@127.0.0.1:{pg.port}/postgres" in line, line
    assert "password authentication failed" in line, line
    assert SECRET not in out, out


def test_unreachable_server_exits_2(tmp_path):
    rc, out = run_hub(tmp_path, f"postgresql://fleet:{SECRET}@127.0.0.1:{free_port()}/fleet")
    assert rc == 2, out


def test_empty_database_gets_the_schema_and_a_newer_one_is_refused(broker, tmp_path):
    hub = Hub(broker)
    try:
        assert hub.store == "postgresql"
        version = hub.sql("SELECT max(version) FROM schema_version")[0][0]
        assert version >= 4  # the migrations ran to this hub's version
        hub.stop()
        hub.sql(f"INSERT INTO schema_version(version) VALUES ({version + 1})")
        rc, out = run_hub(tmp_path, hub.pg.url(hub.pg_database))
        assert rc == 2, out
        assert f"schema version {version + 1}, newer than this hub's {version}" in out, out
        assert hub.sql("SELECT count(*) FROM events") == [(0,)]
    finally:
        hub.close()
