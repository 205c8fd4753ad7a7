"""Helpers for the integration tests: a private mosquitto, the hub, device
agents and fleetctl, each in its own temporary directory, on free loopback
ports.

The hub's store is SQLite, or with FLEET_TEST_STORE=postgresql a database
of its own (fresh for each Hub) in a PostgreSQL cluster that the harness
starts once per process (tests/harness/pg.py) and stops at exit. Tests that
look into the store use hub.sql(), which speaks to either.

Run with Debian's /usr/bin/python3 (python3-paho-mqtt, python3-cbor2,
python3-pytest). Binaries come from $FLEET_BUILD_DIR (set by ctest), else
<repo>/build. Nothing binds anything but 127.0.0.1, and no process outlives
the test run: every object is a context manager, and an atexit hook kills
whatever is still running. Set FLEET_KEEP_TMP=1 to keep the temporary
directories (their paths are printed) for a post-mortem.

    with Broker() as broker, Hub(broker, decline_rate=1.0) as hub:
        rc, out, err = hub.fleetctl("vehicles")
        status, body = hub.api("GET", "/v1/health")
"""

import atexit
import json
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("FLEET_BUILD_DIR") or REPO / "build")
MOSQUITTO = "/usr/sbin/mosquitto"
LOOPBACK = "127.0.0.1"

_running = set()  # every _Service started and not yet closed

# Which store the hubs of this run use: sqlite (default) or postgresql.
STORE = os.environ.get("FLEET_TEST_STORE", "sqlite")
_pg = None  # the PostgreSQL cluster of this process, started on first use
_pg_databases = 0


def pg_cluster():
    """Returns this process's PostgreSQL cluster (tests/harness/pg.py),
    starting it on first use; it is stopped at exit."""
    global _pg
    if _pg is None:
        import sys
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from pg import PgCluster  # noqa: E402
        _pg = PgCluster(fsync=os.environ.get("FLEET_PG_FSYNC", "off") == "on")
    return _pg


def fresh_pg_database():
    """Creates an empty database in pg_cluster(); returns (cluster, name)."""
    global _pg_databases
    cluster = pg_cluster()
    _pg_databases += 1
    name = f"hub{_pg_databases}"
    cluster.create_database(name)
    return cluster, name


def free_port():
    """Returns a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what):
    """Polls predicate() until it returns a true value, which is returned;
    raises TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def port_open(port):
    """Returns True if something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((LOOPBACK, port)) == 0


def write_ini(path, sections):
    """Writes {section: {key: value}} as an INI file (None values skipped)."""
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {v}" for k, v in keys.items() if v is not None]
        lines.append("")
    Path(path).write_text("\n".join(lines))


def fleetctl(*args, hub=None, timeout=30):
    """Runs <build>/hub/fleetctl with args; hub is a Hub or a URL (default:
    $FLEETCTL_HUB). Returns (returncode, stdout, stderr)."""
    cmd = [str(BUILD / "hub" / "fleetctl")]
    if hub is not None:
        cmd += ["--hub", hub.url if isinstance(hub, Hub) else hub]
    done = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def parse_table(text):
    """Parses fleetctl's aligned table output into a list of dicts keyed by
    the header's titles (columns are cut at the header's offsets, so values
    may contain spaces)."""
    lines = [l for l in text.splitlines() if l.strip()]
    if not lines:
        return []
    header = lines[0]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    bounds = list(zip(starts, starts[1:] + [None]))
    titles = [header[a:b].strip() for a, b in bounds]
    return [{t: line[a:b].strip() for t, (a, b) in zip(titles, bounds)} for line in lines[1:]]


def vehicle_state(hub, vehicle):
    """Returns the vehicle's STATE column as `fleetctl vehicles` shows it."""
    rc, out, err = hub.fleetctl("vehicles")
    assert rc == 0, err
    return {row["ID"]: row for row in parse_table(out)}[vehicle]["STATE"]


def rent(kiosk, vehicle, customer, minutes=60, wait_s=20):
    """Asks kiosk (an Agent) for a rental and waits for the hub's decision.
    Returns (rental id, state, the decision line of fleet-agent ctl)."""
    rc, out, err = kiosk.ctl("rent", vehicle, customer, minutes, "--wait", wait_s)
    assert rc == 0, f"rent failed: {out} {err}"
    line = out.strip().splitlines()[-1]
    decided = re.match(r"rental (\S+) (\S+)", line)
    assert decided, line
    return decided.group(1), decided.group(2), line


class _Service:
    """A child process with its own temporary directory and a log file that
    collects its stdout and stderr."""

    name = "service"

    def __init__(self, env=None):
        self.dir = Path(tempfile.mkdtemp(prefix=f"fleet-test-{self.name}-"))
        self.env = dict(env or {})  # added to (or replacing) the inherited environment
        self.proc = None
        self._log_path = self.dir / f"{self.name}.log"
        self._closed = False

    # -- subclasses provide these
    def command(self):
        raise NotImplementedError

    def wait_ready(self, timeout):
        raise NotImplementedError

    def _start_or_close(self, start):
        """Ends a constructor: starts if asked, and cleans up if that fails."""
        if not start:
            return
        try:
            self.start()
        except BaseException:
            self.close()
            raise

    # -- lifecycle
    def start(self, timeout=15):
        """Starts the process and waits until it is ready; on failure kills
        it and raises RuntimeError with the tail of its log."""
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_HUB_")}
        env.update(self.env)
        with open(self._log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.dir, env=env,
                                         start_new_session=True)
        _running.add(self)
        try:
            self.wait_ready(timeout)
        except Exception as e:
            self.kill()
            raise RuntimeError(f"{self.name} did not start: {e}\n--- log tail ---\n"
                               f"{self.log()[-3000:]}") from e
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _check_alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with status {self.proc.returncode}")

    def kill(self):
        """Kills the process with SIGKILL (a crash) and reaps it."""
        if self.running():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)
        _running.discard(self)

    def stop(self, timeout=10):
        """Asks the process to stop (SIGTERM) and waits; SIGKILLs it and
        raises RuntimeError if it does not stop within timeout. Returns its
        exit status."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise RuntimeError(f"{self.name} ignored SIGTERM for {timeout} s")
        _running.discard(self)
        return self.proc.returncode if self.proc else None

    def restart(self, timeout=15):
        """Stops (SIGTERM) and starts again with the same directory and port."""
        self.stop()
        return self.start(timeout)

    def log(self):
        """Returns everything the process wrote to stdout and stderr so far."""
        if self._closed and hasattr(self, "_final_log"):
            return self._final_log
        try:
            return self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def sanitizer_reports(self):
        """Returns the AddressSanitizer / UndefinedBehaviorSanitizer reports
        found in the log (a build with FLEET_SANITIZE), as a list of lines."""
        marks = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
        return [l for l in self.log().splitlines() if any(m in l for m in marks)]

    def close(self):
        """Kills the process (if running) and removes the directory."""
        if self._closed:
            return
        self._closed = True
        try:
            self.kill()
        finally:
            self._final_log = self.log()
            if os.environ.get("FLEET_KEEP_TMP"):
                print(f"kept {self.dir}")
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        """Stops the process cleanly (so that LeakSanitizer can report),
        removes its directory, and fails if a sanitizer reported anything."""
        try:
            if exc_type is None:
                self.stop()
        finally:
            self.close()
        reports = self.sanitizer_reports()
        if exc_type is None:
            assert not reports, f"sanitizer reports from {self.name}:\n" + "\n".join(reports)


class Broker(_Service):
    """A private mosquitto on a free loopback port, with persistence in its
    temporary directory so that restart() keeps sessions and retained
    messages. Extra mosquitto.conf options may be given as keyword arguments
    (autosave_interval=1), and whole lines (more listeners) in extra."""

    name = "mosquitto"

    def __init__(self, port=None, start=True, extra=(), **options):
        super().__init__()
        self.port = port or free_port()
        self.uri = f"tcp://{LOOPBACK}:{self.port}"
        conf = [
            f"listener {self.port} {LOOPBACK}",
            "allow_anonymous true",
            "persistence true",
            # mosquitto appends "mosquitto.db" to this without a separator.
            f"persistence_location {self.dir}/",
            # 0 = no limit on queued QoS 1 messages per client (mosquitto.conf(5));
            # the default of 1000 would drop a hub's backlog in outage tests.
            "max_queued_messages 0",
            # Nagle's algorithm against delayed ACKs costs ~40 ms per hop on
            # small request/response messages (docs/operations.md).
            "set_tcp_nodelay true",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto would switch to the "mosquitto" user, which
            # cannot write our temporary directory.
            conf.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
        conf += [f"{k} {v}" for k, v in options.items()]
        conf += list(extra)
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text("\n".join(conf) + "\n")
        self._start_or_close(start)

    def command(self):
        return [MOSQUITTO, "-c", str(self.conf)]

    def wait_ready(self, timeout):
        wait_for(lambda: self._check_alive() or port_open(self.port), timeout,
                 f"mosquitto on port {self.port}")


# Keyword arguments of Hub that are settings, and their INI sections.
HUB_SETTINGS = {
    "durability": "store",
    "batch_max": "engine", "queue_max": "engine", "command_ttl_s": "engine",
    "provider": "payment", "url": "payment", "workers": "payment",
    "timeout_ms": "payment", "max_attempts": "payment",
    "latency_ms": "payment.sim", "decline_rate": "payment.sim",
    "failure_rate": "payment.sim",
    "failures": "breaker", "open_s": "breaker",
}


class Hub(_Service):
    """fleet-hub with a generated INI (state in its temporary directory, the
    broker's URI, the HTTP API on a free loopback port). Settings are keyword
    arguments named as in HUB_SETTINGS (decline_rate=1.0), or any
    {section: {key: value}} in config=; env= adds environment variables
    (tests/harness/faultvfs.py preloads a failing SQLite VFS so). Starting waits for GET /v1/health to
    answer 200. With [http] cert_file set the hub is https:// and cafile= is
    the CA its clients trust; token= is the bearer token api() and fleetctl()
    send (an API with [http] tokens_file needs one)."""

    name = "fleet-hub"

    def __init__(self, broker, start=True, config=None, env=None, token=None, cafile=None,
                 **settings):
        super().__init__(env)
        self.broker = broker
        self.port = free_port()
        self.token, self.cafile = token, cafile
        tls = bool((config or {}).get("http", {}).get("cert_file"))
        self.url = f"{'https' if tls else 'http'}://{LOOPBACK}:{self.port}"
        sections = {
            "hub": {"state_dir": str(self.dir)},
            "mqtt": {"uri": broker.uri if broker else "tcp://127.0.0.1:1"},
            "http": {"bind": LOOPBACK, "port": self.port},
        }
        for key, value in settings.items():
            if key not in HUB_SETTINGS:
                raise TypeError(f"Hub: unknown setting {key} (use config= for others)")
            sections.setdefault(HUB_SETTINGS[key], {})[key] = value
        for section, keys in (config or {}).items():
            sections.setdefault(section, {}).update(keys)
        self.pg, self.pg_database = None, None
        store = sections.setdefault("store", {})
        if "backend" not in store and STORE == "postgresql":
            self.pg, self.pg_database = fresh_pg_database()
            store.update(backend="postgresql", url=self.pg.url(self.pg_database))
        self.store = store.get("backend", "sqlite")
        self.config_path = self.dir / "hub.ini"
        write_ini(self.config_path, sections)
        self._start_or_close(start)

    @property
    def db_path(self):
        return self.dir / "hub.db"

    def command(self):
        return [str(BUILD / "hub" / "fleet-hub"), "--config", str(self.config_path)]

    def sql(self, query, params=()):
        """Runs query (? placeholders) on the hub's store, SQLite or
        PostgreSQL, and returns its rows as a list of tuples (blobs as
        bytes); a write is committed."""
        if self.pg is not None:
            return self.pg.query(self.pg_database, query, params)
        db = sqlite3.connect(self.db_path, timeout=10)
        try:
            with db:
                return db.execute(query, params).fetchall()
        finally:
            db.close()

    def wait_ready(self, timeout):
        def healthy():
            self._check_alive()
            try:
                return self.api("GET", "/v1/health", timeout=1)[0] == 200
            except OSError:
                return False
        wait_for(healthy, timeout, f"{self.url}/v1/health to answer 200")

    def request(self, method, path, body=None, timeout=10, token=None):
        """Calls the HTTP API with token (default: the hub's token= ; "" for
        none). Returns (status, headers, raw body bytes)."""
        import ssl
        data = json.dumps(body).encode() if body is not None else None
        if data is None and method in ("POST", "PATCH"):
            data = b"{}"
        headers = {"Content-Type": "application/json"}
        token = self.token if token is None else token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        context = ssl.create_default_context(cafile=self.cafile) if self.cafile else None
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def api(self, method, path, body=None, timeout=10, token=None):
        """Calls the HTTP API. Returns (status, parsed JSON or None)."""
        status, _, raw = self.request(method, path, body, timeout, token)
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, None

    def fleetctl(self, *args, timeout=30):
        """Runs fleetctl against this hub (with its token and CA, if any);
        returns (returncode, stdout, stderr)."""
        extra = (["--token", self.token] if self.token else []) + \
            (["--cacert", str(self.cafile)] if self.cafile else [])
        return fleetctl(*extra, *args, hub=self, timeout=timeout)


class Agent(_Service):
    """fleet-agent run with a generated config (device id, role, state dir,
    broker URI, control socket). Kept thin on purpose: the agent's options
    belong to agent/ and docs; pass more in config={section: {key: value}}."""

    name = "fleet-agent"

    def __init__(self, broker, device_id, role="kiosk", start=True, config=None, env=None):
        super().__init__(env)
        self.id = device_id
        self.socket = self.dir / "ctl.sock"
        sections = {
            "agent": {"id": device_id, "role": role, "state_dir": str(self.dir)},
            "mqtt": {"uri": broker.uri},
            "control": {"socket": str(self.socket)},
        }
        for section, keys in (config or {}).items():
            sections.setdefault(section, {}).update(keys)
        self.config_path = self.dir / "agent.ini"
        write_ini(self.config_path, sections)
        self._start_or_close(start)

    def command(self):
        return [str(BUILD / "agent" / "fleet-agent"), "run", "--config", str(self.config_path)]

    def start(self, timeout=15):
        self.socket.unlink(missing_ok=True)  # left by a killed run
        return super().start(timeout)

    def wait_ready(self, timeout):
        def listening():
            self._check_alive()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                return s.connect_ex(str(self.socket)) == 0
        wait_for(listening, timeout, f"the agent's control socket {self.socket}")

    def ctl(self, *args, timeout=30):
        """Runs fleet-agent ctl against this agent; returns (rc, stdout, stderr)."""
        cmd = [str(BUILD / "agent" / "fleet-agent"), "ctl", "--socket", str(self.socket)]
        done = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True,
                              timeout=timeout)
        return done.returncode, done.stdout, done.stderr


@atexit.register
def _kill_everything():
    for service in list(_running):
        service.close()


# ---- pytest support: import these names into a test module to use them ----

try:
    import pytest
except ImportError:  # the harness also works without pytest
    pytest = None

TEST_TIMEOUT_S = int(os.environ.get("FLEET_TEST_TIMEOUT", "60"))

if pytest is not None:
    @pytest.fixture(autouse=True)
    def per_test_timeout():
        """Fails a test that runs longer than TEST_TIMEOUT_S (SIGALRM), so
        that no test can hang; fixtures still clean up afterwards."""
        def expired(signum, frame):
            raise TimeoutError(f"test exceeded {TEST_TIMEOUT_S} s")
        previous = signal.signal(signal.SIGALRM, expired)
        signal.alarm(TEST_TIMEOUT_S)
        yield
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)

    @pytest.fixture
    def broker():
        with Broker() as b:
            yield b

    @pytest.fixture
    def make_hub(broker):
        """Returns a function Hub-like: make_hub(**settings) starts a hub on
        the test's broker; all are closed after the test."""
        hubs = []

        def make(**settings):
            hubs.append(Hub(broker, **settings))
            return hubs[-1]
        yield make
        reports = []
        for h in hubs:
            try:
                h.stop()  # a clean exit, so that LeakSanitizer reports too
            finally:
                h.close()
            reports += h.sanitizer_reports()
        assert not reports, "sanitizer reports from fleet-hub:\n" + "\n".join(reports)
