"""What customers and the fleet operator get (issue 13), each with real
processes: mosquitto, fleet-hub, fleet-agent kiosks and vehicles, the fake
HTTP payment provider where the provider has to fail.

- kiosk self-service: `ctl available` at a station, `ctl customer` (P-QRY-*)
- a cancel while payments are down is answered at once, the car is free, and
  the final answer comes when the refund clears (P-REQ-9)
- a booked vehicle that breaks down: the booking moves to a free car of the
  station (the kiosk and both vehicles told)
- a booking not used in its window expires (a no-show)
- an overdue rental raises one alert, with the fee it runs into
(The one-way return, the operator's damage reports and vehicle edits are
driven in tests/unit/test_hub_domain.c and through the API's tests.)"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fake_provider import FakeProvider  # noqa: E402
from fleet import Agent, Hub, rent, wait_for  # noqa: E402
from fleet import broker, make_hub, per_test_timeout  # noqa: E402,F401  (pytest fixtures)


def register(hub, vehicle, station, rate="600"):
    rc, out, err = hub.fleetctl("register", vehicle, "--name", f"car {vehicle}", "--station",
                                station, "--rate", rate)
    assert rc == 0, err


def row(hub, sql):
    rows = hub.sql(sql)
    return rows[0] if rows else None


def test_kiosk_asks_what_is_free_and_what_a_customer_has(broker, make_hub):
    hub = make_hub(latency_ms=1)
    for v, s in (("V1", "north"), ("V2", "north"), ("V3", "south")):
        register(hub, v, s)
    with Agent(broker, "K1", role="kiosk") as kiosk:
        rental, state, _ = rent(kiosk, "V1", "C1", 30)
        assert state == "ACTIVE"
        status, stations = hub.api("GET", "/v1/stations")
        assert status == 200
        counts = {s["station"]: (s["available"], s["rented"], s["vehicles"]) for s in stations}
        assert counts == {"north": (1, 1, 2), "south": (1, 0, 1)}, stations
        rc, out, err = kiosk.ctl("available", "north", "--wait", 10)
        assert rc == 0, out + err
        lines = out.strip().splitlines()
        assert [l.split()[1] for l in lines] == ["V2"], out  # V1 is rented, V3 is at south
        assert 'station=north' in lines[0] and "rate=6.00/h" in lines[0]
        rc, out, err = kiosk.ctl("customer", "C1", "--wait", 10)
        assert rc == 0, out + err
        assert f"rental {rental} vehicle=V1 ACTIVE" in out and "charged=3.00" in out, out
        assert "totals charged=3.00" in out, out


def test_cancel_while_payments_are_down_is_answered_at_once(broker):
    with FakeProvider() as provider, \
            Hub(broker, config={"payment": {"provider": "http", "url": provider.url}}) as hub, \
            Agent(broker, "K1", role="kiosk") as kiosk:
        register(hub, "V1", "north")
        rental, state, _ = rent(kiosk, "V1", "C1", 30)
        assert state == "ACTIVE"
        provider.mode = "fail"  # the provider goes away
        start = time.monotonic()
        rc, out, err = kiosk.ctl("cancel", rental, "--wait", 10)
        answered_s = time.monotonic() - start
        assert rc == 0 and "CANCEL_REQUESTED" in out and "refund pending" in out, out + err
        assert answered_s < 5, answered_s
        assert row(hub, "SELECT state FROM vehicles WHERE id = 'V1'") == ("AVAILABLE",)
        # the next customer rents the car while the refund waits for the provider
        provider.mode = "ok"  # ... and it is back: the refund retries with its back-off
        wait_for(lambda: row(hub, f"SELECT state FROM rentals WHERE id = '{rental}'") == ("CANCELLED",),
                 40, "the refund cleared and the rental CANCELLED")
        rc, out, err = kiosk.ctl("customer", "C1", "--wait", 10)
        assert "refunded=3.00" in out, out


def test_booked_vehicle_breaks_down_and_the_booking_moves(broker, make_hub):
    hub = make_hub(latency_ms=1)
    register(hub, "V1", "north")
    register(hub, "V2", "north")
    with Agent(broker, "K1", role="kiosk") as kiosk, \
            Agent(broker, "V1", role="vehicle") as v1, Agent(broker, "V2", role="vehicle") as v2:
        now = int(time.time() * 1000)
        rc, out, err = kiosk.ctl("book", "V1", "C1", now + 3_600_000, now + 7_200_000, "B-move-1",
                                 "--wait", 20)
        assert rc == 0 and "HELD" in out, out + err
        rc, out, err = v1.ctl("fault", "P0300", "critical", "misfire")
        assert rc == 0, out + err
        wait_for(lambda: row(hub, "SELECT vehicle FROM bookings WHERE id = 'B-move-1'") == ("V2",),
                 20, "the booking moved to V2")
        assert row(hub, "SELECT state FROM bookings WHERE id = 'B-move-1'") == ("HELD",)
        # the kiosk was told, and V2 now honours the booking, V1 no longer
        wait_for(lambda: "to V2" in kiosk.ctl("decision", "B-move-1")[1], 20, "the kiosk told")
        wait_for(lambda: "B-move-1" in v2.ctl("bookings")[1], 20, "V2's booking list")
        wait_for(lambda: "B-move-1" not in v1.ctl("bookings")[1], 20, "V1's booking list")


def test_unused_booking_expires_and_overdue_rental_alerts(broker, make_hub):
    hub = make_hub(latency_ms=1, config={"booking": {"grace_s": "1"},
                                         "engine": {"minute_ms": "100"}})
    register(hub, "V1", "north")
    register(hub, "V2", "north")
    with Agent(broker, "K1", role="kiosk") as kiosk:
        now = int(time.time() * 1000)
        rc, out, err = kiosk.ctl("book", "V1", "C1", now + 500, now + 60_000, "B-noshow-1",
                                 "--wait", 20)
        assert rc == 0 and "HELD" in out, out + err
        wait_for(lambda: row(hub, "SELECT state FROM bookings WHERE id = 'B-noshow-1'") == ("EXPIRED",),
                 20, "the no-show booking EXPIRED")
        rental, state, _ = rent(kiosk, "V2", "C2", 1)  # due after 100 ms
        assert state == "ACTIVE"
        wait_for(lambda: row(hub, f"SELECT kind FROM alerts_raised WHERE id = '{rental}'")
                 == ("rental_overdue",), 20, "the overdue alert")
