"""Kiosk queries (docs/protocol.md 6.1, P-QRY-1/2/6) from the agent's side:
`fleet-agent ctl available` and `ctl customer` publish a well-formed query on
up/query with the MQTT 5 Response Topic and Correlation Data, and print the
answer they get. The hub is played here by a Python paho client that checks
each query and answers it as P-QRY-2 says.

Real mosquitto and fleet-agent processes; no fleet-hub."""
import sys
import threading
from pathlib import Path

import cbor2
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import LOOPBACK, Agent, wait_for  # noqa: E402
from fleet import broker, per_test_timeout  # noqa: E402,F401  (pytest fixtures)

T0 = 1767225600000
ID_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")

# These devices use the topic family of 1.0/1.1, which hubs of 1.2 keep
# serving (docs/protocol.md P-PART-3), so that it stays covered and the test
# does not depend on the hub's side of 1.2; test_agent_partitions.py and the
# other integration tests run the partitioned default.
LEGACY = {"mqtt": {"topic_family": "legacy"}}


class FakeHub:
    """Subscribes to every device's up/query, records each query with its
    properties, and answers with answer_for(query) (None: no answer)."""

    def __init__(self, broker, answer_for):
        self.answer_for = answer_for
        self.queries = []  # (topic, message dict, response topic, correlation data)
        self.cond = threading.Condition()
        self.client = mqtt.Client(client_id="hub", protocol=mqtt.MQTTv5)
        self.client.username_pw_set("hub")
        self.client.on_message = self._on_message
        self.client.connect(LOOPBACK, broker.port, keepalive=30)
        self.client.loop_start()
        done = threading.Event()
        self.client.on_subscribe = lambda *args: done.set()
        self.client.subscribe("fleet/v1/dev/+/up/query", qos=1)
        assert done.wait(10), "no SUBACK"

    def _on_message(self, client, userdata, msg):
        props = msg.properties
        rt = getattr(props, "ResponseTopic", None)
        cd = getattr(props, "CorrelationData", None)
        q = cbor2.loads(msg.payload)
        with self.cond:
            self.queries.append((msg.topic, q, rt, cd, msg.qos))
            self.cond.notify_all()
        body = self.answer_for(q)
        if body is None:
            return
        answer = {"v": 1, "type": "answer", "mid": "hub-ans-%d" % len(self.queries),
                  "dev": q["dev"], "boot": 12, "seq": 0, "time": T0, "corr": q["corr"],
                  "body": body}
        out = Properties(PacketTypes.PUBLISH)
        out.CorrelationData = cd or q["corr"].encode()
        client.publish(rt or "fleet/v1/dev/%s/down/reply" % q["dev"], cbor2.dumps(answer),
                       qos=1, properties=out)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def check_query(topic, q, rt, cd, qos, dev):
    """P-QRY-1: topic, QoS, envelope and the MQTT 5 properties."""
    assert topic == "fleet/v1/dev/%s/up/query" % dev
    assert qos == 1
    assert q["v"] == 1 and q["type"] == "query" and q["dev"] == dev and q["seq"] == 0
    assert list(q)[:7] == ["v", "type", "mid", "dev", "boot", "seq", "time"]
    assert 1 <= len(q["corr"]) <= 64 and set(q["corr"]) <= ID_CHARS
    assert rt == "fleet/v1/dev/%s/down/reply" % dev
    assert cd == q["corr"].encode()


def answer(q):
    b = q["body"]
    if b["what"] == "available":
        if b.get("station") == "st-empty":
            return {"what": "available", "ok": True}
        return {"what": "available", "ok": True, "vehicles": [
            {"vehicle": "veh-0042", "name": "Blue Golf", "station": "st-central",
             "rate_cents": 1200, "energy_pct": 81},
            {"vehicle": "veh-0043", "station": "st-central", "rate_cents": 905}]}
    if b["customer"] == "cust-nobody":
        return {"what": "customer", "ok": False, "reason": "queries are for kiosks"}
    if b["customer"] == "cust-silent":
        return None
    return {"what": "customer", "ok": True,
            "rentals": [{"rental": "R-1", "vehicle": "veh-0042", "state": "ACTIVE",
                         "due_ms": T0, "charged_cents": 1500, "running_fee_cents": 900}],
            "bookings": [{"booking": "B-1", "vehicle": "veh-0043", "state": "HELD",
                          "start_ms": T0 + 1000, "end_ms": T0 + 2000, "deposit_cents": 2000}],
            "charged_cents": 3500, "refunded_cents": 50, "fees_paid_cents": 800,
            "fees_owed_cents": 900}


def test_kiosk_queries_and_prints_answers(broker):
    hub = FakeHub(broker, answer)
    try:
        with Agent(broker, "K1", role="kiosk", config=LEGACY) as k1:
            wait_for(lambda: "connected yes" in k1.ctl("status")[1], 10, "K1 connected")
            rc, out, err = k1.ctl("available", "st-central", "--wait", 10)
            assert rc == 0, err
            assert out.splitlines() == [
                'vehicle veh-0042 "Blue Golf" station=st-central rate=12.00/h energy=81%',
                "vehicle veh-0043 station=st-central rate=9.05/h",
            ]
            topic, q, rt, cd, qos = hub.queries[-1]
            check_query(topic, q, rt, cd, qos, "K1")
            assert q["body"] == {"what": "available", "station": "st-central"}

            rc, out, err = k1.ctl("available", "--from", T0, "--to", T0 + 3600000)
            assert rc == 0, err
            q = hub.queries[-1][1]
            assert q["body"] == {"what": "available", "start_ms": T0, "end_ms": T0 + 3600000}
            rc, out, err = k1.ctl("available", "st-empty")
            assert rc == 0 and out.strip() == "no vehicle available", (out, err)

            rc, out, err = k1.ctl("customer", "cust-7", "--wait", 10)
            assert rc == 0, err
            assert out.splitlines() == [
                "rental R-1 vehicle=veh-0042 ACTIVE due_ms=%d charged=15.00 fee=0.00"
                " running_fee=9.00" % T0,
                "booking B-1 vehicle=veh-0043 HELD start_ms=%d end_ms=%d deposit=20.00"
                % (T0 + 1000, T0 + 2000),
                "totals charged=35.00 refunded=0.50 fees_paid=8.00 fees_owed=9.00",
            ]
            topic, q, rt, cd, qos = hub.queries[-1]
            check_query(topic, q, rt, cd, qos, "K1")
            assert q["body"] == {"what": "customer", "customer": "cust-7"}
            assert len({q["corr"] for _, q, _, _, _ in hub.queries}) == 4  # a new id each

            # ok false: exit code 4 (refused) with the hub's reason
            rc, out, err = k1.ctl("customer", "cust-nobody")
            assert rc == 4 and "queries are for kiosks" in err, (rc, out, err)

            # no answer: asked again with the same id (P-QRY-1), then timeout (3)
            before = len(hub.queries)
            rc, out, err = k1.ctl("customer", "cust-silent", "--wait", 5)
            assert rc == 3, (rc, out, err)
            repeats = [q for _, q, _, _, _ in hub.queries[before:]]
            assert len(repeats) >= 2 and len({q["corr"] for q in repeats}) == 1

            # the control socket checks arguments before anything is sent
            n = len(hub.queries)
            assert k1.ctl("available", "--from", T0)[0] == 2
            assert k1.ctl("available", "--from", T0 + 5, "--to", T0)[0] == 2
            assert k1.ctl("customer", "cust 7")[0] == 2
            assert len(hub.queries) == n

        # a vehicle's agent does not ask (queries are for kiosks)
        with Agent(broker, "V1", role="vehicle", config=LEGACY) as v1:
            rc, out, err = v1.ctl("customer", "cust-7")
            assert rc == 2, (rc, out, err)
    finally:
        hub.close()
