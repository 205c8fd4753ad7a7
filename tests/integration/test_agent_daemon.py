"""The fleet-agent daemon as a car's computer or a kiosk screen uses it: its
periodic telemetry, its config with environment overrides, and a control
socket that answers bad requests with an error and keeps running.

Real mosquitto, hub and fleet-agent processes."""
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cbor2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import BUILD, Agent, wait_for  # noqa: E402
from fleet import broker, make_hub, per_test_timeout  # noqa: E402,F401  (pytest fixtures)

AGENT = str(BUILD / "agent" / "fleet-agent")


def telemetry_at_hub(hub, device):
    """The odometer of each telemetry event of device in hub.db, in order."""
    db = sqlite3.connect(hub.db_path, timeout=30)
    try:
        rows = db.execute("SELECT payload FROM events WHERE device = ? AND type = 'telemetry'"
                          " ORDER BY id", (device,)).fetchall()
    finally:
        db.close()
    return [cbor2.loads(p)["body"]["odometer_m"] for (p,) in rows]


def raw_request(sock_path, data):
    """Sends data on the control socket; returns everything answered."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(sock_path))
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode(errors="replace")


def test_vehicle_repeats_its_last_reading(broker, make_hub):
    # the car's computer hands over a reading once; the agent sends it again
    # every telemetry_period_s, so the hub keeps seeing the vehicle. A car
    # that never got a reading sends none.
    hub = make_hub(latency_ms=1)
    period = {"vehicle": {"telemetry_period_s": 1}}
    with Agent(broker, "V1", role="vehicle", config=period) as v1, \
            Agent(broker, "V2", role="vehicle", config=period):
        rc, out, err = v1.ctl("telemetry", 1234, 80, 48.1, 11.5)
        assert rc == 0, err
        readings = wait_for(lambda: len(telemetry_at_hub(hub, "V1")) >= 4 and
                            telemetry_at_hub(hub, "V1"), 20, "four telemetry events of V1")
        assert set(readings) == {1234}, readings
        rc, out, err = v1.ctl("telemetry", 1500, 79, 48.1, 11.5)  # a new reading replaces it
        assert rc == 0, err
        wait_for(lambda: telemetry_at_hub(hub, "V1")[-2:] == [1500, 1500], 20,
                 "the new reading, repeated")
        assert telemetry_at_hub(hub, "V2") == []


def test_environment_overrides_the_config_file(broker, make_hub, tmp_path):
    # the same file, with FLEET_AGENT_<SECTION>_<KEY> on top: a bad value is
    # named in one sentence and the daemon does not start
    agent = Agent(broker, "K1", role="kiosk", start=False)
    try:
        env = dict(os.environ, FLEET_AGENT_AGENT_ROLE="boat")
        done = subprocess.run([AGENT, "run", "--config", str(agent.config_path)],
                              capture_output=True, text=True, timeout=20, env=env)
        assert done.returncode != 0
        assert "role" in done.stderr and "boat" in done.stderr, done.stderr
        env = dict(os.environ, FLEET_AGENT_SYNC_HELLO_RETRY_MS="fast")
        done = subprocess.run([AGENT, "run", "--config", str(agent.config_path)],
                              capture_output=True, text=True, timeout=20, env=env)
        assert done.returncode != 0 and "hello_retry_ms" in done.stderr, done.stderr
    finally:
        agent.close()


def test_control_socket_refuses_bad_requests(broker, make_hub):
    hub = make_hub(latency_ms=1)
    with Agent(broker, "K1", role="kiosk") as kiosk:
        wait_for(lambda: "synced yes" in kiosk.ctl("status")[1], 20, "the kiosk synced")
        bad = [
            (b"rent\tV1\n", "usage"),                      # too few arguments
            (b"launch\tmissiles\n", "usage"),              # unknown command
            (b"rent\tV1\tC1\t\x01\n", "control character"),
            (b"rent\tV/1\tC1\t30\n", "usage"),             # not an id
            (b"rent\tV1\tC1\t99999999\n", "usage"),        # minutes out of range
            (b"x" * 70000 + b"\n", "too long"),
            (b"\xff\xfe\xfd\n", "usage"),
            (b"status", "without end of line"),            # and the client hangs up
        ]
        for data, want in bad:
            answer = raw_request(kiosk.socket, data) if data != b"status" else None
            if answer is None:  # half-closed: write, then shut down our side
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(10)
                    s.connect(str(kiosk.socket))
                    s.sendall(data)
                    s.shutdown(socket.SHUT_WR)
                    answer = s.recv(4096).decode(errors="replace")
            assert answer.startswith("error ") and want in answer, (data[:40], answer)
        # nothing was queued, and the agent still works
        rc, out, err = kiosk.ctl("status")
        assert rc == 0 and "backlog 0" in out and "next_seq 1" in out, out
        rc, out, err = kiosk.ctl("rent", "NOCAR", "C1", 30, "--wait", 20)
        assert rc == 0 and "REJECTED" in out, out + err
        assert kiosk.proc.poll() is None
    assert hub
