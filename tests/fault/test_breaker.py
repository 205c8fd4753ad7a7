"""The circuit breaker around the payment provider (docs/architecture.md,
"Payments"), with the hub's HTTP provider against a fake provider server
(tests/harness/fake_provider.py) that fails or hangs on demand:

- a failing provider: rentals fail, are rejected after max_attempts and
  voided; the breaker opens; a new rental is refused at once with
  "payment unavailable" and a retry-after; after open_s the breaker is
  half-open, admits one trial (others are told to retry in 1 s), and the
  trial's success closes it;
- a hanging provider: calls time out and count as failures, and meanwhile
  the engine answers other kiosks at once (provider calls are not made on
  the engine thread)."""
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fake_provider import FakeProvider  # noqa: E402
from fleet import (Agent, per_test_timeout, broker, make_hub, rent,  # noqa: F401,E402
                   vehicle_state, wait_for)

FAST_S = 1.0  # "at once": a kiosk's refusal, fleet-agent ctl start to answer (measured ~0.1-0.2 s)


def breaker_hub(make_hub, url, timeout_ms, max_attempts, failures, open_s):
    return make_hub(config={
        "payment": {"provider": "http", "url": url, "timeout_ms": timeout_ms,
                    "max_attempts": max_attempts},
        "breaker": {"failures": failures, "open_s": open_s}})


def register(hub, *vehicles):
    for v in vehicles:
        rc, out, err = hub.fleetctl("register", v, "--name", v, "--station", "north",
                                    "--rate", 600)
        assert rc == 0, out + err


def breaker(hub):
    return hub.api("GET", "/v1/health")[1]["breaker"]


def timed_rent(kiosk, vehicle, customer, wait_s=20):
    """rent() that also returns the seconds from asking to the decision."""
    t0 = time.monotonic()
    return (*rent(kiosk, vehicle, customer, wait_s=wait_s), time.monotonic() - t0)


def rent_queued(kiosk, vehicle, customer):
    """Asks for a rental without waiting; returns its id."""
    rc, out, err = kiosk.ctl("rent", vehicle, customer, 60)
    assert rc == 0, out + err
    return re.search(r"rental (\S+) queued", out).group(1)


def decision(kiosk, rental, timeout=20):
    """Waits for the kiosk's decision on rental; returns its line."""
    def decided():
        rc, out, _ = kiosk.ctl("decision", rental)
        return rc == 0 and " QUEUED" not in out and out.strip()
    return wait_for(decided, timeout, f"a decision on {rental}")


def assert_refused_fast(kiosk, vehicle, customer, max_retry_after):
    """A rental asked while the breaker is open (or its trial is out) is
    refused at once, with a reason and a retry-after. Returns the seconds."""
    rental, state, line, elapsed = timed_rent(kiosk, vehicle, customer, wait_s=5)
    assert state == "REJECTED" and "reason=payment unavailable" in line, line
    retry_after = int(re.search(r"retry_after=(\d+)", line).group(1))
    assert 1 <= retry_after <= max_retry_after, line
    assert elapsed < FAST_S, f"refusal took {elapsed:.3f} s: {line}"
    return rental, elapsed


def test_failing_provider_opens_the_breaker_and_it_closes_by_itself(broker, make_hub):
    with FakeProvider(mode="fail") as provider:
        hub = breaker_hub(make_hub, provider.url, timeout_ms=2000, max_attempts=2, failures=3,
                          open_s=2)
        register(hub, "V1", "V2", "V3")
        with Agent(broker, "K1") as kiosk:
            # two failed charge attempts: rejected, and voided (a third failure)
            r1, state, line = rent(kiosk, "V1", "C1")
            assert state == "REJECTED", line
            assert "reason=payment failed: payment provider: HTTP 503: provider unavailable" \
                in line, line
            assert vehicle_state(hub, "V1") == "AVAILABLE"
            wait_for(lambda: breaker(hub) == "open", 10, "the breaker to open")
            assert provider.calls("/v1/charges") == 2
            assert {r["headers"]["idempotency-key"] for r in provider.requests} == \
                {f"{r1}:charge", f"{r1}:refund"}

            # The provider recovers at once, but the breaker stays open for
            # open_s: a new rental is refused without a call to the provider.
            provider.mode = "ok"
            calls = provider.calls("/v1/charges")
            r2, elapsed = assert_refused_fast(kiosk, "V2", "C2", max_retry_after=2)
            print(f"refusal while open: {elapsed * 1000:.0f} ms")
            assert provider.calls("/v1/charges") == calls
            assert vehicle_state(hub, "V2") == "AVAILABLE"
            status, body = hub.api("GET", f"/v1/rentals/{r2}")
            assert body["state"] == "REJECTED" and not body["saga_steps"]
            # the void of r1 is retried meanwhile and goes through (nothing was charged)
            wait_for(lambda: provider.entries("refund"), 10, "the void of the failed rental")
            assert provider.entries("refund")[0]["amount_cents"] == 0
            assert breaker(hub) == "open"

            # after open_s: half-open; one trial is admitted (slow on purpose),
            # the next request is told to come back in a second
            wait_for(lambda: breaker(hub) == "half_open", 10, "the breaker to half-open")
            provider.settle_s = 1.0
            r3 = rent_queued(kiosk, "V1", "C3")
            assert_refused_fast(kiosk, "V3", "C4", max_retry_after=1)
            line = decision(kiosk, r3)
            assert "ACTIVE" in line and "charged=600" in line, line
            assert breaker(hub) == "closed"
            provider.settle_s = 0

            # closed: rentals are paid as usual
            _, state, line = rent(kiosk, "V3", "C5")
            assert state == "ACTIVE", line
            assert provider.totals()["charged"] == 1200 and provider.totals()["charges"] == 2


def test_hanging_provider_times_out_while_the_engine_keeps_answering(broker, make_hub):
    with FakeProvider(mode="hang") as provider:
        hub = breaker_hub(make_hub, provider.url, timeout_ms=2000, max_attempts=1, failures=2,
                          open_s=30)
        register(hub, "V1", "V2")
        with Agent(broker, "K1") as k1, Agent(broker, "K2") as k2:
            r1 = rent_queued(k1, "V1", "C1")
            wait_for(lambda: provider.calls("/v1/charges") == 1, 10, "the charge call")
            # the call hangs; another kiosk is answered at once all the same
            t0 = time.monotonic()
            _, state, line, elapsed = timed_rent(k2, "NOPE", "C2", wait_s=5)
            assert state == "REJECTED" and "no vehicle NOPE" in line, line
            assert elapsed < FAST_S, f"answer took {elapsed:.3f} s while a payment hung"
            print(f"answer while a payment call hangs: {elapsed * 1000:.0f} ms")
            status, body = hub.api("GET", f"/v1/rentals/{r1}")
            assert body["state"] == "PAYMENT_PENDING", body  # still hanging
            assert hub.api("GET", "/v1/health")[1]["payments_pending"] >= 1

            # the call times out: a failure; the rental is rejected and voided
            line = decision(k1, r1)
            assert time.monotonic() - t0 < 2.5, "the timeout is 2 s"
            assert "REJECTED" in line and "no answer within 2000 ms" in line, line
            assert vehicle_state(hub, "V1") == "AVAILABLE"
            # the void hangs as well: the second failure opens the breaker
            wait_for(lambda: breaker(hub) == "open", 10, "the breaker to open")
            _, elapsed = assert_refused_fast(k2, "V2", "C3", max_retry_after=30)
            print(f"refusal while open: {elapsed * 1000:.0f} ms")
            assert provider.calls("/v1/charges") == 1
