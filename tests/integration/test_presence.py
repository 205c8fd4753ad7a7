"""Whether a vehicle's agent is connected, as a dashboard and the operator
see it: the retained fleet/v1/state/vehicle/{id} carries `online`, and the
hub's devices list agrees, when the agent starts, when it stops cleanly
(its will is published: P-TOP-4), and when it is killed.

Real mosquitto, hub and fleet-agent processes; a dashboard client with
Debian's paho-mqtt."""
import sys
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
