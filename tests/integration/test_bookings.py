"""Bookings ahead of time (domain requirement 8) end to end: a kiosk
fleet-agent books, the hub charges a deposit and holds the vehicle for the
window, refuses overlapping windows, refunds on cancel, and sends the vehicle's
own fleet-agent the bookings it must honour, so that the booked customer can
unlock it while the broker is gone.

Real mosquitto, hub and agents. Windows are "now" by the hub's clock (the same
machine) plus minutes. Cancels go through the kiosk agent's `unbook`, and once
through the hand-written kiosk of test_blackbox_client.py (the bare protocol)."""
import re
import sys
import time
from pathlib import Path

import cbor2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet import Agent, parse_table, wait_for  # noqa: E402
from fleet import broker, make_hub, per_test_timeout  # noqa: E402,F401  (pytest fixtures)
from test_blackbox_client import Kiosk  # noqa: E402

MIN = 60 * 1000
DEPOSIT = 2000  # [booking] deposit_cents default


def now_ms():
    return int(time.time() * 1000)


def register(hub, vehicle):
    rc, out, err = hub.fleetctl("register", vehicle, "--name", "Clio", "--station", "north",
                                "--rate", "1200")
    assert rc == 0, out + err


def decided(kiosk, *args):
    """Runs a kiosk request with --wait; returns (id, state, decision line)."""
    rc, out, err = kiosk.ctl(*args, "--wait", 20)
    assert rc == 0, f"{args} failed: {out} {err}"
    line = out.strip().splitlines()[-1]
    m = re.match(r"(?:rental|booking) (\S+) (\S+)", line)
    assert m, line
    return m.group(1), m.group(2), line


def book(kiosk, vehicle, customer, start, end, booking=None):
    return decided(kiosk, "book", vehicle, customer, start, end, *([booking] if booking else []))


def booking_row(hub, booking):
    status, body = hub.api("GET", f"/v1/bookings/{booking}")
    assert status == 200, body
    return body


def cancel_booking(client, booking, seq):
    """booking_cancel sent by a hand-written kiosk; returns the decision body."""
    msg = client.envelope("booking_cancel", {}, seq=seq, corr=booking)
    client.resend(cbor2.dumps(msg), booking)
    return client.expect_decision(booking)


def agent_bookings(vehicle_agent):
    rc, out, err = vehicle_agent.ctl("bookings")
    assert rc == 0, err
    return re.findall(r"booking (\S+) customer=(\S+)", out)


def test_book_overlap_cancel_and_offline_unlock(broker, make_hub):
    hub = make_hub(latency_ms=5)
    register(hub, "V1")
    with Agent(broker, "V1", role="vehicle") as car, Agent(broker, "K1", role="kiosk") as kiosk:
        t0 = now_ms()
        # held, with the deposit charged through the saga (step "deposit")
        b1, state, line = book(kiosk, "V1", "C1", t0, t0 + 10 * MIN)
        assert state == "HELD" and f"charged={DEPOSIT}" in line, line
        row = booking_row(hub, b1)
        assert row["state"] == "HELD" and row["charged_cents"] == DEPOSIT
        assert {s["step"]: s["status"] for s in row["saga_steps"]} == {"deposit": "done"}

        # another customer, overlapping window: refused with the reason
        b2, state, line = book(kiosk, "V1", "C2", t0 + 5 * MIN, t0 + 15 * MIN)
        assert state == "REJECTED" and "reason=vehicle V1 is booked from" in line, line
        assert booking_row(hub, b2)["charged_cents"] == 0

        # the window right after: accepted
        b3, state, line = book(kiosk, "V1", "C2", t0 + 10 * MIN, t0 + 20 * MIN)
        assert state == "HELD", line

        # the same booking id again (P-REQ-4): the same decision, no second deposit
        again, state, line = book(kiosk, "V1", "C1", t0, t0 + 10 * MIN, b1)
        assert again == b1 and state == "HELD", line
        assert len(booking_row(hub, b1)["saga_steps"]) == 1

        # a rental by a third customer during the booked window is refused
        _, state, line = decided(kiosk, "rent", "V1", "C3", 30)
        assert state == "REJECTED" and "is booked from" in line, line

        # the vehicle's agent is sent the bookings it must honour
        wait_for(lambda: sorted(agent_bookings(car)) == sorted([(b1, "C1"), (b3, "C2")]), 15,
                 "the vehicle agent to list both held bookings")

        # the kiosk's unbook refunds the deposit; a repeated cancel answers the same
        _, state, line = decided(kiosk, "unbook", b3)
        assert state == "CANCELLED" and f"refunded={DEPOSIT}" in line, line
        _, state, line = decided(kiosk, "unbook", b3)
        assert state == "CANCELLED" and f"refunded={DEPOSIT}" in line, line
        rc, out, err = kiosk.ctl("unbook", "B/1")  # not an id: refused, nothing queued
        assert rc == 2 and "invalid" in err, (rc, out, err)
        row = booking_row(hub, b3)
        assert row["state"] == "CANCELLED" and row["refunded_cents"] == DEPOSIT
        assert {s["step"]: s["status"] for s in row["saga_steps"]} == {
            "deposit": "done", "refund": "done"}
        wait_for(lambda: agent_bookings(car) == [(b1, "C1")], 15,
                 "the vehicle agent to drop the cancelled booking")

        # read side: the customer's view and the operator's list
        status, body = hub.api("GET", "/v1/customers/C1")
        assert status == 200 and [b["id"] for b in body["held_bookings"]] == [b1], body
        rc, out, err = hub.fleetctl("bookings", "--vehicle", "V1")
        assert rc == 0, err
        states = {r["ID"]: r["STATE"] for r in parse_table(out)}
        assert states == {b1: "HELD", b2: "REJECTED", b3: "CANCELLED"}, out

        # offline: the vehicle decides on its own from the bookings it holds
        broker.stop()
        wait_for(lambda: "connected no" in car.ctl("status")[1], 15, "the vehicle to go offline")
        rc, out, err = car.ctl("unlock", "C1")
        assert rc == 0 and f"by=booking {b1}" in out, out + err
        allowed_seq = int(re.search(r"seq=(\d+)", out).group(1))
        rc, out, err = car.ctl("unlock", "C2")
        assert rc == 4 and "refused" in err, out + err
        refused_seq = int(re.search(r"seq=(\d+)", err).group(1))

        # back online: the hub receives both lock events
        broker.start()

        def lock_events():
            rows = hub.sql("SELECT seq, payload FROM events WHERE device = 'V1' AND "
                           "type = 'lock' AND seq IN (?, ?)", (allowed_seq, refused_seq))
            return {seq: cbor2.loads(payload)["body"] for seq, payload in rows}
        events = wait_for(lambda: len(lock_events()) == 2 and lock_events(), 60,
                          "the hub to record the offline lock events")
        assert events[allowed_seq]["customer"] == "C1"
        assert not events[allowed_seq].get("refused") and events[allowed_seq].get("offline")
        assert events[refused_seq]["customer"] == "C2" and events[refused_seq]["refused"] is True


def test_booked_customer_rents_and_uses_the_booking(broker, make_hub):
    hub = make_hub(latency_ms=5)
    register(hub, "V2")
    with Agent(broker, "K2", role="kiosk") as kiosk:
        t0 = now_ms()
        b, state, line = book(kiosk, "V2", "C5", t0, t0 + 10 * MIN)
        assert state == "HELD", line
        _, state, line = decided(kiosk, "rent", "V2", "C6", 5)
        assert state == "REJECTED" and "V2 is booked from" in line, line
        rental, state, line = decided(kiosk, "rent", "V2", "C5", 5)
        assert state == "ACTIVE", line
        row = wait_for(lambda: (r := booking_row(hub, b))["state"] == "USED" and r, 10,
                       "the booking to be used")
        assert row["rental"] == rental and row["refunded_cents"] == 0


def test_refusals(broker, make_hub):
    hub = make_hub(latency_ms=5)
    register(hub, "V3")
    register(hub, "V4")
    assert hub.fleetctl("retire", "V4")[0] == 0
    with Agent(broker, "K3", role="kiosk") as kiosk:
        t0 = now_ms()
        _, state, line = book(kiosk, "NOPE", "C1", t0, t0 + MIN)
        assert state == "REJECTED" and "reason=no vehicle NOPE" in line, line
        _, state, line = book(kiosk, "V4", "C1", t0, t0 + MIN)
        assert state == "REJECTED" and "retired" in line, line
        _, state, line = book(kiosk, "V3", "C1", t0 - 20 * MIN, t0 - 10 * MIN)
        assert state == "REJECTED" and "window ended" in line, line
        b, state, line = book(kiosk, "V3", "nofunds-7", t0, t0 + MIN)
        assert state == "REJECTED" and "payment declined" in line, line
        # a declined booking holds nothing: the same window is free
        _, state, line = book(kiosk, "V3", "C1", t0, t0 + MIN)
        assert state == "HELD", line


def test_cancel_while_the_deposit_fails(broker, make_hub):
    # every provider call fails: the deposit waits for its next try, and a
    # cancel calls it off at once (and voids it, in case money moved)
    hub = make_hub(latency_ms=5, failure_rate=1.0, failures=1000)
    register(hub, "V5")
    with Agent(broker, "K5", role="kiosk") as kiosk:
        t0 = now_ms()
        rc, out, err = kiosk.ctl("book", "V5", "C7", t0, t0 + 10 * MIN)
        assert rc == 0, out + err
        b = re.match(r"booking (\S+) queued", out).group(1)
        wait_for(lambda: hub.api("GET", f"/v1/bookings/{b}")[0] == 200, 15, "the booking")
        assert booking_row(hub, b)["state"] == "PAYMENT_PENDING"
        client = Kiosk(broker, "K-cancel5")
        try:
            body = cancel_booking(client, b, client.hello()["next_seq"])
        finally:
            client.close()
        assert body["state"] == "CANCELLED" and body["ok"] is True, body
        row = booking_row(hub, b)
        assert row["state"] == "CANCELLED" and row["charged_cents"] == 0, row
        steps = {s["step"]: s["status"] for s in row["saga_steps"]}
        assert steps["deposit"] == "cancelled" and "refund" in steps, steps
        # the window is free again: another booking of it is taken (and pays)
        rc, out, err = kiosk.ctl("book", "V5", "C8", t0, t0 + 10 * MIN)
        assert rc == 0, out + err
        b2 = re.match(r"booking (\S+) queued", out).group(1)
        wait_for(lambda: hub.api("GET", f"/v1/bookings/{b2}")[0] == 200, 15, "the second booking")
        assert booking_row(hub, b2)["state"] == "PAYMENT_PENDING"
