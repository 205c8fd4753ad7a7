"""Read models are kept apart from the write side (rm_* tables, projected from
the append-only change log) and can be rebuilt from the log: the operator's
views show the rentals, the check proves live == rebuilt, and a damaged read
model is detected and repaired by a rebuild."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import Agent, parse_table, per_test_timeout, broker, make_hub  # noqa: F401,E402


def rent(kiosk, vehicle, customer, minutes=60):
    rc, out, err = kiosk.ctl("rent", vehicle, customer, minutes, "--wait", 20)
    assert rc == 0, out + err
    return out.strip().splitlines()[-1].split()[1]


def test_views_check_and_rebuild(broker, make_hub):
    hub = make_hub(latency_ms=5)
    for v in ("V1", "V2", "V3"):
        assert hub.fleetctl("register", v, "--name", v, "--station", "s", "--rate", "600")[0] == 0
    with Agent(broker, "K1", role="kiosk") as kiosk:
        r1 = rent(kiosk, "V1", "C1")
        r2 = rent(kiosk, "V2", "C2")
        assert "CANCELLED" in kiosk.ctl("cancel", r2, "--wait", 20)[1]
        rent(kiosk, "V3", "nofunds-C3")                      # declined by the simulated provider
    # a position with 16-17 significant digits: the live projection (from the
    # row) and a rebuild (from the JSON snapshot) must round it the same way
    with Agent(broker, "V1", role="vehicle") as car:
        rc, _, err = car.ctl("telemetry", 1234, 77, "48.856612345678912", "2.3522198765432198")
        assert rc == 0, err
        for _ in range(100):
            rows = hub.sql("SELECT lat, odometer_m FROM rm_fleet WHERE id = 'V1'")
            row = rows[0] if rows else None
            if row and row[1] == 1234:
                break
            __import__("time").sleep(0.1)
        assert row and row[1] == 1234 and abs(row[0] - 48.8566123456789) < 1e-9, row

    # the views come from the read models
    rc, out, _ = hub.fleetctl("vehicles")
    states = {row["ID"]: row["STATE"] for row in parse_table(out)}
    assert states == {"V1": "RENTED", "V2": "AVAILABLE", "V3": "AVAILABLE"}
    status, sagas = hub.api("GET", "/v1/sagas")
    steps = {(s["rental"], s["step"]): s["status"] for s in sagas}
    assert steps[(r1, "charge")] == "done" and steps[(r2, "refund")] == "done"
    assert any(step == "charge" and st == "declined" for (_, step), st in steps.items())
    status, c1 = hub.api("GET", "/v1/customers/C1")
    assert status == 200 and len(c1["open_rentals"]) == 1 and c1["charged_cents"] == 600
    assert c1["fees_owed_cents"] == 0

    # live read models equal a rebuild from the change log
    rc, out, err = hub.fleetctl("check")
    assert rc == 0 and "equal" in out, out + err

    # damage a read model behind the hub's back: the check finds it, a rebuild repairs it
    hub.sql("UPDATE rm_fleet SET state = 'BROKEN' WHERE id = 'V1'")
    status, body = hub.api("POST", "/v1/read-models/check")
    assert status == 409 and "rm_fleet: 1 rows differ" in body["message"], body
    assert hub.fleetctl("check")[0] != 0
    rc, out, err = hub.fleetctl("rebuild")
    assert rc == 0 and "rebuilt from" in out, out + err
    assert hub.sql("SELECT state FROM rm_fleet WHERE id = 'V1'")[0][0] == "RENTED"
    assert hub.api("POST", "/v1/read-models/check")[0] == 200
    # the change log only grows: every change of V1 is there, in order
    v1 = hub.sql("SELECT from_state, to_state FROM changes WHERE kind = 'vehicle' AND id = 'V1' "
                 "ORDER BY seq")
    assert v1 == [(None, "AVAILABLE"), ("AVAILABLE", "RESERVED"), ("RESERVED", "RENTED"),
                  ("RENTED", "RENTED")], v1  # the last: its telemetry reading


def test_bookings_are_a_read_model_and_old_stores_get_theirs(broker, make_hub):
    """Bookings are projected like rentals (rm_bookings, from the change log);
    a store made before (schema < 4, its bookings never logged) gets the
    bookings it holds logged and projected when the hub upgrades it, so that
    `fleetctl check` and a rebuild keep them."""
    import time
    hub = make_hub(latency_ms=1)
    assert hub.fleetctl("register", "V1", "--name", "Clio", "--station", "S1", "--rate", "600")[0] == 0
    with Agent(broker, "K1", role="kiosk") as kiosk:
        now = int(time.time() * 1000)
        rc, out, err = kiosk.ctl("book", "V1", "C1", now + 3_600_000, now + 7_200_000, "B-rm-1",
                                 "--wait", 20)
        assert rc == 0 and "HELD" in out, out + err
    assert hub.sql("SELECT state, charged_cents FROM rm_bookings WHERE id = 'B-rm-1'") == [("HELD", 2000)]
    assert hub.fleetctl("check")[0] == 0
    if hub.store != "sqlite":
        return
    # as a store of schema 3 would hold it: the booking, no change logged, no read model
    hub.stop()
    hub.sql("DELETE FROM changes WHERE kind = 'booking'")
    hub.sql("DELETE FROM rm_bookings")
    hub.sql("PRAGMA user_version = 3")
    hub.start()
    assert hub.sql("SELECT state FROM rm_bookings WHERE id = 'B-rm-1'") == [("HELD",)]
    rc, out, err = hub.fleetctl("check")
    assert rc == 0, out + err
    rc, out, err = hub.fleetctl("rebuild")
    assert rc == 0, out + err
    assert hub.sql("SELECT state FROM rm_bookings WHERE id = 'B-rm-1'") == [("HELD",)]
