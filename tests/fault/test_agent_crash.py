"""The agent is killed with SIGKILL over and over while it produces: a vehicle
submitting faults (and telemetry) and a kiosk submitting rental requests,
each through `fleet-agent ctl`, each agent killed at least KILLS times at
seeded random moments and restarted on the same state directory.

Asserts, per device, from the hub's events table: seqs 1..N contiguous and
unique; every event the agent accepted (ctl exit 0) is there exactly once,
matched by content (the fault's DTC, the rental's customer); nothing arrives
that was not submitted, the uncertain ones (ctl failed because the agent was
killed while answering) at most once; and all in submission order. The
kiosk also holds a decision for every accepted rental (the downlink survived
the kills too). FLEET_TEST_AGENT_KILLS overrides KILLS."""
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("FLEET_TEST_TIMEOUT", "300")  # read by fleet.py
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from agentload import (Producer, check_exactly_once_in_order,  # noqa: E402
                       wait_decided, wait_drained)
from fleet import Agent, per_test_timeout, broker, make_hub  # noqa: F401,E402

KILLS = int(os.environ.get("FLEET_TEST_AGENT_KILLS", 50))


def test_agent_killed_while_producing(broker, make_hub):
    rng = random.Random(20261120)
    hub = make_hub(latency_ms=1)
    with Agent(broker, "V1", role="vehicle") as vehicle, \
            Agent(broker, "K1", role="kiosk") as kiosk:
        producers = [Producer(vehicle, "fault"), Producer(kiosk, "rent")]
        for p in producers:
            p.start()
        t0 = time.monotonic()
        for _ in range(KILLS):
            for agent in rng.sample([vehicle, kiosk], 2):
                time.sleep(rng.uniform(0.02, 0.4))  # producing and publishing
                agent.kill()
                time.sleep(rng.uniform(0.0, 0.1))   # down: ctl fails
                agent.start()
        for p in producers:
            p.stop()
        produced = {p.agent.id: (len(p.accepted), p.failures) for p in producers}
        print(f"{KILLS} kills of each agent in {time.monotonic() - t0:.0f} s; "
              f"accepted, failed: {produced}")
        for p in producers:
            assert len(p.accepted) >= KILLS, f"{p.agent.id} accepted too little: {produced}"
            wait_drained(p.agent, 90)
            check_exactly_once_in_order(hub, p)
        wait_decided(hub, kiosk, producers[1].rentals.values(), 60)
