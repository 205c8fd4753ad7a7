"""What a dashboard sees: whether a vehicle's agent is connected, as a
dashboard and the operator see it: the retained fleet/v1/state/vehicle/{id} carries `online`, and the
hub's devices list agrees, when the agent starts, when it stops cleanly
(its will is published: P-TOP-4), and when it is killed.

Real mosquitto, hub and fleet-agent processes; a dashboard client with
Debian's paho-mqtt."""
import sys
import time
import uuid
from pathlib import Path

import cbor2
import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import Agent, wait_for  # noqa: E402
from fleet import broker, make_hub, per_test_timeout  # noqa: E402,F401  (pytest fixtures)


def retained_vehicle(broker, vehicle, timeout=5):
    """The body of the retained vehicle_state of vehicle, read as a dashboard
    does (a fresh subscriber), or None."""
    got = []
    client = mqtt.Client(client_id=f"dash-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, msg: got.append(cbor2.loads(msg.payload)) if msg.retain else None
    client.connect("127.0.0.1", broker.port, keepalive=30)
    client.loop_start()
    try:
        client.subscribe(f"fleet/v1/state/vehicle/{vehicle}", qos=1)
        wait_for(lambda: got, timeout, "the retained vehicle state")
        return got[0]["body"]
    finally:
        client.disconnect()
        client.loop_stop()


def online_at_hub(hub, device):
    status, devices = hub.api("GET", "/v1/devices")
    assert status == 200
    return {d["id"]: d for d in devices}.get(device, {}).get("online") == 1


def wait_online(broker, hub, vehicle, online, what):
    def agrees():
        body = retained_vehicle(broker, vehicle)
        return bool(body.get("online")) == online and online_at_hub(hub, vehicle) == online
    wait_for(agrees, 15, what)


def test_online_follows_the_agent(broker, make_hub):
    hub = make_hub()
    rc, out, err = hub.fleetctl("register", "V1", "--name", "Golf", "--station", "S1", "--rate", "900")
    assert rc == 0, err
    assert retained_vehicle(broker, "V1").get("online", False) is False  # never connected

    agent = Agent(broker, "V1", role="vehicle")
    try:
        wait_online(broker, hub, "V1", True, "V1 online in the retained state and the devices list")
        body = retained_vehicle(broker, "V1")
        assert body["state"] == "AVAILABLE"

        # a clean stop (SIGTERM): the agent disconnects with its will, so it
        # does not stay ONLINE for ever
        agent.stop()
        wait_online(broker, hub, "V1", False, "V1 offline after a clean stop")

        # back, then killed: the broker publishes the will on the dropped socket
        agent.start()
        wait_online(broker, hub, "V1", True, "V1 online again")
        agent.kill()
        wait_online(broker, hub, "V1", False, "V1 offline after a kill")
        assert retained_vehicle(broker, "V1")["state"] == "AVAILABLE"  # presence is not a state change
    finally:
        agent.close()


def test_json_mirror_for_dashboards(broker, make_hub):
    """With [mqtt] json_mirror = true a dashboard that reads no CBOR
    (Node-RED, Grafana's MQTT source) gets the same state and notices as JSON
    on fleet/v1/json/... (docs/dashboards.md)."""
    import json
    hub = make_hub(config={"mqtt": {"json_mirror": "true"}})
    got = {}
    client = mqtt.Client(client_id=f"dash-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, msg: got.setdefault(msg.topic, []).append(json.loads(msg.payload))
    client.connect("127.0.0.1", broker.port, keepalive=30)
    client.subscribe("fleet/v1/json/#", qos=1)
    client.loop_start()
    try:
        rc, out, err = hub.fleetctl("register", "V7", "--name", "Kangoo", "--station", "S1", "--rate", "900")
        assert rc == 0, err
        wait_for(lambda: "fleet/v1/json/state/vehicle/V7" in got and
                 "fleet/v1/json/notices/vehicle" in got, 10, "the JSON mirror")
        state = got["fleet/v1/json/state/vehicle/V7"][-1]
        assert state["type"] == "vehicle_state" and state["dev"] == "hub"
        assert state["body"]["vehicle"] == "V7" and state["body"]["state"] == "AVAILABLE"
        assert state["body"]["name"] == "Kangoo" and state["body"]["rate_cents"] == 900
        # rev 1.2: a batch's changes of one kind in one notices message
        notices = got["fleet/v1/json/notices/vehicle"][-1]
        assert notices["type"] == "notices" and notices["body"]["kind"] == "vehicle"
        note = notices["body"]["changes"][-1]
        assert (note["id"], note["to"]) == ("V7", "AVAILABLE")
        station = None
        wait_for(lambda: "fleet/v1/json/state/station/S1" in got, 10, "the station's counts")
        station = got["fleet/v1/json/state/station/S1"][-1]["body"]
        assert station["available"] == 1 and station["rented"] == 0
    finally:
        client.disconnect()
        client.loop_stop()


def test_ended_rentals_leave_the_broker(broker, make_hub):
    """The retained state of a rental that ended expires ([mqtt]
    ended_state_ttl_s, MQTT 5 message expiry): the broker does not keep one
    message per rental ever made. A vehicle's state stays. (Per-rental
    retained state is off by default since revision 1.2; the hubs that keep
    it for 1.1 dashboards, [mqtt] rental_states, get this.)"""
    import cbor2 as cbor
    hub = make_hub(config={"mqtt": {"ended_state_ttl_s": "2", "rental_states": "true"}})
    assert hub.fleetctl("register", "V1", "--name", "Clio", "--station", "S1", "--rate", "600")[0] == 0
    with Agent(broker, "K1", role="kiosk") as kiosk:
        rc, out, err = kiosk.ctl("rent", "V1", "C1", 30, "R-ttl-1", "--wait", 20)
        assert rc == 0 and "ACTIVE" in out, out + err
        rc, out, err = kiosk.ctl("return", "R-ttl-1", "--wait", 20)
        assert rc == 0 and "COMPLETED" in out, out + err

    def retained(topic):
        got = []
        c = mqtt.Client(client_id=f"dash-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
        c.on_message = lambda cl, u, msg: got.append(cbor.loads(msg.payload)) if msg.retain and msg.payload else None
        c.connect("127.0.0.1", broker.port, keepalive=30)
        c.loop_start()
        try:
            c.subscribe(topic, qos=1)
            time.sleep(1)
            return got
        finally:
            c.disconnect()
            c.loop_stop()
    # retained states are paced ([mqtt] state_interval_ms, 1 s): COMPLETED
    # replaces ACTIVE within the interval
    wait_for(lambda: [m["body"]["state"] for m in retained("fleet/v1/state/rental/R-ttl-1")]
             == ["COMPLETED"], 5, "the rental's final retained state")
    time.sleep(2.5)
    assert retained("fleet/v1/state/rental/R-ttl-1") == []  # expired at the broker
    assert [m["body"]["state"] for m in retained("fleet/v1/state/vehicle/V1")] == ["AVAILABLE"]


def test_no_retained_state_per_rental_by_default(broker, make_hub):
    """Revision 1.2: the broker keeps no message per rental: kiosks get the
    rental's state in decisions, dashboards in notices."""
    import cbor2 as cbor
    hub = make_hub()
    assert hub.fleetctl("register", "V1", "--name", "Clio", "--station", "S1", "--rate", "600")[0] == 0
    got = []
    c = mqtt.Client(client_id=f"dash-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    c.on_message = lambda cl, u, msg: got.append(msg.topic)
    c.connect("127.0.0.1", broker.port, keepalive=30)
    c.loop_start()
    try:
        c.subscribe("fleet/v1/state/#", qos=1)
        with Agent(broker, "K1", role="kiosk") as kiosk:
            rc, out, err = kiosk.ctl("rent", "V1", "C1", 30, "R-nr-1", "--wait", 20)
            assert rc == 0 and "ACTIVE" in out, out + err
            rc, out, err = kiosk.ctl("return", "R-nr-1", "--wait", 20)
            assert rc == 0 and "COMPLETED" in out, out + err
        wait_for(lambda: "fleet/v1/state/vehicle/V1" in got, 5, "the vehicle's state")
        time.sleep(1.5)
    finally:
        c.disconnect()
        c.loop_stop()
    assert not [t for t in got if t.startswith("fleet/v1/state/rental/")], got


def test_fleetctl_watch_prints_the_topics_decoded(broker, make_hub):
    """fleetctl watch: like mosquitto_sub -v, for people (CBOR decoded)."""
    import json
    import subprocess
    from fleet import BUILD
    hub = make_hub()
    assert hub.fleetctl("register", "V3", "--name", "Zoe", "--station", "S1", "--rate", "600")[0] == 0
    out = subprocess.run([str(BUILD / "hub" / "fleetctl"), "watch", "--broker", broker.uri,
                          "--count", "1", "--seconds", "10", "fleet/v1/state/vehicle/+"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    topic, payload = out.stdout.splitlines()[0].split(" ", 1)
    assert topic == "fleet/v1/state/vehicle/V3"
    body = json.loads(payload)["body"]
    assert (body["vehicle"], body["state"], body["name"]) == ("V3", "AVAILABLE", "Zoe")
    bad = subprocess.run([str(BUILD / "hub" / "fleetctl"), "watch", "--count", "x"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "--count" in bad.stderr
