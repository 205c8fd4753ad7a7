"""The operator unsticks sagas: with the payment provider failing, a rental
waits in PAYMENT_PENDING while its charge is retried (visible in the sagas
view with attempts and the last error); `fleetctl compensate` cancels it at
once and frees the vehicle, with no money taken; once the provider is back,
`fleetctl retry` runs the waiting void (refund) step without waiting for its
back-off."""
import re
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import Agent, parse_table, per_test_timeout, broker, make_hub, wait_for  # noqa: F401,E402


def saga(hub, rental):
    status, steps = hub.api("GET", "/v1/sagas?limit=1000")
    assert status == 200
    return {s["step"]: s for s in steps if s["rental"] == rental}


def test_compensate_and_retry_a_stuck_saga(broker, make_hub):
    hub = make_hub(latency_ms=5, failure_rate=1.0, max_attempts=50)
    assert hub.fleetctl("register", "V1", "--name", "x", "--station", "s", "--rate", "900")[0] == 0
    with Agent(broker, "K1", role="kiosk") as kiosk:
        rc, out, err = kiosk.ctl("rent", "V1", "C1", 60)
        rental = re.match(r"rental (\S+) queued", out).group(1)
        # the charge keeps failing: retried with back-off, the rental waits
        wait_for(lambda: saga(hub, rental).get("charge", {}).get("attempts", 0) >= 2, 30,
                 "the charge to be retried")
        charge = saga(hub, rental)["charge"]
        assert charge["status"] in ("retry", "calling") and "provider error" in charge["last_error"]
        rc, out, _ = hub.fleetctl("sagas", "--status", "retry")
        assert rental in out or charge["status"] == "calling"
        status, body = hub.api("GET", f"/v1/rentals/{rental}")
        assert body["state"] == "PAYMENT_PENDING"

        # compensate: cancelled at once, vehicle free, the kiosk is told
        wait_for(lambda: saga(hub, rental)["charge"]["status"] == "retry", 30, "a charge between tries")
        rc, out, err = hub.fleetctl("compensate", rental)
        assert rc == 0 and re.search(r"state\s+CANCELLED", out), out + err
        status, body = hub.api("GET", f"/v1/rentals/{rental}")
        assert body["state"] == "CANCELLED" and body["charged_cents"] == 0
        assert saga(hub, rental)["charge"]["status"] == "cancelled"
        rows = parse_table(hub.fleetctl("vehicles")[1])
        assert {r["ID"]: r["STATE"] for r in rows}["V1"] == "AVAILABLE"
        wait_for(lambda: "CANCELLED" in kiosk.ctl("decision", rental)[1], 20, "the kiosk's answer")

        # the void (refund) step keeps failing too until the provider is back
        wait_for(lambda: saga(hub, rental).get("refund", {}).get("status") == "retry", 30,
                 "the void to wait for its next try")
        hub.stop()
        hub.config_path.write_text(hub.config_path.read_text().replace(
            "failure_rate = 1.0", "failure_rate = 0.0"))
        hub.start()
        rc, out, err = hub.fleetctl("retry", rental)
        # still waiting: the operator's retry runs it now; already run: nothing to retry
        assert rc == 0 or "no failed or waiting step" in err, out + err
        wait_for(lambda: saga(hub, rental)["refund"]["status"] == "done", 20, "the void to be done")
        ledger = sqlite3.connect(hub.db_path.parent / "payments-sim.db")
        assert ledger.execute("SELECT COUNT(*) FROM ledger WHERE rental = ? AND kind = 'charge' "
                              "AND outcome = 'ok'", (rental,)).fetchone()[0] == 0
        assert hub.api("POST", "/v1/read-models/check")[0] == 200
