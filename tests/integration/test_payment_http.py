"""The hub's HTTP payment provider against a fake provider server that the
test starts (tests/harness/fake_provider.py, protocol in docs/payments.md):
a rental is charged once under the key "<rental>:charge", a cancel refunds
that charge, a decline rejects the rental with the provider's reason, a hub
killed mid-call calls again with the same key and is charged once, and a
provider that cannot be reached or answers garbage fails the payment with
the reason."""
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fake_provider import FakeProvider  # noqa: E402
from fleet import (Agent, free_port, per_test_timeout, broker, make_hub,  # noqa: F401,E402
                   rent, vehicle_state, wait_for)


def http_hub(make_hub, url, **payment):
    """Starts a hub whose payments go to url over HTTP."""
    return make_hub(config={"payment": {"provider": "http", "url": url, "timeout_ms": 3000,
                                        **payment}})


def register(hub, vehicle, rate):
    rc, out, err = hub.fleetctl("register", vehicle, "--name", vehicle, "--station", "north",
                                "--rate", rate)
    assert rc == 0, out + err


def assert_rejected(hub, kiosk, vehicle, customer, reason):
    """Rents; asserts the rental is REJECTED with reason and the vehicle is
    still AVAILABLE. Returns (rental, the rental as GET /v1/rentals/ID shows it)."""
    rental, state, line = rent(kiosk, vehicle, customer)
    assert state == "REJECTED" and f"reason={reason}" in line, line
    assert vehicle_state(hub, vehicle) == "AVAILABLE"
    status, body = hub.api("GET", f"/v1/rentals/{rental}")
    assert status == 200 and body["state"] == "REJECTED" and body["charged_cents"] == 0, body
    return rental, body


def test_rental_charged_once_and_cancel_refunds(broker, make_hub):
    with FakeProvider() as provider:
        hub = http_hub(make_hub, provider.url)
        register(hub, "V1", 1200)
        with Agent(broker, "K1") as kiosk:
            rental, state, line = rent(kiosk, "V1", "C1", 90)
            assert state == "ACTIVE" and "charged=1800" in line, line
            assert vehicle_state(hub, "V1") == "RENTED"
            # one call, one ledger entry, under the saga's key
            assert provider.calls("/v1/charges") == 1
            [call] = provider.requests
            assert call["headers"]["idempotency-key"] == f"{rental}:charge"
            assert call["headers"]["content-type"] == "application/json"
            assert call["body"] == {"rental": rental, "customer": "C1", "amount_cents": 1800}
            [charge] = provider.entries("charge")
            assert charge["key"] == f"{rental}:charge" and charge["amount_cents"] == 1800
            status, body = hub.api("GET", f"/v1/rentals/{rental}")
            steps = {s["step"]: s for s in body["saga_steps"]}
            assert steps["charge"]["status"] == "done"

            rc, out, err = kiosk.ctl("cancel", rental, "--wait", 20)
            assert rc == 0 and "CANCELLED" in out and "refunded=1800" in out, out + err
            assert vehicle_state(hub, "V1") == "AVAILABLE"
            [refund] = provider.entries("refund")
            assert refund["key"] == f"{rental}:refund"
            assert refund["refund_of"] == f"{rental}:charge"
            assert refund["amount_cents"] == 1800
            assert provider.totals() == {"charged": 1800, "refunded": 1800, "charges": 1,
                                         "refunds": 1, "declines": 0}


def test_declined_customer_is_rejected_with_the_providers_reason(broker, make_hub):
    with FakeProvider(declines=lambda c: "card expired" if "nofunds" in c else None) as provider:
        hub = http_hub(make_hub, provider.url)
        register(hub, "V2", 900)
        with Agent(broker, "K2") as kiosk:
            assert_rejected(hub, kiosk, "V2", "C-nofunds-7", "payment declined: card expired")
            # a decline is an answer: no retry, nothing to void
            assert provider.calls() == 1
            assert provider.totals()["declines"] == 1 and not provider.entries("refund")
            # the vehicle is still there for a customer who can pay
            _, state, line = rent(kiosk, "V2", "C8")
            assert state == "ACTIVE", line


def test_hub_killed_mid_call_calls_again_with_the_same_key(broker, make_hub):
    # The provider takes 1.5 s to settle a new key; the hub dies meanwhile.
    with FakeProvider() as provider:
        provider.settle_s = 1.5
        hub = http_hub(make_hub, provider.url)
        register(hub, "V3", 600)
        with Agent(broker, "K3") as kiosk:
            rc, out, err = kiosk.ctl("rent", "V3", "C3", 60)
            assert rc == 0, out + err
            rental = re.search(r"rental (\S+) queued", out).group(1)
            wait_for(lambda: provider.calls("/v1/charges") >= 1, 10, "the charge call")
            hub.kill()
            hub.start()  # the step is still "calling": called again, same key
            wait_for(lambda: "ACTIVE" in kiosk.ctl("decision", rental)[1], 20,
                     "the rental to become ACTIVE after the restart")
            keys = {r["headers"]["idempotency-key"] for r in provider.requests}
            assert provider.calls("/v1/charges") >= 2 and keys == {f"{rental}:charge"}
            assert provider.totals()["charged"] == 600 and provider.totals()["charges"] == 1
            status, body = hub.api("GET", f"/v1/rentals/{rental}")
            assert body["state"] == "ACTIVE" and body["charged_cents"] == 600


def test_unreachable_provider_fails_the_payment_with_the_reason(broker, make_hub):
    hub = http_hub(make_hub, f"http://127.0.0.1:{free_port()}", max_attempts=1)
    register(hub, "V4", 600)
    with Agent(broker, "K4") as kiosk:
        t0 = time.monotonic()
        _, body = assert_rejected(hub, kiosk, "V4", "C4",
                                  "payment failed: payment provider unreachable")
        assert time.monotonic() - t0 < 10
        steps = {s["step"]: s for s in body["saga_steps"]}
        assert steps["charge"]["status"] == "failed"
        # the void of a failed charge keeps trying (compensation never gives up)
        assert steps["refund"]["status"] in ("calling", "retry")


def test_answer_that_is_not_json_fails_the_payment(broker, make_hub):
    with FakeProvider(mode="garbage") as provider:
        hub = http_hub(make_hub, provider.url, max_attempts=1)
        register(hub, "V5", 600)
        with Agent(broker, "K5") as kiosk:
            assert_rejected(hub, kiosk, "V5", "C5",
                            "payment failed: payment provider: answer is not JSON")
            assert not provider.entries()
