"""Black-box test of the hub as a kiosk sees it over MQTT.

Written from the protocol's text (docs/protocol.md) only: the messages are
built by hand with cbor2 and sent with python paho over MQTT 5, never with the
project's own codec, so a mistake shared by the C encoder and decoder shows up
here. The hub is driven and inspected only through its published interfaces:
MQTT topics, fleetctl and the operator HTTP API.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_blackbox_client.py
(FLEET_BUILD_DIR names the build directory; default <repo>/build.)
"""

import sys
import threading
import time
import uuid
from pathlib import Path

import cbor2
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import LOOPBACK, parse_table, wait_for  # noqa: E402
from fleet import broker, make_hub, per_test_timeout  # noqa: E402,F401  (pytest fixtures)

ROOT = "fleet/v1"
WAIT_S = 15  # longest wait for any one expected message
PENDING_STATES = {"REQUESTED", "PAYMENT_PENDING"}


def now_ms():
    return int(time.time() * 1000)


ENVELOPE_KEYS = {"v", "type", "mid", "dev", "boot", "seq", "time", "body"}


def check_envelope(msg):
    """P-ENV-1: every message carries the whole envelope, of version 1."""
    assert ENVELOPE_KEYS <= set(msg), f"envelope keys missing: {ENVELOPE_KEYS - set(msg)}"
    assert msg["v"] == 1
    assert isinstance(msg["body"], dict)


class Kiosk:
    """A kiosk device speaking fleet/v1 by hand over MQTT 5, connected as
    P-TOP-2, P-TOP-4 and P-TOP-5 ask: username = device id, an offline last will, a session
    that outlives the connection, subscribed to its downlink and hub status."""

    def __init__(self, broker, dev_id, boot=1):
        self.id = dev_id
        self.boot = boot
        self._mids = 0
        self._lock = threading.Condition()
        self._inbox = []  # (topic, message dict or None, properties, qos)
        self.client = mqtt.Client(client_id=dev_id, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(dev_id)
        self.client.will_set(self.topic("up/will"), cbor2.dumps(self.envelope("offline", {})),
                             qos=1, retain=False)
        self.client.on_message = self._on_message
        connect_props = Properties(PacketTypes.CONNECT)
        connect_props.SessionExpiryInterval = 300
        self.client.connect(LOOPBACK, broker.port, keepalive=30, clean_start=False,
                            properties=connect_props)
        self.client.loop_start()
        self.subscribe(f"{ROOT}/dev/{dev_id}/down/#")
        self.subscribe(f"{ROOT}/hub/status")

    def close(self):
        self.client.disconnect()  # a clean DISCONNECT: the broker drops the will
        self.client.loop_stop()

    def subscribe(self, topic_filter):
        done = threading.Event()
        self.client.on_subscribe = lambda *args: done.set()
        self.client.subscribe(topic_filter, qos=1)
        assert done.wait(WAIT_S), f"no SUBACK for {topic_filter}"

    def _on_message(self, client, userdata, msg):
        try:
            decoded = cbor2.loads(msg.payload)
        except Exception:  # the test asserts on types, not here
            decoded = None
        with self._lock:
            self._inbox.append((msg.topic, decoded, msg.properties, msg.qos))
            self._lock.notify_all()

    def topic(self, channel):
        return f"{ROOT}/dev/{self.id}/{channel}"

    def envelope(self, msg_type, body, seq=0, corr=None, dev=None):
        """A message as the protocol's envelope (P-ENV-1..6): v, type, mid, dev,
        boot, seq, time, optional corr, body."""
        self._mids += 1  # P-ENV-5: {dev}-{boot}-{counter}
        m = {"v": 1, "type": msg_type, "mid": f"{self.id}-{self.boot}-{self._mids}",
             "dev": dev or self.id, "boot": self.boot, "seq": seq, "time": now_ms(),
             "body": body}
        if corr:
            m["corr"] = corr
        return m

    def publish(self, channel, payload, response_topic=None, correlation=None):
        """Publishes raw bytes at QoS 1 on this device's channel and waits
        for the broker's PUBACK."""
        props = None
        if response_topic or correlation:
            props = Properties(PacketTypes.PUBLISH)
            if response_topic:
                props.ResponseTopic = response_topic
            if correlation:
                props.CorrelationData = correlation
        info = self.client.publish(self.topic(channel), payload, qos=1, properties=props)
        info.wait_for_publish(timeout=WAIT_S)
        assert info.is_published(), f"no PUBACK for {channel}"

    def expect(self, channel, match=lambda topic, msg, props: True, timeout=WAIT_S):
        """Waits for a message on this device's channel that satisfies match;
        removes it from the inbox and returns (message dict, properties)."""
        topic = self.topic(channel)
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for i, (t, msg, props, qos) in enumerate(self._inbox):
                    if t == topic and msg is not None and match(t, msg, props):
                        del self._inbox[i]
                        check_envelope(msg)
                        assert qos == 1, f"P-TOP-1: {topic} published with QoS {qos}"
                        return msg, props
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(t, m) for t, m, _, _ in self._inbox]
                    raise AssertionError(f"nothing matching on {topic} in {timeout} s; "
                                         f"inbox: {seen}")
                self._lock.wait(left)

    def expect_nothing(self, channel, seconds):
        """Asserts that no message arrives on channel within seconds."""
        time.sleep(seconds)
        with self._lock:
            seen = [m for t, m, _, _ in self._inbox if t == self.topic(channel)]
        assert not seen, f"unexpected on {channel}: {seen}"

    def hello(self):
        """Announces the device (P-SEQ-6: hello on up/hello) and returns the
        body of the hub's sync answer from down/sync (P-SEQ-7)."""
        body = {"role": "kiosk", "last_seq": 0, "last_ack": 0, "applied": 0, "sw": "pytest"}
        self.publish("up/hello", cbor2.dumps(self.envelope("hello", body)))
        sync, _ = self.expect("down/sync")
        assert sync["type"] == "sync"
        assert sync["dev"] == self.id
        for key in ("acked", "next_seq", "down_seq"):
            assert isinstance(sync["body"][key], int), f"sync.{key}"
        assert sync["body"]["next_seq"] == sync["body"]["acked"] + 1  # P-SEQ-7
        return sync["body"]

    def rental_request(self, rental, vehicle, customer, minutes, seq):
        """Publishes a rental_request on up/evt as an MQTT 5 request: its
        ResponseTopic is down/reply and its CorrelationData the rental id
        (P-REQ-1). Returns the encoded bytes, for resending."""
        msg = self.envelope("rental_request",
                            {"vehicle": vehicle, "customer": customer, "minutes": minutes},
                            seq=seq, corr=rental)
        payload = cbor2.dumps(msg)
        self.resend(payload, rental)
        return payload

    def resend(self, payload, rental):
        self.publish("up/evt", payload, response_topic=self.topic("down/reply"),
                     correlation=rental.encode())

    def expect_ack(self, seq):
        """Waits for a cumulative ack covering seq (P-SEQ-3) on down/ack."""
        ack, _ = self.expect("down/ack", lambda t, m, p: m.get("body", {}).get("upto", -1) >= seq)
        assert ack["type"] == "ack"
        assert ack["dev"] == self.id
        return ack["body"]["upto"]

    def expect_decision(self, rental):
        """Waits for the final decision on rental: a "decision" on the
        response topic (down/reply) whose CorrelationData is the one of the
        request and whose envelope corr is the rental id. Interim decisions
        (still REQUESTED / PAYMENT_PENDING), should a hub send them, are
        skipped. Each decision is a sequenced downlink (P-SEQ-9), so it is
        acknowledged with device_ack (P-SEQ-10). Returns the last one's body."""
        def ours(topic, msg, props):
            return getattr(props, "CorrelationData", None) == rental.encode()
        while True:
            msg, props = self.expect("down/reply", ours)
            assert msg["type"] == "decision"
            assert msg["corr"] == rental  # P-REQ-2
            assert msg["dev"] == self.id
            assert msg["seq"] >= 1  # P-SEQ-9
            self.publish("up/ack", cbor2.dumps(self.envelope("device_ack", {"upto": msg["seq"]})))
            if msg["body"]["state"] not in PENDING_STATES:
                return msg["body"]


@pytest.fixture
def kiosk(broker):
    k = Kiosk(broker, "K-py")
    yield k
    k.close()


def register_v1(hub):
    rc, out, err = hub.fleetctl("register", "V1", "--name", "Blue Fiat", "--station", "S1",
                                "--rate", "1200")
    assert rc == 0, err


def vehicle_row(hub, vehicle):
    rc, out, err = hub.fleetctl("vehicles")
    assert rc == 0, err
    rows = [r for r in parse_table(out) if r["ID"] == vehicle]
    assert len(rows) == 1, out
    return rows[0]


def read_retained(broker, topic, timeout=5):
    """Subscribes with a fresh client and returns the first retained
    message's (decoded payload, retain flag), or None if none arrives."""
    got = []
    arrived = threading.Event()
    client = mqtt.Client(client_id=f"dash-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)

    def on_message(c, u, msg):
        got.append((cbor2.loads(msg.payload), msg.retain))
        arrived.set()
    client.on_message = on_message
    client.connect(LOOPBACK, broker.port, keepalive=30)
    client.loop_start()
    try:
        client.subscribe(topic, qos=1)
        return got[0] if arrived.wait(timeout) else None
    finally:
        client.disconnect()
        client.loop_stop()


def test_paid_rental_makes_the_vehicle_rented(broker, make_hub, kiosk):
    hub = make_hub()
    register_v1(hub)
    assert vehicle_row(hub, "V1")["STATE"] == "AVAILABLE"

    sync = kiosk.hello()
    assert sync == {"acked": 0, "next_seq": 1, "down_seq": 0}  # a new device: P-SEQ-1, P-SEQ-7
    seq = sync["next_seq"]
    kiosk.rental_request("K-py-r1", "V1", "C1", 60, seq)

    # P-SEQ-3: the event is committed, then acknowledged cumulatively.
    assert kiosk.expect_ack(seq) == seq
    # P-REQ-2: one answer on the response topic, correlated with the request.
    decision = kiosk.expect_decision("K-py-r1")
    assert decision["subject"] == "rental"
    assert decision["ok"] is True
    assert decision["state"] == "ACTIVE"
    assert decision["charged_cents"] == 1200  # 60 minutes at 1200 cents per hour

    row = vehicle_row(hub, "V1")
    assert row["STATE"] == "RENTED"
    assert row["RENTAL"] == "K-py-r1"

    # The vehicle's retained read model for dashboards (section 4.4). Kept
    # last so that an expected failure here hides none of the checks above.
    # Retained states are paced (rev 1.2, [mqtt] state_interval_ms, 1 s by
    # default): RENTED is there within the interval, not always at once.
    deadline = time.monotonic() + 5
    while True:
        retained = read_retained(broker, f"{ROOT}/state/vehicle/V1")
        if retained is None or retained[0]["body"]["state"] == "RENTED":
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if retained is None:
        pytest.xfail("the hub publishes no retained fleet/v1/state/vehicle/V1 (yet)")
    state, retain_flag = retained
    assert retain_flag  # P-TOP-1
    check_envelope(state)
    assert state["type"] == "vehicle_state"
    assert (state["dev"], state["seq"]) == ("hub", 0)
    assert state["body"]["vehicle"] == "V1"
    assert state["body"]["state"] == "RENTED"
    assert state["body"].get("rental") == "K-py-r1"


def test_declined_payment_leaves_no_rental(broker, make_hub, kiosk):
    hub = make_hub(decline_rate=1.0)
    register_v1(hub)

    seq = kiosk.hello()["next_seq"]
    kiosk.rental_request("K-py-r2", "V1", "C1", 60, seq)

    kiosk.expect_ack(seq)  # P-REQ-3: recorded, not granted
    decision = kiosk.expect_decision("K-py-r2")
    assert decision["ok"] is False
    assert decision["state"] == "REJECTED"
    assert decision.get("reason"), "a rejection says why"
    assert not decision.get("charged_cents")

    status, vehicle = hub.api("GET", "/v1/vehicles/V1")
    assert status == 200
    assert vehicle["state"] == "AVAILABLE"
    assert vehicle_row(hub, "V1")["STATE"] == "AVAILABLE"
    status, rental = hub.api("GET", "/v1/rentals/K-py-r2")
    assert status == 404 or rental["state"] == "REJECTED"


def test_duplicate_event_is_acked_again_and_applied_once(broker, make_hub, kiosk):
    hub = make_hub()
    register_v1(hub)

    seq = kiosk.hello()["next_seq"]
    payload = kiosk.rental_request("K-py-r3", "V1", "C1", 60, seq)
    kiosk.expect_ack(seq)
    assert kiosk.expect_decision("K-py-r3")["state"] == "ACTIVE"

    # P-SEQ-4: the same event again (same seq, same bytes, P-ENV-5) is a
    # duplicate: acked again with the watermark, not applied.
    kiosk.resend(payload, "K-py-r3")
    assert kiosk.expect_ack(seq) == seq

    status, rentals = hub.api("GET", "/v1/rentals?vehicle=V1")
    assert status == 200
    assert [r["id"] for r in rentals] == ["K-py-r3"]
    assert rentals[0]["charged_cents"] == 1200  # charged once
    status, health = hub.api("GET", "/v1/health")
    assert status == 200
    assert health["duplicates"] >= 1


def test_known_corr_gets_the_decision_already_taken(broker, make_hub, kiosk):
    hub = make_hub()
    register_v1(hub)

    seq = kiosk.hello()["next_seq"]
    kiosk.rental_request("K-py-r4", "V1", "C1", 60, seq)
    kiosk.expect_ack(seq)
    first = kiosk.expect_decision("K-py-r4")
    assert first["state"] == "ACTIVE"

    # P-REQ-4: a new event (next seq) with a corr the hub already knows
    # creates nothing; it is answered with the same decision.
    kiosk.rental_request("K-py-r4", "V1", "C1", 60, seq + 1)
    assert kiosk.expect_ack(seq + 1) == seq + 1
    again = kiosk.expect_decision("K-py-r4")
    assert again["state"] == first["state"]
    assert again["ok"] == first["ok"]

    status, rentals = hub.api("GET", "/v1/rentals?customer=C1")
    assert status == 200
    assert [r["id"] for r in rentals] == ["K-py-r4"]
    assert rentals[0]["charged_cents"] == 1200


def test_bad_messages_are_dead_lettered_and_the_hub_keeps_running(broker, make_hub, kiosk):
    hub = make_hub()
    register_v1(hub)

    # P-DEC-2: a map of two entries cut short in its second key: not CBOR.
    garbage = bytes.fromhex("a2617601") + b"\x64ty"
    kiosk.publish("up/evt", garbage)
    # P-TOP-3: a well-formed event whose "dev" is not the device of the topic...
    impostor = cbor2.dumps(kiosk.envelope(
        "rental_request", {"vehicle": "V1", "customer": "C1", "minutes": 60},
        seq=1, corr="K-other-r1", dev="K-other"))
    kiosk.publish("up/evt", impostor)
    # ...and one whose type does not belong to the channel (hello on up/evt).
    misplaced = cbor2.dumps(kiosk.envelope(
        "hello", {"role": "kiosk", "last_seq": 0, "last_ack": 0, "applied": 0}))
    kiosk.publish("up/evt", misplaced)

    def all_listed():
        status, letters = hub.api("GET", "/v1/dead-letters")
        assert status == 200
        by_payload = {d["payload"]: d for d in letters}
        wanted = {garbage.hex(), impostor.hex(), misplaced.hex()}
        return by_payload if wanted <= set(by_payload) else None
    letters = wait_for(all_listed, WAIT_S, "the three messages in /v1/dead-letters")
    # P-DEC-12: kept with topic, payload, error token and a reason.
    expected = {garbage: "malformed", impostor: "topic", misplaced: "topic"}
    for payload, token in expected.items():
        letter = letters[payload.hex()]
        assert letter["error"] == token, letter
        assert letter["topic"] == kiosk.topic("up/evt")
        assert letter["detail"]

    # P-DEC-12: a rejected message has no other effect: no ack, no rental.
    kiosk.expect_nothing("down/ack", 1.0)
    assert hub.api("GET", "/v1/rentals/K-other-r1")[0] == 404
    assert hub.api("GET", "/v1/vehicles/V1")[1]["state"] == "AVAILABLE"

    # ...and the hub goes on: healthy, and still serving this device.
    assert hub.running()
    status, health = hub.api("GET", "/v1/health")
    assert status == 200 and health["status"] == "ok"
    assert health["rejected"] >= 3
    rc, out, err = hub.fleetctl("dead-letters")
    assert rc == 0, err
    assert {r["ERROR"] for r in parse_table(out)} >= {"malformed", "topic"}
    assert kiosk.hello()["next_seq"] == 1
