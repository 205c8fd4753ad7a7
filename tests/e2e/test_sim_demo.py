"""fleet-sim drives a small fleet (real agents) through a broker and a hub:
customers rent, ride, cancel and return, vehicles report faults, the mechanic
repairs them; the run ends with an invariant check against the hub's views."""
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import BUILD, per_test_timeout, broker, make_hub  # noqa: F401,E402


def test_small_fleet_keeps_invariants(broker, make_hub, tmp_path):
    hub = make_hub(latency_ms=5)
    done = subprocess.run(
        [str(BUILD / "firmware-sim" / "fleet-sim"), "--broker", broker.uri, "--hub", hub.url,
         "--state-dir", str(tmp_path / "sim"), "--register", "--vehicles", "6", "--kiosks", "2",
         "--duration", "8", "--rate", "2", "--ride", "1..3", "--faults-per-min", "3",
         "--seed", "7"],
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
