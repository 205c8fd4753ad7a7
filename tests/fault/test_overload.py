"""Overload (docs/payments.md, "Overload"): a payment provider that answers
after 2 s (tests/harness/fake_provider.py) behind the hub's HTTP provider.

- the bounded queue: with one worker and [payment] queue_max = 1, a rental
  whose charge would wait behind a full queue is refused at once (the
  decision, with a retry-after, comes back well under the provider's
  latency), while a cancel's refund still goes in beyond the bound and is
  paid back; once the provider is fast again, rentals succeed;
- the breaker opening on slow calls ([breaker] slow_ms, slow_share, window):
  two slow charges open it, a rental is refused at once; when the provider is
  fast again, the half-open trial closes it and rentals succeed."""
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fake_provider import FakeProvider  # noqa: E402
from fleet import (Agent, per_test_timeout, broker, make_hub, rent,  # noqa: F401,E402
                   wait_for)

SLOW_S = 2.0  # the provider's latency
FAST_S = 1.0  # a refusal "at once": well under the provider's latency


def register(hub, *vehicles):
    for v in vehicles:
        rc, out, err = hub.fleetctl("register", v, "--name", v, "--station", "north",
                                    "--rate", 600)
        assert rc == 0, out + err


def health(hub):
    return hub.api("GET", "/v1/health")[1]


def rent_queued(kiosk, vehicle, customer):
    rc, out, err = kiosk.ctl("rent", vehicle, customer, 60)
    assert rc == 0, out + err
    return re.search(r"rental (\S+) queued", out).group(1)


def decision(kiosk, rental, timeout=20):
    def decided():
        rc, out, _ = kiosk.ctl("decision", rental)
        return rc == 0 and " QUEUED" not in out and out.strip()
    return wait_for(decided, timeout, f"a decision on {rental}")


def assert_refused_fast(kiosk, vehicle, customer):
    """Returns (retry_after, seconds) of a rental refused with "payment
    unavailable" well under the provider's latency."""
    t0 = time.monotonic()
    rental, state, line = rent(kiosk, vehicle, customer, wait_s=10)
    elapsed = time.monotonic() - t0
    assert state == "REJECTED" and "reason=payment unavailable, try again in" in line, line
    retry_after = int(re.search(r"retry_after=(\d+)", line).group(1))
    assert retry_after >= 1, line
    assert elapsed < FAST_S, f"refusal took {elapsed:.3f} s (provider: {SLOW_S} s): {line}"
    return retry_after, elapsed


def test_full_queue_refuses_at_once_and_refunds_still_go_in(broker, make_hub):
    with FakeProvider(latency=SLOW_S) as provider:
        hub = make_hub(config={
            "payment": {"provider": "http", "url": provider.url, "timeout_ms": 10000,
                        "workers": 1, "queue_max": 1},
            "breaker": {"slow_ms": 0}})  # the queue alone, here
        register(hub, "V1", "V2", "V3", "V4")
        with Agent(broker, "K1") as kiosk:
            r1, state, line = rent(kiosk, "V1", "C1")  # 2 s: nothing waits
            assert state == "ACTIVE", line
            r2 = rent_queued(kiosk, "V2", "C2")       # in the call
            wait_for(lambda: provider.calls("/v1/charges") == 2, 10, "R2's charge call")
            r3 = rent_queued(kiosk, "V3", "C3")       # waits: the queue is full
            wait_for(lambda: health(hub)["payments_pending"] == 2, 10, "R3's charge queued")

            retry_after, elapsed = assert_refused_fast(kiosk, "V4", "C4")
            print(f"refusal with a full queue: {elapsed * 1000:.0f} ms, "
                  f"retry_after={retry_after}")
            assert "RESERVED" not in hub.fleetctl("vehicle", "V4")[1]

            # a cancel's refund is compensation: it goes in beyond the bound
            rc, out, err = kiosk.ctl("cancel", r1)
            assert rc == 0, out + err
            wait_for(lambda: health(hub)["payments_pending"] == 3, 10,
                     "the refund queued beyond queue_max")
            provider.latency = 0
            assert "ACTIVE" in decision(kiosk, r2)
            assert "ACTIVE" in decision(kiosk, r3)
            wait_for(lambda: provider.totals()["refunded"] == 600, 20, "R1's refund")
            wait_for(lambda: hub.api("GET", f"/v1/rentals/{r1}")[1]["state"] == "CANCELLED",
                     10, "R1 cancelled")

            # the provider is fast again: renting works as usual
            _, state, line = rent(kiosk, "V4", "C5")
            assert state == "ACTIVE", line
            assert health(hub)["breaker"] == "closed"


def test_slow_provider_opens_the_breaker_and_it_closes_by_itself(broker, make_hub):
    with FakeProvider(latency=SLOW_S) as provider:
        hub = make_hub(config={
            "payment": {"provider": "http", "url": provider.url, "timeout_ms": 10000,
                        "workers": 4, "queue_max": 100},
            "breaker": {"slow_ms": 1000, "slow_share": 0.5, "window": 4, "open_s": 3}})
        register(hub, "V1", "V2", "V3", "V4")
        with Agent(broker, "K1") as k1, Agent(broker, "K2") as k2:
            # two slow charges (paid all the same) among the last 4 calls: open
            r1 = rent_queued(k1, "V1", "C1")
            r2 = rent_queued(k2, "V2", "C2")
            assert "ACTIVE" in decision(k1, r1) and "ACTIVE" in decision(k2, r2)
            wait_for(lambda: health(hub)["breaker"] == "open", 5, "the breaker to open")

            calls = provider.calls("/v1/charges")
            retry_after, elapsed = assert_refused_fast(k1, "V3", "C3")
            assert retry_after <= 3
            print(f"refusal while open on slowness: {elapsed * 1000:.0f} ms, "
                  f"retry_after={retry_after}")
            assert provider.calls("/v1/charges") == calls  # no call made

            # still slow at the trial: it opens again
            wait_for(lambda: health(hub)["breaker"] == "half_open", 10, "half-open")
            _, state, line = rent(k1, "V3", "C4")
            assert state == "ACTIVE", line  # paid, slowly
            assert health(hub)["breaker"] == "open"

            # fast again: the next trial closes it, rentals succeed
            provider.latency = 0
            wait_for(lambda: health(hub)["breaker"] == "half_open", 10, "half-open again")
            _, state, line = rent(k2, "V4", "C5")
            assert state == "ACTIVE", line
            assert health(hub)["breaker"] == "closed"
            rc, out, err = k1.ctl("return", r1, "--wait", 10)
            assert rc == 0, out + err
            wait_for(lambda: "AVAILABLE" in hub.fleetctl("vehicle", "V1")[1], 10, "V1 back")
            _, state, line = rent(k1, "V1", "C6")
            assert state == "ACTIVE", line
