"""Notifications are never lost (issue 13, item 5): the hub writes every
retained state and notification to its outbox in the transaction of the
change and deletes it only when the broker has it. Here the change commits
while the broker is down (the publish fails), then the hub is killed (SIGKILL:
whatever it held in memory is gone), then both come back: a dashboard that
subscribes afterwards still gets the rental's notices and its vehicle's retained state
(repeats allowed, with the same message id, P-NTF-1).

Real mosquitto, hub (simulated provider answering after 2 s) and fleet-agent
processes; the dashboard is Debian's paho-mqtt."""
import sys
import threading
import time
import uuid
from pathlib import Path

import cbor2
import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import Agent, wait_for  # noqa: E402
from fleet import broker, make_hub, per_test_timeout  # noqa: E402,F401  (pytest fixtures)


class Dashboard:
    """A subscriber to the notifications (fleet/v1/notices/#, rev 1.2's
    default, and fleet/v1/notify/#) and the vehicles' retained states."""

    def __init__(self, broker):
        self.got = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(client_id=f"dash-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
        self.client.on_message = self.on_message
        self.client.connect("127.0.0.1", broker.port, keepalive=30)
        self.client.subscribe([("fleet/v1/notify/#", 1), ("fleet/v1/notices/#", 1),
                               ("fleet/v1/state/vehicle/#", 1)])
        self.client.loop_start()

    def on_message(self, client, userdata, msg):
        if not msg.payload:
            return
        with self.lock:
            self.got.append((msg.topic, cbor2.loads(msg.payload)))

    def notices(self, kind, ident):
        """(to, message id) of every change of kind to ident, from notify
        messages and from the changes of notices messages."""
        out = []
        with self.lock:
            for t, m in self.got:
                if t == f"fleet/v1/notify/{kind}" and m["body"]["id"] == ident:
                    out.append((m["body"]["to"], m["mid"]))
                elif t == f"fleet/v1/notices/{kind}":
                    out += [(c["to"], m["mid"]) for c in m["body"]["changes"] if c["id"] == ident]
        return out

    def state(self, vehicle):
        with self.lock:
            states = [m["body"]["state"] for t, m in self.got if t == f"fleet/v1/state/vehicle/{vehicle}"]
        return states[-1] if states else None

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def test_a_notice_committed_while_the_broker_is_down_survives_a_crash(broker, make_hub):
    hub = make_hub(latency_ms=2000)
    assert hub.fleetctl("register", "V1", "--name", "Clio", "--station", "north", "--rate", "600")[0] == 0
    with Agent(broker, "K1", role="kiosk") as kiosk:
        rc, out, err = kiosk.ctl("rent", "V1", "C1", 30, "R-outbox-1")
        assert rc == 0, out + err
        # the request is recorded (PAYMENT_PENDING); the charge answers in 2 s
        wait_for(lambda: hub.sql("SELECT state FROM rentals WHERE id = 'R-outbox-1'")
                 == [("PAYMENT_PENDING",)], 10, "the rental recorded, paying")
        broker.kill()  # the charge's result commits while the broker is away
        wait_for(lambda: hub.sql("SELECT state FROM rentals WHERE id = 'R-outbox-1'")
                 == [("ACTIVE",)], 15, "the rental ACTIVE at the hub")
        time.sleep(0.5)
        assert hub.sql("SELECT count(*) FROM outbox")[0][0] > 0  # kept, not yet published
        hub.kill()  # what the hub held in memory is gone
        broker.start()
        dash = Dashboard(broker)
        try:
            hub.start()
            wait_for(lambda: ("ACTIVE" in [to for to, _ in dash.notices("rental", "R-outbox-1")]), 20,
                     "the rental's ACTIVE notice after the crash")
            assert "charged" in [to for to, _ in dash.notices("payment", "R-outbox-1")]
            wait_for(lambda: dash.state("V1") == "RENTED", 10, "the vehicle's retained state")
            # the broker has them now: the outbox drains
            wait_for(lambda: hub.sql("SELECT count(*) FROM outbox")[0][0] == 0, 15, "the outbox drained")
            # a repeat carries the same message id, so that subscribers drop it
            mids = [mid for to, mid in dash.notices("rental", "R-outbox-1") if to == "ACTIVE"]
            assert len(set(mids)) == 1, mids
        finally:
            dash.close()
