"""Store faults: SQLite writes and syncs failed on purpose (docs/architecture.md,
"Faults injected"; project issue 14).

tests/faultvfs (libfaultvfs.so) is preloaded into the real fleet-hub and
fleet-agent processes. For each I/O step of a batch in turn (the k-th write,
the k-th sync, for k = 1, 2, ... until a burst of events is committed without
reaching the fault) the step fails, devices keep sending, the fault is cleared,
and every time:

- nothing is acknowledged that is not committed: every acked (device, seq) is
  in the hub's events table (P-SEQ-3);
- nothing committed is lost, each event is applied exactly once and in the
  device's order (P-SEQ-4);
- the hub keeps running, and once the fault clears everything is applied.

The devices of the hub loop are simulated here, speaking fleet/v1 by hand
(docs/protocol.md), so that the test sees every ack the hub publishes.

Run: /usr/bin/python3 -m pytest -q tests/fault/test_store_faults.py
"""

import os
import sqlite3
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("FLEET_TEST_TIMEOUT", "240")  # the loops below; ctest's timeout is higher

import cbor2
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import LOOPBACK, Agent, Broker, Hub, wait_for  # noqa: E402
from fleet import per_test_timeout  # noqa: E402,F401  (pytest fixture)
from faultvfs import FaultVfs  # noqa: E402

ROOT = "fleet/v1"
VEHICLES = ["V1", "V2", "V3"]
KIOSKS = {"K1": "V1", "K2": "V2"}  # each kiosk rents and returns its own vehicle


class SimDevice:
    """A device speaking fleet/v1 over MQTT 5 (P-TOP-2/4/5, P-SEQ-1..8): keeps
    every event it made, publishes them in seq order after the hub's sync,
    resends after acked on every sync, says hello again when the hub's boot
    changes (P-SEQ-13), and records the highest ack seen."""

    def __init__(self, broker, dev_id, role):
        self.id, self.role = dev_id, role
        self.boot = 1
        self.events = []          # encoded payloads; events[i] has seq i + 1
        self.acked = 0            # highest ack{upto} received
        self.synced = False
        self.hub_boot = None
        self.decisions = {}       # corr -> state
        self._lock = threading.Lock()
        self._mids = 0
        c = mqtt.Client(client_id=dev_id, protocol=mqtt.MQTTv5)
        c.username_pw_set(dev_id)
        c.will_set(self.topic("up/will"), cbor2.dumps(self._envelope("offline", {})), qos=1)
        c.on_message = self._on_message
        c.on_connect = self._on_connect
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
        c.connect(LOOPBACK, broker.port, keepalive=30, clean_start=False, properties=props)
        self.client = c
        c.loop_start()

    def topic(self, channel):
        return f"{ROOT}/dev/{self.id}/{channel}"

    def _envelope(self, msg_type, body, seq=0, corr=None):
        self._mids += 1
        m = {"v": 1, "type": msg_type, "mid": f"{self.id}-{self.boot}-{self._mids}",
             "dev": self.id, "boot": self.boot, "seq": seq, "time": int(time.time() * 1000),
             "body": body}
        if corr:
            m["corr"] = corr
        return m

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        client.subscribe([(f"{ROOT}/dev/{self.id}/down/#", 1), (f"{ROOT}/hub/status", 1)])
        self.hello()

    def hello(self):
        with self._lock:
            self.synced = False
            body = {"role": self.role, "last_seq": len(self.events), "last_ack": self.acked,
                    "applied": 0, "sw": "pytest"}
            self.client.publish(self.topic("up/hello"), cbor2.dumps(self._envelope("hello", body)),
                                qos=1)

    def _on_message(self, client, userdata, msg):
        try:
            m = cbor2.loads(msg.payload)
        except Exception:
            return
        body = m.get("body", {})
        if msg.topic == f"{ROOT}/hub/status":
            with self._lock:
                changed = body.get("online") and m.get("boot") != self.hub_boot
                if body.get("online"):
                    self.hub_boot = m.get("boot")
            if changed:
                self.hello()
        elif msg.topic == self.topic("down/ack"):
            with self._lock:
                self.acked = max(self.acked, body["upto"])
        elif msg.topic == self.topic("down/sync"):
            with self._lock:
                self.acked = max(self.acked, body["acked"])
                self.synced = True
                for payload in self.events[self.acked:]:
                    client.publish(self.topic("up/evt"), payload, qos=1)
        elif msg.topic in (self.topic("down/reply"), self.topic("down/cmd")):
            if msg.topic.endswith("reply") and m.get("corr"):
                self.decisions[m["corr"]] = body.get("state")
            ack = self._envelope("device_ack", {"upto": m["seq"]})
            client.publish(self.topic("up/ack"), cbor2.dumps(ack), qos=1)

    def send(self, msg_type, body, corr=None):
        """Stores a new event with the next seq and publishes it if synced."""
        with self._lock:
            seq = len(self.events) + 1
            payload = cbor2.dumps(self._envelope(msg_type, body, seq=seq, corr=corr))
            self.events.append(payload)
            if self.synced:
                self.client.publish(self.topic("up/evt"), payload, qos=1)
        return seq

    def all_acked(self):
        with self._lock:
            return self.synced and self.acked == len(self.events)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


class Fleet:
    """The simulated devices of the hub loop and what they send each round."""

    def __init__(self, broker):
        self.devices = {v: SimDevice(broker, v, "vehicle") for v in VEHICLES}
        self.devices.update({k: SimDevice(broker, k, "kiosk") for k in KIOSKS})
        self.round = 0
        self.open_rental = {}

    def send_round(self):
        """Every vehicle sends a reading; every kiosk asks for a rental of its
        vehicle, or returns the one it holds."""
        self.round += 1
        for i, v in enumerate(VEHICLES):
            self.devices[v].send("telemetry", {"odometer_m": 1000 * self.round + i,
                                               "energy_pct": 50, "lat": 48.1, "lon": 11.5,
                                               "speed_kmh": 30})
        for k, v in KIOSKS.items():
            rental = self.open_rental.pop(k, None)
            if rental:
                self.devices[k].send("rental_return", {"station": "S1"}, corr=rental)
            else:
                rental = f"{k}.r{self.round}"
                self.devices[k].send("rental_request",
                                     {"vehicle": v, "customer": f"C-{k}", "minutes": 60},
                                     corr=rental)
                self.open_rental[k] = rental

    def wait_all_acked(self, timeout):
        wait_for(lambda: all(d.all_acked() for d in self.devices.values()), timeout,
                 "every device's events to be acknowledged: " +
                 ", ".join(f"{d.id} {d.acked}/{len(d.events)}" for d in self.devices.values()))

    def close(self):
        for d in self.devices.values():
            d.close()


def committed_events(hub):
    """Returns {device: [seq, ... in the order the hub stored them]} from hub.db
    (read-only; the hub keeps writing through WAL)."""
    db = sqlite3.connect(f"file:{hub.db_path}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("SELECT device, seq FROM events ORDER BY id").fetchall()
    finally:
        db.close()
    out = {}
    for dev, seq in rows:
        out.setdefault(dev, []).append(seq)
    return out


def check_store(hub, fleet, what, complete=False):
    """The invariants after each fault: every acked (device, seq) is committed;
    each device's events are stored once each, in seq order, without holes
    (a hole would be a lost event); with complete=True every event sent is."""
    stored = committed_events(hub)
    for dev in fleet.devices.values():
        seqs = stored.get(dev.id, [])
        assert seqs == list(range(1, len(seqs) + 1)), \
            f"{what}: {dev.id}'s stored events are not 1..n once each, in order: {seqs}"
        assert dev.acked <= len(seqs), \
            (f"{what}: {dev.id} was acked up to {dev.acked} but the hub's events table holds "
             f"only 1..{len(seqs)}: an event acknowledged and never applied")
        if complete:
            assert len(seqs) == len(dev.events), f"{what}: {dev.id} {len(seqs)}/{len(dev.events)}"


def hub_ok(hub, what):
    assert hub.running(), f"{what}: the hub exited\n{hub.log()[-2000:]}"


@pytest.fixture
def broker():
    with Broker() as b:
        yield b


def test_hub_batch_faults(broker, tmp_path):
    """The k-th write and the k-th sync of the hub's batches fail (SQLITE_FULL,
    SQLITE_IOERR), k = 1.. until a round is committed without reaching the
    fault; then a disk that stays full for a while, and a hub stopped while it
    is full and started again."""
    fv = FaultVfs(tmp_path)
    # A small page cache: pages go to the WAL during the statements of a
    # batch (a cache spill), not only at COMMIT.
    env = fv.env(cache_file="hub.db", cache_pages=8)
    with Hub(broker, durability="full", env=env, latency_ms=2) as hub:
        for v in VEHICLES:
            rc, out, err = hub.fleetctl("register", v, "--name", v, "--station", "S1",
                                        "--rate", 600)
            assert rc == 0, err
        fleet = Fleet(broker)
        try:
            wait_for(lambda: all(d.synced for d in fleet.devices.values()), 15, "devices synced")
            fleet.send_round()
            fleet.wait_all_acked(15)
            results = []
            for op, error in (("write", "full"), ("write", "ioerr"), ("sync", "ioerr"),
                              ("sync", "full")):
                for k in range(1, 200):
                    what = f"{op} #{k} fails with {error}"
                    fv.arm(file="hub.db", op=op, nth=k, error=error)
                    fleet.send_round()
                    fired = False
                    try:
                        fleet.wait_all_acked(5)
                    except TimeoutError:
                        pass
                    fired = fv.status()["fired"] > 0
                    check_store(hub, fleet, what)
                    fleet.send_round()  # devices keep sending while the batch is retried
                    fv.clear()
                    fleet.send_round()
                    fleet.wait_all_acked(20)
                    hub_ok(hub, what)
                    check_store(hub, fleet, what, complete=True)
                    if not fired:
                        results.append(f"{op}/{error}: steps 1..{k - 1}")
                        break
            print("\n".join(results))

            # A disk that stays full: every write fails for a while.
            fv.arm(file="hub.db", op="write", nth=1, mode="after", error="full")
            for _ in range(5):
                fleet.send_round()
                time.sleep(0.2)
            assert fv.status()["fired"] > 0
            check_store(hub, fleet, "disk full for 1 s")
            hub_ok(hub, "disk full for 1 s")
            fv.clear()
            fleet.wait_all_acked(20)
            check_store(hub, fleet, "disk full for 1 s, cleared", complete=True)

            # Stopped while full: the hub gives the batch up (not committed,
            # not acked) and exits; started again it resumes.
            fv.arm(file="hub.db", op="write", nth=1, mode="after", error="full")
            fleet.send_round()
            assert fv.wait_fired(5)
            hub.stop(timeout=30)
            check_store(hub, fleet, "hub stopped while full")
            fv.clear()
            hub.start()
            fleet.send_round()
            fleet.wait_all_acked(30)
            check_store(hub, fleet, "hub restarted", complete=True)
            assert "not committed" in hub.log()
        finally:
            fleet.close()


def hub_requests(hub, dev):
    """Returns [(seq, corr)] of dev's events in the hub's events table, in the
    order stored."""
    db = sqlite3.connect(f"file:{hub.db_path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute("SELECT seq, corr FROM events WHERE device = ? ORDER BY id",
                          (dev,)).fetchall()
    finally:
        db.close()


def rent(kiosk, n):
    """Asks the kiosk's agent to queue a rental (no wait for the decision).
    Returns (rental id or None, the ctl's output)."""
    rc, out, err = kiosk.ctl("rent", "V1", f"C{n}", 30)
    line = (out + err).strip()
    if rc != 0:
        return None, line
    return line.split()[1], line


def test_agent_outbox_faults(broker, tmp_path):
    """The k-th write and the k-th sync of the kiosk agent's outbox fail while
    `fleet-agent ctl rent` queues an event, k = 1.. until a rent is stored
    without reaching the fault: every rent is either queued (and reaches the
    hub exactly once, in order) or refused with an error (and never reaches
    the hub)."""
    fv = FaultVfs(tmp_path)
    env = fv.env(program=Path(os.environ.get("FLEET_BUILD_DIR") or
                              Path(__file__).resolve().parents[2] / "build") /
                 "agent" / "fleet-agent")
    with Hub(broker, latency_ms=2) as hub, \
            Agent(broker, "K1", env=env, config={"outbox": {"durability": "full"}}) as kiosk:
        rc, out, err = hub.fleetctl("register", "V1", "--name", "V1", "--station", "S1",
                                    "--rate", 600)
        assert rc == 0, err
        queued, refused, n, results = [], [], 0, []

        def settled():
            return len(hub_requests(hub, "K1")) == len(queued)

        for op, error in (("write", "full"), ("write", "ioerr"), ("sync", "ioerr"),
                          ("sync", "full")):
            for k in range(1, 60):
                wait_for(settled, 15, "the hub to store every queued rent")
                fv.arm(file="agent-K1.db", op=op, nth=k, error=error)
                n += 1
                rental, line = rent(kiosk, n)
                fired = fv.status()["fired"] > 0
                fv.clear()
                if rental:
                    queued.append(rental)
                else:
                    assert fired, f"rent refused without a fault: {line}"
                    refused.append((f"{op} #{k} {error}", line))
                assert kiosk.running(), f"{op} #{k}: the agent exited\n{kiosk.log()[-2000:]}"
                n += 1
                rental, line = rent(kiosk, n)  # the fault cleared: it is queued
                assert rental, f"after {op} #{k} {error}: {line}"
                queued.append(rental)
                if not fired:
                    results.append(f"{op}/{error}: steps 1..{k - 1}")
                    break
        wait_for(settled, 20, "the hub to store every queued rent")
        stored = hub_requests(hub, "K1")
        assert [s for s, _ in stored] == list(range(1, len(stored) + 1))
        assert [c for _, c in stored] == queued, "queued rents reach the hub once each, in order"
        print("\n".join(results))
        print(f"{len(refused)} rents refused, e.g. {refused[:1]}")


def test_agent_crash_after_failed_sync(broker, tmp_path):
    """A rent refused because the outbox's commit could not be synced (its
    pages and commit mark are in the WAL already), then the agent killed at
    once: started again, it must not send the refused event (the caller was
    told it failed, and may ask again). Fails without outbox_fence()."""
    fv = FaultVfs(tmp_path)
    env = fv.env(program=Path(os.environ.get("FLEET_BUILD_DIR") or
                              Path(__file__).resolve().parents[2] / "build") /
                 "agent" / "fleet-agent")
    with Hub(broker, latency_ms=2) as hub, \
            Agent(broker, "K1", env=env, config={"outbox": {"durability": "full"}}) as kiosk:
        rc, out, err = hub.fleetctl("register", "V1", "--name", "V1", "--station", "S1",
                                    "--rate", 600)
        assert rc == 0, err
        first, line = rent(kiosk, 1)
        assert first, line
        sent = [first]
        wait_for(lambda: f"last_ack {len(sent)}" in kiosk.ctl("status")[1], 15, "the first rent acked")
        # The outbox's next sync fails. Another write of the outbox (an ack
        # coming in) may take the fault instead of the rent: then that rent is
        # queued as usual, and the fault is armed again for the next one.
        for n in range(2, 7):
            fv.arm(file="agent-K1.db", op="sync", nth=1, error="ioerr")
            refused, line = rent(kiosk, n)
            if refused is None:
                break
            sent.append(refused)
            fv.clear()
            wait_for(lambda: f"last_ack {len(sent)}" in kiosk.ctl("status")[1], 15, "the rent acked")
        assert refused is None, f"no rent was refused in 5 tries: {line}"
        kiosk.kill()
        fv.clear()
        kiosk.start()
        second, line = rent(kiosk, 9)
        assert second, line
        sent.append(second)
        wait_for(lambda: len(hub_requests(hub, "K1")) >= len(sent), 15, "the second rent at the hub")
        time.sleep(1)
        assert [c for _, c in hub_requests(hub, "K1")] == sent


def rows(path, sql, *args):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def test_payment_ledger_faults(broker, tmp_path):
    """The simulated provider's ledger (payments-sim.db) cannot be written: a
    charge must fail (the saga retries with the same idempotency key), never
    be reported without its ledger row; once the disk is back, each rental is
    charged exactly once."""
    fv = FaultVfs(tmp_path)
    build = Path(os.environ.get("FLEET_BUILD_DIR") or Path(__file__).resolve().parents[2] / "build")
    with Hub(broker, env=fv.env(), durability="full", latency_ms=2, max_attempts=1000,
             failures=1000) as hub, Agent(broker, "K1") as kiosk:
        ledger = hub.dir / "payments-sim.db"
        for v in VEHICLES:
            rc, out, err = hub.fleetctl("register", v, "--name", v, "--station", "S1",
                                        "--rate", 600)
            assert rc == 0, err
        for vehicle, op, error in (("V1", "write", "full"), ("V2", "sync", "ioerr"),
                                   ("V3", "write", "ioerr")):
            fv.arm(file="payments-sim.db", op=op, nth=1, mode="after", error=error)
            rc, out, err = kiosk.ctl("rent", vehicle, f"C-{vehicle}", 60)
            assert rc == 0, out + err
            rental = out.split()[1]
            assert fv.wait_fired(10), f"{op}: the ledger was not written"
            time.sleep(1.0)  # a few retries against the failing ledger
            state = rows(hub.db_path, "SELECT state FROM rentals WHERE id = ?", rental)
            assert state == [("PAYMENT_PENDING",)], \
                f"{op} {error}: rental {rental} is {state} while its charge could not be recorded"
            assert rows(ledger, "SELECT count(*) FROM ledger WHERE rental = ?", rental) == [(0,)]
            fv.clear()
            wait_for(lambda: rows(hub.db_path, "SELECT state FROM rentals WHERE id = ?",
                                  rental) == [("ACTIVE",)], 20, f"{rental} ACTIVE")
            charges = rows(ledger, "SELECT amount_cents FROM ledger WHERE rental = ? AND "
                           "kind = 'charge' AND outcome = 'ok'", rental)
            charged = rows(hub.db_path, "SELECT charged_cents FROM rentals WHERE id = ?", rental)
            assert len(charges) == 1 and charges[0][0] == charged[0][0] > 0, \
                f"{rental}: ledger {charges}, hub charged {charged}"
        assert "not recorded" in hub.log()
