"""A private PostgreSQL cluster for the tests and benchmarks: initdb in a
temporary directory, pg_ctl on a free 127.0.0.1 port, stopped (and the
directory removed) at the end. Never a system cluster.

initdb and pg_ctl refuse to run as root: as root they run as the
unprivileged user `postgres` (runuser), which owns the data directory.
Clients (the hub, psql) connect over TCP as the superuser "fleet", with
trust authentication, except the role made by add_password_role(), which
must give its password (scram-sha-256).

    with PgCluster() as pg:
        url = pg.create_database("hub1")       # postgresql://fleet@127.0.0.1:PORT/hub1
        pg.query("hub1", "SELECT count(*) FROM events WHERE device = ?", ("K1",))
        pg.stop(mode="immediate"); pg.start()  # a server crash and restart
"""

import atexit
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"
SUPERUSER = "fleet"
_PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
PG_BIN = Path(_PG_BIN[-1]) if _PG_BIN else None


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def literal(value):
    """Returns value as an SQL literal (None, bool, int, float, str, bytes)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (bytes, bytearray)):
        return "'\\x" + bytes(value).hex() + "'::bytea"
    return "'" + str(value).replace("'", "''") + "'"


def bind(sql, params):
    """Replaces each ? of sql with the next of params, as a literal."""
    parts = sql.split("?")
    assert len(parts) == len(params) + 1, f"{len(params)} params for {sql}"
    out = parts[0]
    for value, part in zip(params, parts[1:]):
        out += literal(value) + part
    return out


class PgCluster:
    """A PostgreSQL cluster of its own. fsync=False makes it faster for
    tests (a server crash is still survived: only an OS crash is not)."""

    def __init__(self, start=True, fsync=True):
        if PG_BIN is None:
            raise RuntimeError("PostgreSQL is not installed (/usr/lib/postgresql/*/bin)")
        self.dir = Path(tempfile.mkdtemp(prefix="fleet-test-pg-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._closed = False
        self._run(PG_BIN / "initdb", "-D", self.data, "-U", SUPERUSER, "--auth=trust",
                  "-E", "UTF8", "--no-sync", "--no-instructions")
        conf = [f"port = {self.port}", f"listen_addresses = '{LOOPBACK}'",
                f"unix_socket_directories = '{self.dir}'", "max_connections = 100",
                "fsync = " + ("on" if fsync else "off"), "log_min_messages = warning",
                "shared_buffers = 64MB"]
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("\n".join(conf) + "\n")
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all fleet_pw {LOOPBACK}/32 scram-sha-256\n"
            f"host all all {LOOPBACK}/32 trust\n")
        if self._as_root:
            subprocess.run(["chown", "-R", "postgres:postgres", str(self.data)], check=True)
        _clusters.add(self)
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    def _run(self, *cmd, check=True, timeout=120):
        cmd = [str(c) for c in cmd]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): "
                               f"{done.stdout}{done.stderr}\n{self.log()[-2000:]}")
        return done

    def start(self, timeout=60):
        """Starts the server and waits until it accepts connections."""
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-l", self.log_path, "-w", "-t", timeout,
                  "start")
        return self

    def stop(self, mode="fast"):
        """Stops the server: mode "fast" (clean) or "immediate" (a crash:
        no checkpoint, connections cut, recovery at the next start)."""
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def running(self):
        return self._run(PG_BIN / "pg_ctl", "-D", self.data, "status", check=False).returncode == 0

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except (FileNotFoundError, PermissionError):
            return ""

    def url(self, database, user=SUPERUSER, password=None):
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@{LOOPBACK}:{self.port}/{database}"

    def psql(self, database, sql, timeout=60):
        """Runs sql with psql; returns its stdout (unaligned, tuples only)."""
        done = subprocess.run([str(PG_BIN / "psql"), "-X", "-q", "-A", "-t", "-v",
                               "ON_ERROR_STOP=1", "-h", LOOPBACK, "-p", str(self.port), "-U",
                               SUPERUSER, "-d", database, "-c", sql],
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"psql: {done.stderr.strip()} in: {sql}")
        return done.stdout

    def create_database(self, name):
        """Creates an empty database; returns its URL."""
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def add_password_role(self, name="fleet_pw", password="right-password"):
        """Creates a login role that must authenticate with password."""
        self.psql("postgres", f"CREATE ROLE {name} LOGIN SUPERUSER PASSWORD {literal(password)}")
        return name, password

    def query(self, database, sql, params=()):
        """Runs sql (? placeholders bound from params) and returns its rows as
        tuples, bytea as bytes, like sqlite3's fetchall(). Statements that
        return no rows give []."""
        sql = bind(sql, params).strip().rstrip(";")
        head = sql.lstrip("( \n").split(None, 1)[0].upper()
        if head not in ("SELECT", "WITH", "VALUES"):
            self.psql(database, sql)
            return []
        out = self.psql(database, f"SELECT coalesce(json_agg(json_build_array(t.*)), '[]') "
                                  f"FROM ({sql}) t").strip()
        rows = []
        for row in json.loads(out):
            values = row[0] if len(row) == 1 and isinstance(row[0], dict) else row
            if isinstance(values, dict):
                values = list(values.values())
            rows.append(tuple(bytes.fromhex(v[2:]) if isinstance(v, str) and v.startswith("\\x")
                              else v for v in values))
        return rows

    def close(self):
        if self._closed:
            return
        self._closed = True
        try:
            self.stop(mode="immediate")
        finally:
            if os.environ.get("FLEET_KEEP_TMP"):
                print(f"kept {self.dir}")
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
            _clusters.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_clusters = set()


@atexit.register
def _stop_every_cluster():
    for cluster in list(_clusters):
        cluster.close()
