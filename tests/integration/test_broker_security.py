"""The broker as the devices' one entry (domain checklist "Gateway"): TLS,
per-device login and topic ACLs (protocol P-TOP-6), with the real agent and
hub on a real mosquitto.

- TLS: a kiosk agent on an ssl:// listener rents through the hub (the
  plain-linked fleet-agent hands over to fleet-agent-tls); one that does not
  trust the broker's certificate never connects, says why, and keeps running.
- Mutual TLS: the device's certificate is its login (use_identity_as_username).
- Login and ACLs: with passwords and the ACL file of docs/protocol.md, devices
  work; a wrong password is refused with the broker's reason; a device that
  publishes on another device's topics reaches nobody.
- Session takeover (P-TOP-8): a device logged in as V1 that connects with
  client id V2 neither knocks V2 off nor drops V2's session and queued
  messages (use_username_as_clientid).

Certificates are made for each run with the openssl command line."""
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import Agent, Broker, Hub, free_port, per_test_timeout, wait_for  # noqa: E402,F401

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command (tests/setup.sh)")


def openssl(*args, cwd):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={name}",
            "-days", "2", cwd=d)
    return d / f"{name}.crt"


def make_cert(d, ca, cn, san=None):
    """A key and certificate for cn signed by ca; returns (crt, key)."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{cn}.key", "-out", f"{cn}.csr", "-subj", f"/CN={cn}", cwd=d)
    ext = d / f"{cn}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", f"{cn}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{cn}.crt", "-days", "2", "-extfile", str(ext), cwd=d)
    return d / f"{cn}.crt", d / f"{cn}.key"


@pytest.fixture
def pki(tmp_path):
    make_ca(tmp_path, "fleet-ca")
    make_ca(tmp_path, "other-ca")
    server = make_cert(tmp_path, "fleet-ca", "broker", san="IP:127.0.0.1")
    k2 = make_cert(tmp_path, "fleet-ca", "K2")
    return {"ca": tmp_path / "fleet-ca.crt", "other_ca": tmp_path / "other-ca.crt",
            "server": server, "K2": k2}


def tls_listener(port, pki, require_certificate):
    crt, key = pki["server"]
    lines = [f"listener {port} 127.0.0.1", f"cafile {pki['ca']}", f"certfile {crt}",
             f"keyfile {key}", f"require_certificate {'true' if require_certificate else 'false'}",
             "use_username_as_clientid true"]  # P-TOP-8 (after use_identity_as_username: the CN)
    if require_certificate:
        lines.append("use_identity_as_username true")
    return lines


def register(hub, vehicle):
    rc, _, err = hub.fleetctl("register", vehicle, "--name", vehicle, "--station", "s",
                              "--rate", "600")
    assert rc == 0, err


def connected(agent):
    rc, out, _ = agent.ctl("status")
    return rc == 0 and "connected yes" in out


def test_devices_over_tls_and_mutual_tls(pki):
    tls_port, mtls_port = free_port(), free_port()
    extra = tls_listener(tls_port, pki, False) + tls_listener(mtls_port, pki, True)
    with Broker(extra=extra) as broker, Hub(broker, latency_ms=1) as hub:
        register(hub, "V1")
        register(hub, "V2")
        tls = {"mqtt": {"uri": f"ssl://127.0.0.1:{tls_port}", "ca_file": str(pki["ca"])}}
        with Agent(broker, "K1", role="kiosk", config=tls) as k1:
            rc, out, err = k1.ctl("rent", "V1", "C1", 30, "--wait", 20)
            assert rc == 0 and "ACTIVE" in out, out + err
            assert "fleet-agent-tls" in Path(f"/proc/{k1.proc.pid}/exe").resolve().name

        crt, key = pki["K2"]
        mtls = {"mqtt": {"uri": f"ssl://127.0.0.1:{mtls_port}", "ca_file": str(pki["ca"]),
                         "cert_file": str(crt), "key_file": str(key)}}
        with Agent(broker, "K2", role="kiosk", config=mtls) as k2:
            rc, out, err = k2.ctl("rent", "V2", "C2", 30, "--wait", 20)
            assert rc == 0 and "ACTIVE" in out, out + err

        # a device without a certificate is turned away by the mutual-TLS listener
        no_cert = {"mqtt": {"uri": f"ssl://127.0.0.1:{mtls_port}", "ca_file": str(pki["ca"])}}
        with Agent(broker, "K3", role="kiosk", config=no_cert) as k3:
            wait_for(lambda: "cannot connect" in k3.log(), 15, "K3's connect failure logged")
            assert not connected(k3)


def test_untrusted_broker_certificate_is_refused(pki):
    tls_port = free_port()
    with Broker(extra=tls_listener(tls_port, pki, False)) as broker, \
            Hub(broker, latency_ms=1) as hub:
        wrong = {"mqtt": {"uri": f"ssl://127.0.0.1:{tls_port}", "ca_file": str(pki["other_ca"])}}
        with Agent(broker, "K1", role="kiosk", config=wrong) as k1:
            wait_for(lambda: "cannot connect" in k1.log(), 15, "the connect failure logged")
            log = k1.log()
            assert "certificate verify failed" in log, log[-2000:]
            # it keeps taking requests into its outbox, as offline
            rc, out, err = k1.ctl("rent", "V1", "C1", 30)
            assert rc == 0 and "queued" in out, out + err
            time.sleep(1)
            assert not connected(k1) and k1.proc.poll() is None
        assert hub


ACL = """# docs/protocol.md, P-TOP-6
pattern write fleet/v1/dev/%u/up/#
pattern read  fleet/v1/dev/%u/down/#
pattern read  fleet/v1/hub/status
# rev 1.2: the partitioned family and the partitions' status
pattern write fleet/v1/p/+/dev/%u/up/#
pattern read  fleet/v1/p/+/dev/%u/down/#
pattern read  fleet/v1/p/+/status

user hub
topic readwrite fleet/v1/#
"""


def hub_events(hub, device):
    db = sqlite3.connect(hub.db_path, timeout=30)
    try:
        return db.execute("SELECT type FROM events WHERE device = ?", (device,)).fetchall()
    finally:
        db.close()


def test_per_device_login_and_acls(tmp_path):
    passwords = tmp_path / "passwd"
    users = {"hub": "hub-secret", "K1": "k1-secret", "V1": "v1-secret", "V2": "v2-secret"}
    for i, (user, password) in enumerate(users.items()):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(passwords),
                        user, password], check=True, capture_output=True)
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    passwords.chmod(0o600)
    acl.chmod(0o600)
    with Broker(allow_anonymous="false", password_file=passwords, acl_file=acl,
                use_username_as_clientid="true") as broker, \
            Hub(broker, latency_ms=1,
                config={"mqtt": {"username": "hub", "password": users["hub"]}}) as hub:
        register(hub, "V1")
        login = lambda dev: {"mqtt": {"password": users[dev]}}  # noqa: E731
        with Agent(broker, "K1", role="kiosk", config=login("K1")) as k1, \
                Agent(broker, "V1", role="vehicle", config=login("V1")) as v1:
            rc, out, err = k1.ctl("rent", "V1", "C1", 30, "--wait", 20)
            assert rc == 0 and "ACTIVE" in out, out + err
            # the hub's unlock command reaches V1 through its own down topic
            wait_for(lambda: v1.ctl("unlock", "C1")[0] == 0, 20, "C1 let in by the hub's command")

            # V2 logs in with its own password but writes as V1: the broker
            # drops it (P-TOP-6), the hub never sees it
            with Agent(broker, "V2", role="vehicle", start=False,
                       config={"mqtt": {"password": users["V2"]}}) as v2:
                import paho.mqtt.client as mqtt
                c = mqtt.Client(client_id="V2", protocol=mqtt.MQTTv5)
                c.username_pw_set("V2", users["V2"])
                c.connect("127.0.0.1", broker.port)
                c.loop_start()
                c.publish("fleet/v1/dev/V1/up/evt", b"\xa0", qos=1).wait_for_publish(10)
                c.disconnect()
                c.loop_stop()
                assert v2  # never started: only its login was used
            before = len(hub_events(hub, "V1"))
            time.sleep(1)
            assert len(hub_events(hub, "V1")) == before
            rc, out, _ = hub.fleetctl("dead-letters")
            assert "fleet/v1/dev/V1/up/evt" not in out, out

        # a wrong password: refused with the broker's reason, the agent keeps trying
        with Agent(broker, "K9", role="kiosk", config={"mqtt": {"password": "guess"}}) as k9:
            wait_for(lambda: "cannot connect" in k9.log(), 15, "the refusal logged")
            assert "Bad user name or password" in k9.log() or "Not authorized" in k9.log(), \
                k9.log()[-1500:]
            assert not connected(k9)


def mqtt_client(broker, client_id, user, password, clean_start, events):
    """A python MQTT 5 client logged in as user with client_id, its session
    kept 300 s; connects and returns it with its loop running. events is a
    list that gets ("connect", session_present), ("disconnect", reason) and
    ("message", topic, payload)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    c.on_connect = lambda cl, ud, flags, rc, props=None: events.append(
        ("connect", flags.get("session present"), str(rc)))
    c.on_disconnect = lambda cl, ud, rc, props=None: events.append(("disconnect", str(rc)))
    c.on_message = lambda cl, ud, msg: events.append(("message", msg.topic, msg.payload))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 300
    c.connect("127.0.0.1", broker.port, clean_start=clean_start, properties=props)
    c.loop_start()
    wait_for(lambda: any(e[0] in ("connect", "disconnect") for e in events), 10,
             f"{user} as {client_id}: CONNACK")
    return c


def close(client):
    client.disconnect()
    client.loop_stop()


def test_session_takeover_is_refused(tmp_path):
    """P-TOP-8: with the broker set-up of docs/operations.md, V1 connecting with
    client id V2 (clean start) must not take V2's session: V2 stays connected,
    keeps its subscription, and the QoS 1 messages queued for it while it is
    away are delivered when it comes back."""
    passwords = tmp_path / "passwd"
    users = {"hub": "hub-secret", "V1": "v1-secret", "V2": "v2-secret"}
    for i, (user, password) in enumerate(users.items()):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(passwords),
                        user, password], check=True, capture_output=True)
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    passwords.chmod(0o600)
    acl.chmod(0o600)
    down = "fleet/v1/dev/V2/down/cmd"
    with Broker(allow_anonymous="false", password_file=passwords, acl_file=acl,
                use_username_as_clientid="true") as broker:
        v2_events, hub_events_, thief_events = [], [], []
        v2 = mqtt_client(broker, "V2", "V2", users["V2"], False, v2_events)
        v2.subscribe(down, qos=1)
        hub = mqtt_client(broker, "hub", "hub", users["hub"], False, hub_events_)
        hub.publish(down, b"live-1", qos=1).wait_for_publish(10)
        wait_for(lambda: ("message", down, b"live-1") in v2_events, 10, "V2 gets live-1")

        # V1 logs in with its own password and asks for client id V2, clean start
        thief = mqtt_client(broker, "V2", "V1", users["V1"], True, thief_events)
        time.sleep(1)
        assert not any(e[0] == "disconnect" for e in v2_events), \
            f"V2 was knocked offline by V1 using its client id: {v2_events}"
        hub.publish(down, b"live-2", qos=1).wait_for_publish(10)
        wait_for(lambda: ("message", down, b"live-2") in v2_events, 10,
                 "V2 still subscribed after the takeover attempt")
        close(thief)

        # V2 away: messages queue in its session; V1 tries again meanwhile
        close(v2)
        for i in range(3):
            hub.publish(down, f"queued-{i}".encode(), qos=1).wait_for_publish(10)
        thief_events.clear()
        thief = mqtt_client(broker, "V2", "V1", users["V1"], True, thief_events)
        time.sleep(0.5)
        close(thief)
        assert not any(e[0] == "message" and e[1] == down for e in thief_events), thief_events

        v2_events.clear()
        v2 = mqtt_client(broker, "V2", "V2", users["V2"], False, v2_events)
        try:
            assert v2_events[0][:2] == ("connect", 1), f"V2's session was dropped: {v2_events}"
            wait_for(lambda: [e[2] for e in v2_events if e[0] == "message"] ==
                     [b"queued-0", b"queued-1", b"queued-2"], 10,
                     f"V2's queued messages after the takeover attempt: {v2_events}")
        finally:
            close(v2)
            close(hub)
