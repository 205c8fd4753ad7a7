"""Scale-out, the quick one: two hubs in cluster mode share one PostgreSQL
database and one broker; vehicles (fleet-agent, on both topic families) in
partitions of both hubs send telemetry; one hub is killed with SIGKILL.
The other takes its partitions within the lease and the settle time, and
every event is applied exactly once and in order. Also: a hub started with
another partition count refuses to start (exit 2, naming the key and both
numbers), and a message on a partitioned topic that is not its device's
partition is dead-lettered with reason "partition".

ctest scaleout_basic (labels scaleout, postgresql)."""
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
import fleet  # noqa: E402
from fleet import Agent, LOOPBACK, broker, per_test_timeout, wait_for  # noqa: F401,E402
from cluster import (LEGACY, PARTITIONS, cluster_hub, devices_in, held_by,  # noqa: E402
                     owners, partition_of, partitioned, wait_balanced)

LEASE_MS, SETTLE_MS = 3000, 1000


def status(agent):
    rc, out, _ = agent.ctl("status")
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line) if rc == 0 else {}


def all_acked(agent):
    s = status(agent)
    return s and s.get("backlog") == "0" and int(s["last_ack"]) == int(s["next_seq"]) - 1


@pytest.fixture
def shared_db():
    return fleet.fresh_pg_database()


def test_failover_exactly_once_in_order(broker, shared_db):
    pg, db = shared_db
    hubs, cars = [], []
    try:
        hubs.append(cluster_hub(broker, pg, db, "hub-a"))
        hubs.append(cluster_hub(broker, pg, db, "hub-b"))
        a, b = hubs
        held = wait_balanced(a, ["hub-a", "hub-b"])
        print("partitions:", held)
        ids = devices_in(set(held["hub-a"]), 3, "VA") + devices_in(set(held["hub-b"]), 3, "VB")
        # both topic families: the legacy one (1.0, 1.1) and the partitioned one (1.2)
        cars = [Agent(broker, d, role="vehicle", config=LEGACY if i % 2 else partitioned())
                for i, d in enumerate(ids)]
        stop = threading.Event()

        def drive(car):
            odo = 0
            while not stop.is_set():
                odo += 10
                car.ctl("telemetry", odo, 80, "48.85", "2.35")
                time.sleep(0.05)
        drivers = [threading.Thread(target=drive, args=(c,), daemon=True) for c in cars]
        for d in drivers:
            d.start()
        time.sleep(3)
        a.kill()  # SIGKILL: no release, its leases run out
        t_kill = time.monotonic()
        wait_for(lambda: len(held_by(b, "hub-b")) == PARTITIONS, 15, "hub-b holding every partition")
        failover_s = time.monotonic() - t_kill
        print(f"failover: hub-b held all {PARTITIONS} partitions {failover_s:.2f} s after the kill")
        assert failover_s < (LEASE_MS + SETTLE_MS) / 1000 + 1.5, failover_s
        time.sleep(3)
        stop.set()
        for d in drivers:
            d.join(timeout=20)
        for car in cars:
            wait_for(lambda: all_acked(car), 40, f"{car.id}'s events all acked")
        sent = {car.id: int(status(car)["next_seq"]) - 1 for car in cars}
        for device, n in sent.items():
            seqs = [s for (s,) in b.sql("SELECT seq FROM events WHERE device = ? ORDER BY id",
                                        (device,))]
            assert seqs == list(range(1, n + 1)), (device, n, len(seqs), seqs[:10])
        print("events per device:", sent)
        # every partition owned exactly once, by the survivor, at a raised epoch
        table = owners(b)
        assert len(table) == PARTITIONS and {o for o, _, _ in table.values()} == {"hub-b"}
        moved = [p for p in held["hub-a"]]
        assert all(table[p][1] >= 2 for p in moved), table
        assert "fence" not in b.log() or "rolled back" in b.log()
        status_code, body = b.api("POST", "/v1/read-models/check")
        assert status_code == 200, body
        assert b.stop() == 0  # a clean exit, so that LeakSanitizer reports too
        assert not b.sanitizer_reports(), b.sanitizer_reports()
    finally:
        for car in cars:
            car.close()
        for h in hubs:
            h.close()


def test_other_partition_count_refused(broker, shared_db):
    pg, db = shared_db
    with cluster_hub(broker, pg, db, "hub-a") as a:
        c = cluster_hub(broker, pg, db, "hub-c", partitions=32, start=False)
        try:
            done = subprocess.run(c.command(), capture_output=True, text=True, timeout=30,
                                  cwd=c.dir)
            out = done.stdout + done.stderr
            assert done.returncode == 2, out
            assert "[cluster] partitions" in out and "32" in out and "16" in out, out
        finally:
            c.close()
        assert a.running()


def test_wrong_partition_dead_lettered(broker, shared_db):
    pg, db = shared_db
    with cluster_hub(broker, pg, db, "hub-a") as a:
        dev = "KX1"
        wrong = (partition_of(dev) + 1) % PARTITIONS
        client = mqtt.Client(client_id="wrong-partition", protocol=mqtt.MQTTv5)
        client.connect(LOOPBACK, broker.port)
        client.loop_start()
        try:
            info = client.publish(f"fleet/v1/p/{wrong}/dev/{dev}/up/evt", b"\xa0", qos=1)
            info.wait_for_publish(timeout=10)
        finally:
            client.loop_stop()
            client.disconnect()
        rows = wait_for(lambda: a.sql("SELECT device, error, detail FROM dead_letters "
                                      "WHERE error = 'partition'"), 10, "the dead letter")
        assert rows[0][0] == dev, rows
        assert not a.sql("SELECT id FROM devices WHERE id = ?", (dev,))


def test_operations_views(broker, shared_db):
    pg, db = shared_db
    with cluster_hub(broker, pg, db, "hub-a") as a, cluster_hub(broker, pg, db, "hub-b") as b:
        wait_balanced(a, ["hub-a", "hub-b"])
        wait_for(lambda: a.api("GET", "/v1/health")[0] == 200 and
                 b.api("GET", "/v1/health")[0] == 200, 10, "both hubs ready")
        code, parts = a.api("GET", "/v1/cluster/partitions")
        assert code == 200 and len(parts) == PARTITIONS, parts
        assert {p["owner"] for p in parts} == {"hub-a", "hub-b"}
        assert all(p["owner_live"] and p["epoch"] >= 1 for p in parts), parts
        # "owned" is written with each heartbeat: a tick behind the leases
        hubs = wait_for(lambda: (lambda r: r[1] if r[0] == 200 and all(
            h["live"] and h["owned"] == PARTITIONS // 2 for h in r[1]) else None)(
                b.api("GET", "/v1/cluster/hubs")), 5, "both hubs' rows")
        assert [h["id"] for h in hubs] == ["hub-a", "hub-b"], hubs
        rc, out, err = a.fleetctl("partitions")
        assert rc == 0 and "hub-b" in out and "LAG" in out.upper(), out + err
        rc, out, err = a.fleetctl("hubs")
        assert rc == 0 and "hub-a" in out and "hub-b" in out, out + err
        print(out)
        # SIGTERM: hub-b gives its partitions up at once; hub-a takes them
        # after the settle time, not after a lease
        t0 = time.monotonic()
        assert b.stop() == 0
        wait_for(lambda: len(held_by(a, "hub-a")) == PARTITIONS, 10, "hub-a holding all")
        took = time.monotonic() - t0
        print(f"after SIGTERM: hub-a held all partitions in {took:.2f} s")
        assert took < SETTLE_MS / 1000 + 2.0, took
        assert [h["id"] for h in a.api("GET", "/v1/cluster/hubs")[1]] == ["hub-a"]


def test_cluster_settings_checked(tmp_path):
    """[cluster] keys are checked at start: the message names the key."""
    cases = [
        ({"cluster": {"enabled": "true"}}, "[cluster] enabled"),  # on SQLite
        ({"store": {"backend": "postgresql"}, "cluster": {"enabled": "true", "partitions": 0}},
         "partitions"),
        ({"store": {"backend": "postgresql"}, "cluster": {"enabled": "true", "hub_id": "a/b"}},
         "[cluster] hub_id"),
        ({"store": {"backend": "postgresql"}, "cluster": {"enabled": "true", "lease_ms": 10}},
         "lease_ms"),
        ({"cluster": {"enabled": "maybe"}}, "enabled"),
        ({"cluster": {"leases": 3}}, "leases"),
    ]
    for sections, key in cases:
        ini = tmp_path / "hub.ini"
        fleet.write_ini(ini, sections)
        done = subprocess.run([str(fleet.BUILD / "hub" / "fleet-hub"), "--config", str(ini),
                               "--check-config"], capture_output=True, text=True, timeout=20)
        assert done.returncode == 2 and key in done.stderr, (sections, done.stderr)
    # the default: a hub alone, no cluster keys needed; --check-config shows them
    fleet.write_ini(tmp_path / "hub.ini", {"hub": {"state_dir": str(tmp_path)}})
    done = subprocess.run([str(fleet.BUILD / "hub" / "fleet-hub"), "--config",
                           str(tmp_path / "hub.ini"), "--check-config"], capture_output=True,
                          text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert "cluster.enabled = false" in done.stdout, done.stdout


def test_cross_partition_rental(broker, shared_db):
    """A kiosk held by one hub rents a vehicle held by the other: the kiosk's
    hub decides and charges, the unlock reaches the vehicle, whose ack and
    return go to the vehicle's hub."""
    pg, db = shared_db
    with cluster_hub(broker, pg, db, "hub-a", latency_ms=5) as a, \
            cluster_hub(broker, pg, db, "hub-b", latency_ms=5) as b:
        held = wait_balanced(a, ["hub-a", "hub-b"])
        kiosk_id = devices_in(set(held["hub-a"]), 1, "KA")[0]
        car_id = devices_in(set(held["hub-b"]), 1, "VB")[0]
        assert b.fleetctl("register", car_id, "--name", "Clio", "--station", "north",
                          "--rate", "1200")[0] == 0
        with Agent(broker, kiosk_id, role="kiosk", config=partitioned()) as kiosk, \
                Agent(broker, car_id, role="vehicle", config=LEGACY) as car:
            rental, state, line = fleet.rent(kiosk, car_id, "C1", 90)
            assert state == "ACTIVE" and "charged=1800" in line, line
            assert fleet.vehicle_state(a, car_id) == "RENTED"
            # the unlock command was applied by the vehicle and acked to its hub
            wait_for(lambda: not b.sql("SELECT seq FROM downlink WHERE device = ?", (car_id,)),
                     15, "the vehicle's downlink acknowledged")
            rc, out, err = kiosk.ctl("return", rental, "--wait", 20)
            assert rc == 0 and "COMPLETED" in out, out + err
            assert fleet.vehicle_state(b, car_id) == "AVAILABLE"
            assert car.running()
        claims = a.sql("SELECT hub FROM saga_claims WHERE rental = ?", (rental,))
        assert claims and {h for (h,) in claims} == {"hub-a"}, claims


def test_fence_refuses_a_moved_partition(broker, shared_db):
    """A partition taken over behind the hub's back (its epoch raised in the
    database, as another hub taking it would) before the hub's cluster thread
    has noticed: the hub's next batch touching it is rolled back by the
    fence and its input not acked. Given back, the device's events are
    applied once each. A long lease keeps the cluster thread asleep."""
    pg, db = shared_db
    with cluster_hub(broker, pg, db, "hub-a", lease_ms=60000, settle_ms=0) as a:
        wait_for(lambda: len(held_by(a, "hub-a")) == PARTITIONS, 15, "hub-a holding all")
        car_id = "VF1"
        part = partition_of(car_id)
        with Agent(broker, car_id, role="vehicle", config=partitioned()) as car:
            wait_for(lambda: a.sql("SELECT id FROM devices WHERE id = ?", (car_id,)), 10,
                     "the vehicle's hello applied")
            a.sql("UPDATE partitions SET owner = 'ghost', epoch = epoch + 1 WHERE part = ?",
                  (part,))
            car.ctl("telemetry", 10, 80, "48.85", "2.35")
            wait_for(lambda: f"fence: partition {part} moved" in a.log(), 10, "the fence")
            time.sleep(0.5)
            assert not a.sql("SELECT seq FROM events WHERE device = ?", (car_id,))
            assert status(car).get("last_ack") == "0", status(car)
            # given back (at the raised epoch): the hub's next renewal holds it again
            a.sql("UPDATE partitions SET owner = 'hub-a' WHERE part = ?", (part,))
            car.ctl("telemetry", 20, 80, "48.85", "2.35")

            def applied():
                car.ctl("telemetry", 30, 80, "48.85", "2.35")
                time.sleep(0.5)
                return a.sql("SELECT seq FROM events WHERE device = ?", (car_id,))
            wait_for(applied, 25, "the vehicle's events applied after the partition came back")
            wait_for(lambda: all_acked(car), 15, "every event acked")
            n = int(status(car)["next_seq"]) - 1
            seqs = [s for (s,) in a.sql("SELECT seq FROM events WHERE device = ? ORDER BY id",
                                        (car_id,))]
            assert seqs == list(range(1, n + 1)), seqs
