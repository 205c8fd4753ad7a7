"""A first rental end to end with the project's own programs: a kiosk
fleet-agent asks, the hub decides (simulated payment), fleetctl shows it.
Real mosquitto on a free loopback port, real processes, real SQLite files."""
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import Agent, parse_table, per_test_timeout, broker, make_hub  # noqa: F401,E402


def vehicle_state(hub, vehicle):
    rc, out, err = hub.fleetctl("vehicles")
    assert rc == 0, err
    rows = {row["ID"]: row for row in parse_table(out)}
    return rows[vehicle]["STATE"]


def rent(kiosk, vehicle, customer, minutes=60):
    rc, out, err = kiosk.ctl("rent", vehicle, customer, minutes, "--wait", 20)
    assert rc == 0, f"rent failed: {out} {err}"
    decided = out.strip().splitlines()[-1]
    rental = re.match(r"rental (\S+) (\S+)", decided)
    assert rental, decided
    return rental.group(1), rental.group(2), decided


def test_rental_paid_vehicle_rented(broker, make_hub):
    hub = make_hub(latency_ms=5)
    assert hub.fleetctl("register", "V1", "--name", "Clio", "--station", "north",
                        "--rate", "1200")[0] == 0
    assert vehicle_state(hub, "V1") == "AVAILABLE"
    with Agent(broker, "K1", role="kiosk") as kiosk:
        rental, state, line = rent(kiosk, "V1", "C1", 90)
        assert state == "ACTIVE", line
        assert "charged=1800" in line, line          # 90 min at 12.00/h
        assert vehicle_state(hub, "V1") == "RENTED"
        status, body = hub.api("GET", f"/v1/rentals/{rental}")
        assert status == 200 and body["state"] == "ACTIVE"
        # the vehicle is taken: a second customer is refused at once, with a reason
        _, state2, line2 = rent(kiosk, "V1", "C2")
        assert state2 == "REJECTED" and "not available" in line2, line2
        # return: completed, vehicle free again
        rc, out, err = kiosk.ctl("return", rental, "--wait", 20)
        assert rc == 0 and "COMPLETED" in out, out + err
        assert vehicle_state(hub, "V1") == "AVAILABLE"


def test_declined_payment_leaves_vehicle_available(broker, make_hub):
    hub = make_hub(decline_rate=1.0, latency_ms=5)
    assert hub.fleetctl("register", "V2", "--name", "Zoe", "--station", "south",
                        "--rate", "900")[0] == 0
    with Agent(broker, "K2", role="kiosk") as kiosk:
        rental, state, line = rent(kiosk, "V2", "C9")
        assert state == "REJECTED", line
        assert "reason=payment declined" in line, line
        assert vehicle_state(hub, "V2") == "AVAILABLE"
        status, body = hub.api("GET", f"/v1/rentals/{rental}")
        assert status == 200 and body["state"] == "REJECTED" and body["charged_cents"] == 0


def test_cancel_refunds_and_frees_vehicle(broker, make_hub):
    hub = make_hub(latency_ms=5)
    assert hub.fleetctl("register", "V3", "--name", "Golf", "--station", "north",
                        "--rate", "600")[0] == 0
    with Agent(broker, "K3", role="kiosk") as kiosk:
        rental, state, _ = rent(kiosk, "V3", "C3", 60)
        assert state == "ACTIVE"
        rc, out, err = kiosk.ctl("cancel", rental, "--wait", 20)
        assert rc == 0, out + err
        assert "CANCELLED" in out and "refunded=600" in out, out
        assert vehicle_state(hub, "V3") == "AVAILABLE"
        # a cancelled rental cannot be cancelled into a second refund
        rc, out, err = kiosk.ctl("cancel", rental, "--wait", 20)
        assert "refunded=600" in out, out
        status, body = hub.api("GET", f"/v1/rentals/{rental}")
        assert body["refunded_cents"] == 600


def test_unknown_vehicle_is_refused_with_reason(broker, make_hub):
    hub = make_hub(latency_ms=5)
    with Agent(broker, "K4", role="kiosk") as kiosk:
        _, state, line = rent(kiosk, "NOPE", "C1")
        assert state == "REJECTED" and "no vehicle NOPE" in line, line
    assert hub.api("GET", "/v1/health")[0] == 200


def test_late_return_is_charged_by_tier(broker, make_hub):
    # minute_ms=100: a rental minute lasts 0.1 s, so an hour lasts 6 s (docs/operations.md)
    hub = make_hub(latency_ms=5, config={"engine": {"minute_ms": 100},
                                         "fees": {"tier1_hours": 1, "tier1_cents": 700,
                                                  "tier2_hours": 24, "tier2_cents": 5000}})
    assert hub.fleetctl("register", "V5", "--name", "Kangoo", "--station", "north",
                        "--rate", "600")[0] == 0
    with Agent(broker, "K5", role="kiosk") as kiosk:
        rental, state, line = rent(kiosk, "V5", "C5", 1)   # due 0.1 s from now
        assert state == "ACTIVE", line
        import time
        time.sleep(0.5)                                    # late by less than an hour (6 s)
        rc, out, err = kiosk.ctl("return", rental, "--wait", 20)
        assert rc == 0, out + err
        assert "COMPLETED" in out and "fee=700" in out, out
        status, body = hub.api("GET", f"/v1/rentals/{rental}")
        assert body["fee_cents"] == 700 and body["charged_cents"] == 10 + 700
        steps = {s["step"]: s["status"] for s in body["saga_steps"]}
        assert steps == {"charge": "done", "fee": "done"}, steps
        assert vehicle_state(hub, "V5") == "AVAILABLE"
