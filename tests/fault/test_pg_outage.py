"""PostgreSQL is killed (pg_ctl stop -m immediate) and started again while
vehicles send telemetry and a kiosk asks for rentals: the hub keeps
running, reconnects and resumes; nothing it acknowledged is lost, nothing is
applied twice (each device's events are seqs 1..N, once each; each rental
charged once), and the read models equal a rebuild. Runs with
FLEET_TEST_STORE=postgresql (ctest pg_outage_pg)."""
import re
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
import fleet  # noqa: E402
from fleet import Agent, per_test_timeout, broker, make_hub, wait_for  # noqa: F401,E402

pytestmark = pytest.mark.skipif(fleet.STORE != "postgresql",
                                reason="needs FLEET_TEST_STORE=postgresql")
N_RENTALS = 12
N_CARS = 3


def status(agent):
    rc, out, _ = agent.ctl("status")
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line) if rc == 0 else {}


def all_acked(agent):
    s = status(agent)
    return s and s.get("backlog") == "0" and int(s["last_ack"]) == int(s["next_seq"]) - 1


def test_postgresql_killed_and_restarted_mid_run(broker, make_hub):
    hub = make_hub(latency_ms=10)
    for i in range(N_RENTALS):
        assert hub.fleetctl("register", f"R{i}", "--name", f"car {i}", "--station", "s",
                            "--rate", "600")[0] == 0
    rentals, stop = [], threading.Event()
    cars = [Agent(broker, f"T{i}", role="vehicle") for i in range(N_CARS)]
    try:
        def drive(car):
            odo = 0
            while not stop.is_set():
                odo += 10
                car.ctl("telemetry", odo, 80, "48.85", "2.35")
                time.sleep(0.05)
        drivers = [threading.Thread(target=drive, args=(c,), daemon=True) for c in cars]
        for d in drivers:
            d.start()
        with Agent(broker, "K1", role="kiosk") as kiosk:
            for i in range(N_RENTALS):
                rc, out, err = kiosk.ctl("rent", f"R{i}", f"C{i}", 60)
                assert rc == 0, err
                rentals.append(re.match(r"rental (\S+) queued", out).group(1))
                if i == 4:  # the database server crashes, and comes back 3 s later
                    hub.pg.stop(mode="immediate")
                    t_down = time.monotonic()
                if i == 8:
                    time.sleep(max(0.0, 3 - (time.monotonic() - t_down)))
                    hub.pg.start()
                time.sleep(0.2)
            stop.set()
            for d in drivers:
                d.join(timeout=10)

            def decided():
                for r in rentals:
                    rc, out, _ = kiosk.ctl("decision", r)
                    if rc != 0 or "QUEUED" in out:
                        return False
                return True
            wait_for(decided, 60, "a decision for every rental")
            for r in rentals:
                rc, out, _ = kiosk.ctl("decision", r)
                assert " ACTIVE" in out, out
            wait_for(lambda: all_acked(kiosk), 30, "the kiosk's events all acked")
            kiosk_sent = int(status(kiosk)["next_seq"]) - 1
        for car in cars:
            wait_for(lambda: all_acked(car), 30, f"{car.id}'s events all acked")
        sent = {car.id: int(status(car)["next_seq"]) - 1 for car in cars}
    finally:
        stop.set()
        for car in cars:
            car.close()

    assert hub.running(), "the hub exited during the outage"
    log = hub.log()
    assert "lost the connection to PostgreSQL" in log and "reconnected to PostgreSQL" in log
    # every acknowledged event is there, once: seqs 1..N of each device
    for device, n in [("K1", kiosk_sent)] + sorted(sent.items()):
        seqs = [s for (s,) in hub.sql("SELECT seq FROM events WHERE device = ? ORDER BY seq",
                                      (device,))]
        assert seqs == list(range(1, n + 1)), (device, n, seqs[:5], len(seqs))
    states = dict(hub.sql("SELECT id, state FROM rentals"))
    assert sorted(states) == sorted(rentals) and set(states.values()) == {"ACTIVE"}
    ledger = sqlite3.connect(hub.db_path.parent / "payments-sim.db")
    charges = dict(ledger.execute(
        "SELECT rental, COUNT(*) FROM ledger WHERE kind='charge' AND outcome='ok' GROUP BY rental"))
    ledger.close()
    assert charges == {r: 1 for r in rentals}, "each rental charged exactly once"
    assert hub.sql("SELECT SUM(charged_cents) FROM rentals") == [(600 * N_RENTALS,)]
    status_code, body = hub.api("POST", "/v1/read-models/check")
    assert status_code == 200, body
    # the API reads PostgreSQL again
    code, vehicles = hub.api("GET", "/v1/vehicles")
    assert code == 200 and {v["id"] for v in vehicles} >= {f"R{i}" for i in range(N_RENTALS)}
