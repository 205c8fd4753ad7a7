"""fleetctl creds (hub/fleetctl_creds.c): broker logins from the hub's
registry, on a real mosquitto set up as docs/operations.md says (password_file
and acl_file written by fleetctl, use_username_as_clientid, pid_file for the
SIGHUP that reloads them) and a real hub.

- Bootstrap: the hub's own login is made while the hub runs without one.
- A vehicle (role from the registry) and a kiosk (--role kiosk) get
  passwords; their agents connect and sync with the hub through their own
  topics; a device is refused another device's topics (subscribe refused,
  publish dropped).
- A vehicle retired on the hub is left out by `creds sync`: it can no longer
  connect (and its open connection is closed). `creds revoke`: the same.
- `creds rotate`: the old password fails, the new one works.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import Agent, Broker, Hub, fleetctl, per_test_timeout, wait_for  # noqa: E402,F401

import paho.mqtt.client as mqtt  # noqa: E402

class Creds:
    """fleetctl creds with this test's store and broker pid file."""

    def __init__(self, d, broker_pidfile):
        self.dir, self.pidfile = d, broker_pidfile
        self.hub = None

    def __call__(self, *args):
        extra = ["--hub", self.hub.url] if self.hub else ["--hub", "http://127.0.0.1:1"]
        return fleetctl(*extra, "creds", *args, "--creds-dir", self.dir,
                        "--broker-pid", self.pidfile)

    def password(self, *args):
        """Runs a command that makes a password (new, rotate) and returns it."""
        rc, out, err = self("--json", *args)
        assert rc == 0, out + err
        return json.loads(out.splitlines()[0])["password"]


def connect(broker, user, password, events=None):
    """Connects an MQTT 5 client as user; returns (client or None, CONNACK reason)."""
    got = []
    c = mqtt.Client(client_id=user, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    c.on_connect = lambda cl, ud, fl, rc, props=None: got.append(rc.value)
    if events is not None:
        c.on_disconnect = lambda cl, ud, rc, props=None: events.append(("disconnect", rc))
        c.on_message = lambda cl, ud, msg: events.append(("message", msg.topic))
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    wait_for(lambda: got, 10, f"CONNACK for {user}")
    if got[0] != 0:
        c.loop_stop()
        return None, got[0]
    return c, 0


def can_connect(broker, user, password):
    c, rc = connect(broker, user, password)
    if c:
        c.disconnect()
        c.loop_stop()
    return rc == 0


def refused(broker, user, password):
    """Waits until the broker refuses user's password: sync signals the broker
    and returns, and the broker reloads its files a moment later."""
    wait_for(lambda: not can_connect(broker, user, password), 10, f"{user}'s login refused")
    return True


def synced(agent):
    rc, out, _ = agent.ctl("status")
    return rc == 0 and "synced yes" in out


def dead_letter_topics(hub):
    status, rows = hub.api("GET", "/v1/dead-letters")
    assert status == 200
    return [r["topic"] for r in rows]


class HttpHub(Hub):
    """A hub that counts as started once its HTTP API answers, ready or not
    (it starts without a broker login)."""

    def wait_ready(self, timeout):
        def answering():
            self._check_alive()
            try:
                return self.api("GET", "/v1/health", timeout=1)[0] in (200, 503)
            except OSError:
                return False
        wait_for(answering, timeout, "the hub's HTTP API")


@pytest.fixture
def setup(tmp_path):
    creds_dir = tmp_path / "creds"
    creds_dir.mkdir()
    (creds_dir / "passwd").write_text("")
    (creds_dir / "acl").write_text("# fleetctl creds sync writes this\n")
    pidfile = tmp_path / "mosquitto.pid"
    with Broker(allow_anonymous="false", password_file=creds_dir / "passwd",
                acl_file=creds_dir / "acl", use_username_as_clientid="true",
                pid_file=pidfile) as broker:
        creds = Creds(creds_dir, pidfile)
        with HttpHub(broker, config={"mqtt": {"username": "hub"}}) as hub:
            creds.hub = hub
            # bootstrap: the hub's login, made while the hub runs without it
            hub_password = creds.password("new", "hub", "--role", "hub")
            hub.env["FLEET_HUB_MQTT_PASSWORD"] = hub_password
            hub.stop()
            Hub.start(hub)  # now it must become ready (MQTT connected)
            yield broker, hub, creds


def test_device_lifecycle(setup):
    broker, hub, creds = setup
    rc, _, err = hub.fleetctl("register", "V1", "--name", "Van", "--station", "s", "--rate", "600")
    assert rc == 0, err

    # the role comes from the registry; a device the hub does not know needs --role
    v1_pw = creds.password("new", "V1")
    rc, out, err = creds("new", "K1")
    assert rc == 1 and "no vehicle K1" in err, out + err
    k1_pw = creds.password("new", "K1", "--role", "kiosk")
    k2_pw = creds.password("new", "K2", "--role", "kiosk")
    rc, _, err = creds("new", "K1", "--role", "kiosk")
    assert rc == 1 and "already" in err, err
    acl = (creds.dir / "acl").read_text()
    assert "user V1\ntopic write fleet/v1/dev/V1/up/#\n" in acl, acl
    assert (creds.dir / "passwd").stat().st_mode & 0o777 == 0o640

    with Agent(broker, "V1", role="vehicle", config={"mqtt": {"password": v1_pw}}) as v1, \
            Agent(broker, "K1", role="kiosk", config={"mqtt": {"password": k1_pw}}) as k1:
        # hello on up/, sync back on down/: both devices talk through their own topics
        wait_for(lambda: synced(v1) and synced(k1), 20, "V1 and K1 synced with the hub")

        # K2 may not read V1's downlink, nor write on V1's uplink
        events = []
        k2, _ = connect(broker, "K2", k2_pw, events)
        k2.subscribe("fleet/v1/dev/V1/down/#", qos=1)  # granted, but nothing is delivered
        k2.subscribe("fleet/v1/hub/status", qos=1)
        wait_for(lambda: ("message", "fleet/v1/hub/status") in events, 10, "the hub's status")
        v1.restart()  # its hello gets the hub's sync on fleet/v1/dev/V1/down/sync
        wait_for(lambda: synced(v1), 20, "V1 synced again")
        time.sleep(0.5)
        assert not [e for e in events if e[0] == "message" and "/V1/" in e[1]], events
        # its own topic reaches the hub (a dead letter: not a message), V1's does not
        # (the refused publish also costs K2 its connection)
        k2.publish("fleet/v1/dev/K2/up/evt", b"\xa0", qos=1).wait_for_publish(10)
        wait_for(lambda: "fleet/v1/dev/K2/up/evt" in dead_letter_topics(hub), 10,
                 "K2's own publish reaching the hub")
        k2.publish("fleet/v1/dev/V1/up/evt", b"\xa0", qos=1).wait_for_publish(10)
        time.sleep(1)
        assert "fleet/v1/dev/V1/up/evt" not in dead_letter_topics(hub)
        k2.disconnect()
        k2.loop_stop()

        # V1 retired on the hub; sync leaves it out: its connection is closed
        # by the reload and it cannot log in again
        status, body = hub.api("POST", "/v1/vehicles/V1/retire")
        assert status == 200, body
        rc, out, err = creds("sync")
        assert rc == 0 and "V1 retired" in err, out + err
        assert "V1" not in (creds.dir / "passwd").read_text()
        assert refused(broker, "V1", v1_pw)
        wait_for(lambda: "connected no" in v1.ctl("status")[1], 10, "V1 disconnected")

        # K1 revoked: the same at once
        rc, out, err = creds("revoke", "K1")
        assert rc == 0, out + err
        assert refused(broker, "K1", k1_pw)
        wait_for(lambda: "connected no" in k1.ctl("status")[1], 10, "K1 disconnected")

    # K2 rotated: the old password fails, the new one works
    assert can_connect(broker, "K2", k2_pw)
    new_pw = creds.password("rotate", "K2")
    assert new_pw != k2_pw
    assert refused(broker, "K2", k2_pw)
    assert can_connect(broker, "K2", new_pw)

    rc, out, err = creds("--json", "list")
    assert rc == 0, err
    rows = {r["id"]: r for r in json.loads(out)}
    assert {k: (r["role"], r["status"], r["broker"]) for k, r in rows.items()} == {
        "hub": ("hub", "active", "allowed"), "V1": ("vehicle", "active", "retired"),
        "K1": ("kiosk", "revoked", "revoked"), "K2": ("kiosk", "active", "allowed")}
    # the store keeps hashes only, never a password
    store = (creds.dir / "credentials").read_text()
    assert new_pw not in store and k2_pw not in store and "K2 kiosk active" in store


def test_sync_needs_the_hub_and_the_broker(setup, tmp_path):
    broker, hub, creds = setup
    rc, out, err = fleetctl("--hub", "http://127.0.0.1:1", "creds", "sync", "--creds-dir",
                            creds.dir, "--broker-pid", creds.pidfile)
    assert rc == 1 and "cannot reach the hub" in err, out + err
    rc, out, err = fleetctl("--hub", hub.url, "creds", "sync", "--creds-dir", creds.dir,
                            "--broker-pid", tmp_path / "nope.pid")
    assert rc == 1 and "reload mosquitto" in err, out + err
