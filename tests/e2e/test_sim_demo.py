"""fleet-sim drives a small fleet (real agents) through a broker and a hub:
customers rent, ride, cancel, return (some late), book ahead, vehicles report
faults, the mechanic repairs them; the run ends with an invariant check
against the hub's views."""
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import BUILD, per_test_timeout, broker, make_hub  # noqa: F401,E402


def test_small_fleet_keeps_invariants(broker, make_hub, tmp_path):
    hub = make_hub(latency_ms=5, config={"engine": {"minute_ms": 500}})
    done = subprocess.run(
        [str(BUILD / "firmware-sim" / "fleet-sim"), "--broker", broker.uri, "--hub", hub.url,
         "--state-dir", str(tmp_path / "sim"), "--register", "--vehicles", "6", "--kiosks", "2",
         "--duration", "8", "--rate", "2", "--ride", "1..3", "--faults-per-min", "3",
         "--late-share", "0.3", "--book-share", "0.3", "--minute-ms", "500", "--seed", "7"],
        capture_output=True, text=True, timeout=50)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-2000:]
    assert "all invariants held" in out
    assert "rented" in out and "returned" in out
    # the hub saw the same rentals: some completed, none left holding a vehicle twice
    status, rentals = hub.api("GET", "/v1/rentals?limit=1000")
    assert status == 200
    states = [r["state"] for r in rentals]
    assert states.count("COMPLETED") >= 1, states
    assert all(s in ("COMPLETED", "CANCELLED", "REJECTED") for s in states), states
    # late riders were charged a fee; booked customers used or cancelled their bookings
    late = re.search(r"late riders (\d+), late fees charged (\d+)", out)
    assert late and int(late.group(2)) >= 1, out[-1500:]
    # (a booked car that cannot be rented, after a fault say, has its booking cancelled)
    booked = re.search(r"bookings asked (\d+): held (\d+).*then used (\d+), cancelled (\d+)", out)
    assert booked and int(booked.group(2)) >= 1, out[-1500:]
    assert int(booked.group(3)) + int(booked.group(4)) == int(booked.group(2)), booked.group(0)
    assert sum(r["fee_cents"] > 0 for r in rentals) >= int(late.group(2)), rentals
    assert "every booking is at the hub as the customer was told" in out
