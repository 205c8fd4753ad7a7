"""Protocol revision 1.2 at the device: a fleet-agent on the partitioned topic
family (docs/protocol.md, "Revision 1.2"), against a hub played by this test
with a raw MQTT client, so that it does not wait for the hub's side of 1.2:

- hello, events, the response topic and device_ack use fleet/v1/p/{p}/dev/K1/...
  with p = FNV-1a 32 of the id mod the partition count (P-PART-1, P-PART-2);
- a decision's upto acknowledges the outbox like an ack (P-ACK-1);
- a new epoch of the partition's status, or the partition back online, makes
  the agent say hello again; a status it has seen does not (P-PART-6);
- [mqtt] topic_family = legacy keeps the topics of 1.0 and 1.1, and bad values
  of topic_family and partitions stop the daemon at start.

Real mosquitto and fleet-agent processes."""
import os
import subprocess
import sys
import time
from pathlib import Path

import cbor2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import BUILD, Agent, wait_for  # noqa: E402
from fleet import broker, per_test_timeout  # noqa: E402,F401  (pytest fixtures)

AGENT = str(BUILD / "agent" / "fleet-agent")


def fnv1a32(s):
    h = 2166136261
    for b in s.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


class FakeHub:
    """A raw MQTT 5 client that sees everything under fleet/v1/ and publishes
    what the test tells it, as the hub would."""

    def __init__(self, broker, user=None, password=None):
        import paho.mqtt.client as mqtt
        self.got, self.mids, self.acks = [], 0, []
        self.c = mqtt.Client(client_id=user or "fake-hub", protocol=mqtt.MQTTv5)
        if user:
            self.c.username_pw_set(user, password)
        self.c.on_message = lambda cl, ud, msg: self.got.append(
            (msg.topic, cbor2.loads(msg.payload) if msg.payload else None, msg.properties))
        self.c.on_connect = lambda cl, ud, flags, rc, props=None: self.acks.append(str(rc))
        self.c.on_subscribe = lambda cl, ud, mid, codes, props=None: self.acks.append("suback")
        self.c.connect("127.0.0.1", broker.port, keepalive=30)
        self.c.loop_start()
        wait_for(lambda: self.acks, 10, "the fake hub's CONNACK")
        self.c.subscribe("fleet/v1/#", qos=1)
        wait_for(lambda: "suback" in self.acks, 10, "the fake hub's SUBACK")

    def publish(self, topic, mtype, dev, body, seq=0, corr=None, retain=False):
        self.mids += 1
        m = {"v": 1, "type": mtype, "mid": "hub-%d" % self.mids, "dev": dev, "boot": 1,
             "seq": seq, "time": int(time.time() * 1000)}
        if corr:
            m["corr"] = corr
        m["body"] = body
        self.c.publish(topic, cbor2.dumps(m), qos=1, retain=retain).wait_for_publish(timeout=10)

    def messages(self, topic_part, mtype):
        return [(t, m, p) for t, m, p in self.got
                if topic_part in t and m is not None and m.get("type") == mtype]

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def status(agent):
    rc, out, err = agent.ctl("status")
    assert rc == 0, err
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def test_partitioned_device_end_to_end(broker):
    p = fnv1a32("K1") % 256
    base = "fleet/v1/p/%d/dev/K1/" % p
    hub = FakeHub(broker)
    try:
        hub.publish("fleet/v1/hub/status", "hub_status", "hub", {"online": True}, retain=True)
        hub.publish("fleet/v1/p/%d/status" % p, "partition_status", "hub",
                    {"partition": p, "epoch": 1, "hub": "hub-a", "online": True}, retain=True)
        with Agent(broker, "K1", role="kiosk") as kiosk:
            wait_for(lambda: hub.messages(base + "up/hello", "hello"), 20, "the hello on " + base)
            assert not [t for t, _, _ in hub.got if t.startswith("fleet/v1/dev/")], hub.got
            hub.publish(base + "down/sync", "sync", "K1",
                        {"acked": 0, "next_seq": 1, "down_seq": 0})
            wait_for(lambda: status(kiosk).get("synced") == "yes", 20, "the kiosk synced")
            assert status(kiosk)["partition"] == str(p)

            # a request on the partitioned family, with its response topic there too
            rc, out, err = kiosk.ctl("rent", "V1", "C1", 30)
            assert rc == 0, err
            evt = wait_for(lambda: hub.messages(base + "up/evt", "rental_request"), 20,
                           "the rental request")
            topic, req, props = evt[0]
            assert props.ResponseTopic == base + "down/reply", props
            rental = req["corr"]
            assert status(kiosk)["backlog"] == "1"

            # the decision carries the ack: no separate ack is sent (P-ACK-1)
            hub.publish(base + "down/reply", "decision", "K1",
                        {"subject": "rental", "state": "ACTIVE", "ok": True,
                         "charged_cents": 1500, "upto": req["seq"]}, seq=1, corr=rental)
            wait_for(lambda: status(kiosk).get("backlog") == "0", 20, "the outbox emptied")
            st = status(kiosk)
            assert st["last_ack"] == str(req["seq"]) and st["applied"] == "1", st
            rc, out, err = kiosk.ctl("decision", rental)
            assert rc == 0 and "ACTIVE" in out, out + err
            wait_for(lambda: [m for _, m, _ in hub.messages(base + "up/ack", "device_ack")
                              if m["body"]["upto"] == 1], 20, "device_ack upto 1")

            def hellos():
                return len(hub.messages(base + "up/hello", "hello"))

            # the partition moves to another hub: new epoch => hello again
            n = hellos()
            hub.publish("fleet/v1/p/%d/status" % p, "partition_status", "hub",
                        {"partition": p, "epoch": 2, "hub": "hub-b", "online": True},
                        retain=True)
            wait_for(lambda: hellos() == n + 1, 20, "a hello for epoch 2")
            hub.publish(base + "down/sync", "sync", "K1",
                        {"acked": req["seq"], "next_seq": req["seq"] + 1, "down_seq": 1})
            wait_for(lambda: status(kiosk).get("synced") == "yes", 20, "synced again")
            # an epoch already seen, and an offline status: no hello
            for epoch, online in ((2, True), (1, True), (2, False)):
                hub.publish("fleet/v1/p/%d/status" % p, "partition_status", "hub",
                            {"partition": p, "epoch": epoch, "hub": "hub-b", "online": online},
                            retain=True)
            time.sleep(1.5)
            assert hellos() == n + 1, hub.messages(base + "up/hello", "hello")
            # back online => hello
            hub.publish("fleet/v1/p/%d/status" % p, "partition_status", "hub",
                        {"partition": p, "epoch": 2, "hub": "hub-b", "online": True},
                        retain=True)
            wait_for(lambda: hellos() == n + 2, 20, "a hello for the partition back online")
            # a status naming another partition on this topic is dropped
            hub.publish("fleet/v1/p/%d/status" % p, "partition_status", "hub",
                        {"partition": (p + 1) % 256, "epoch": 9, "hub": "hub-x",
                         "online": True})
            wait_for(lambda: "dropped message on fleet/v1/p/%d/status" % p in kiosk.log(), 20,
                     "the wrong partition's status dropped")
            time.sleep(0.5)
            assert hellos() == n + 2
            assert kiosk.proc.poll() is None
    finally:
        hub.publish("fleet/v1/hub/status", "hub_status", "hub", {"online": False}, retain=True)
        hub.c.publish("fleet/v1/p/%d/status" % p, b"", qos=1, retain=True).wait_for_publish(10)
        hub.close()


def test_legacy_family_and_partition_count(broker):
    hub = FakeHub(broker)
    try:
        with Agent(broker, "V7", role="vehicle", config={"mqtt": {"topic_family": "legacy"}}) \
                as car, \
                Agent(broker, "V8", role="vehicle", config={"mqtt": {"partitions": 16}}) as car8:
            wait_for(lambda: hub.messages("fleet/v1/dev/V7/up/hello", "hello"), 20,
                     "V7's hello on the legacy family")
            p8 = fnv1a32("V8") % 16
            wait_for(lambda: hub.messages("fleet/v1/p/%d/dev/V8/up/hello" % p8, "hello"), 20,
                     "V8's hello in partition %d of 16" % p8)
            assert not [t for t, _, _ in hub.got if "/V7/" in t and "/p/" in t], hub.got
            assert status(car)["partition"] == "legacy"
            assert status(car8)["partition"] == str(p8)
    finally:
        hub.close()


def test_bad_topic_settings_stop_the_daemon(broker):
    agent = Agent(broker, "K1", role="kiosk", start=False)
    try:
        for key, value in (("TOPIC_FAMILY", "flat"), ("PARTITIONS", "0"),
                           ("PARTITIONS", "4097"), ("PARTITIONS", "many")):
            env = dict(os.environ, **{"FLEET_AGENT_MQTT_" + key: value})
            done = subprocess.run([AGENT, "run", "--config", str(agent.config_path)],
                                  capture_output=True, text=True, timeout=20, env=env)
            assert done.returncode != 0, (key, value)
            assert key.lower() in done.stderr, done.stderr
        env = dict(os.environ, FLEET_AGENT_MQTT_PARTITIONS="4096",
                   FLEET_AGENT_MQTT_TOPIC_FAMILY="legacy")
        done = subprocess.run([AGENT, "run", "--config", str(agent.config_path),
                               "--check-config"], capture_output=True, text=True, timeout=20,
                              env=env)
        assert done.returncode == 0, done.stderr
        assert "mqtt.partitions = 4096" in done.stdout, done.stdout
        assert "mqtt.topic_family = legacy" in done.stdout, done.stdout
    finally:
        agent.close()


def test_acl_lines_of_rev_1_2(tmp_path):
    # the ACL of docs/protocol.md (P-TOP-6) with the lines of rev 1.2: a
    # device with its own login reaches its partitioned subtree and its
    # partition's status, and cannot write into another device's subtree
    from fleet import Broker
    acl_text = Path(__file__).with_name("test_broker_security.py").read_text()
    acl_text = acl_text.split('ACL = """', 1)[1].split('"""', 1)[0]
    assert "pattern read  fleet/v1/p/+/status" in acl_text
    users = {"hub": "hub-secret", "K1": "k1-secret", "V2": "v2-secret"}
    passwords = tmp_path / "passwd"
    for i, (user, password) in enumerate(users.items()):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(passwords),
                        user, password], check=True, capture_output=True)
    acl = tmp_path / "acl"
    acl.write_text(acl_text)
    passwords.chmod(0o600)
    acl.chmod(0o600)
    p = fnv1a32("K1") % 256
    base = "fleet/v1/p/%d/dev/K1/" % p
    with Broker(allow_anonymous="false", password_file=passwords, acl_file=acl,
                use_username_as_clientid="true") as b:
        import paho.mqtt.client as mqtt
        hub = FakeHub(b, "hub", users["hub"])
        try:
            hub.publish("fleet/v1/p/%d/status" % p, "partition_status", "hub",
                        {"partition": p, "epoch": 1, "hub": "hub-a", "online": True},
                        retain=True)
            with Agent(b, "K1", role="kiosk", config={"mqtt": {"password": users["K1"]}}) as k1:
                wait_for(lambda: hub.messages(base + "up/hello", "hello"), 20, "K1's hello")
                hub.publish(base + "down/sync", "sync", "K1",
                            {"acked": 0, "next_seq": 1, "down_seq": 0})
                wait_for(lambda: status(k1).get("synced") == "yes", 20, "K1 synced")
                n = len(hub.messages(base + "up/hello", "hello"))
                hub.publish("fleet/v1/p/%d/status" % p, "partition_status", "hub",
                            {"partition": p, "epoch": 2, "hub": "hub-b", "online": True},
                            retain=True)
                wait_for(lambda: len(hub.messages(base + "up/hello", "hello")) == n + 1, 20,
                         "K1 read its partition's status and said hello")
                # V2, logged in as itself, writes into K1's partitioned subtree: dropped
                for topic in (base + "up/evt", base + "down/cmd"):
                    v2 = FakeHub(b, "V2", users["V2"])  # its SUBACK says it reads nothing
                    try:
                        v2.c.publish(topic, b"\xa0", qos=1).wait_for_publish(10)
                    except RuntimeError:
                        pass  # the broker may also drop the connection: not delivered either
                    v2.close()
                time.sleep(1)
                assert not [t for t, _, _ in hub.got if t in (base + "up/evt", base + "down/cmd")]
                assert "dropped message" not in k1.log()
        finally:
            hub.close()
