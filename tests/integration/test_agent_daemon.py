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

# These devices use the topic family of 1.0/1.1, which hubs of 1.2 keep
# serving (docs/protocol.md P-PART-3), so that it stays covered and the test
# does not depend on the hub's side of 1.2; test_agent_partitions.py and the
# other integration tests run the partitioned default.
LEGACY = {"mqtt": {"topic_family": "legacy"}}


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
    period = {"vehicle": {"telemetry_period_s": 1}, **LEGACY}
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
    with Agent(broker, "K1", role="kiosk", config=LEGACY) as kiosk:
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


def publish_raw(broker, topic, payload):
    """Publishes payload at QoS 1 as a hostile client would, and waits for
    the broker's PUBACK."""
    import paho.mqtt.client as mqtt
    c = mqtt.Client(client_id="intruder", protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", broker.port, keepalive=30)
    c.loop_start()
    try:
        c.publish(topic, payload, qos=1).wait_for_publish(timeout=10)
    finally:
        c.disconnect()
        c.loop_stop()


def test_hostile_downlink_is_dropped_and_logged(broker, make_hub):
    # bytes on the vehicle's down topics that are not the hub's messages:
    # each is dropped with its reason in the log, the agent keeps running,
    # nothing is applied, and the hub's real commands still work after
    hub = make_hub(latency_ms=1)
    rc, _, err = hub.fleetctl("register", "V1", "--name", "V1", "--station", "s", "--rate", "600")
    assert rc == 0, err
    with Agent(broker, "V1", role="vehicle", config=LEGACY) as car, \
            Agent(broker, "K1", role="kiosk", config=LEGACY) as kiosk:
        wait_for(lambda: "synced yes" in car.ctl("status")[1], 20, "the car synced")
        down = "fleet/v1/dev/V1/down/"
        now = int(time.time() * 1000)
        unlock = {"v": 1, "type": "command", "mid": "x-1", "dev": "V2", "boot": 1, "seq": 1,
                  "time": now, "body": {"action": "unlock", "expires_ms": now + 60000,
                                        "customer": "THIEF"}}
        hostile = [
            (down + "cmd", b"\xff\x00garbage"),                        # not CBOR
            (down + "cmd", cbor2.dumps(unlock)),                       # another device's id
            (down + "reply", cbor2.dumps(dict(unlock, dev="V1"))),     # a command on reply
            (down + "cmd", cbor2.dumps({"v": 1, "type": "command"})),  # fields missing
            (down + "ack", cbor2.dumps([1] * 100000)),                 # big, wrong shape
            ("fleet/v1/hub/status", b"\xa1\x61"),                      # truncated
        ]
        for topic, payload in hostile:
            publish_raw(broker, topic, payload)
        wait_for(lambda: car.log().count("dropped message on") >= len(hostile), 20,
                 "every hostile message dropped and logged")
        assert car.proc.poll() is None
        rc, out, err = car.ctl("unlock", "THIEF")
        assert rc == 4 and "refused" in (out + err), out + err
        rc, out, err = car.ctl("status")
        assert rc == 0 and "applied 0" in out, out
        # the hub's own unlock command for a paying customer still gets through
        rc, out, err = kiosk.ctl("rent", "V1", "C1", 30, "--wait", 20)
        assert rc == 0 and "ACTIVE" in out, out + err
        wait_for(lambda: car.ctl("unlock", "C1")[0] == 0, 20, "C1 let in by the hub's command")
