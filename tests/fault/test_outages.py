"""The broker, then the hub, go away while a vehicle (faults, telemetry) and a
kiosk (rental requests) keep producing through `fleet-agent ctl`; the agents
keep accepting events into their outboxes. When the service comes back,
every accepted event reaches the hub exactly once and in per-device order
(hub.db events: seqs 1..N, matched by content; agentload.py), and the kiosk
gets a decision for every accepted rental.

- broker: stopped (SIGTERM, it saves its state) for BROKER_OUTAGE_S, then
  killed (SIGKILL: the sessions and queued messages since its last save are
  lost) for BROKER_OUTAGE_S / 2.
- hub: stopped (SIGTERM) for HUB_OUTAGE_S, then killed (SIGKILL) for 10 s.
  The issue asks for outages "of minutes"; the default of 60 s keeps the
  suite reasonable and already spans several of the agents' hello retries
  (3 s) and ack-stall resyncs (10 s). Set FLEET_TEST_HUB_OUTAGE_S=300 for a
  five-minute outage (the per-test limit, FLEET_TEST_TIMEOUT, grows with it)."""
import os
import sys
import time
from pathlib import Path

BROKER_OUTAGE_S = float(os.environ.get("FLEET_TEST_BROKER_OUTAGE_S", 8))
HUB_OUTAGE_S = float(os.environ.get("FLEET_TEST_HUB_OUTAGE_S", 60))
os.environ.setdefault("FLEET_TEST_TIMEOUT", str(int(180 + HUB_OUTAGE_S)))  # read by fleet.py

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from agentload import (Producer, check_exactly_once_in_order,  # noqa: E402
                       wait_decided, wait_drained)
from fleet import Agent, per_test_timeout, broker, make_hub, wait_for  # noqa: F401,E402

PAUSE_S = 0.02  # between two ctl calls of one device


def produce_through(broker, hub, outages):
    """Runs a vehicle and a kiosk producing while outages() breaks things,
    then checks that everything accepted arrived exactly once, in order."""
    with Agent(broker, "V1", role="vehicle") as vehicle, \
            Agent(broker, "K1", role="kiosk") as kiosk:
        producers = [Producer(vehicle, "fault", pause=PAUSE_S),
                     Producer(kiosk, "rent", pause=PAUSE_S)]
        for p in producers:
            p.start()
        try:
            time.sleep(2)
            outages()
            time.sleep(2)
        finally:
            for p in producers:
                p.stop()
        for p in producers:
            assert p.failures == 0, f"{p.agent.id}: ctl failed {p.failures} times"
            wait_drained(p.agent, 90)
            n = check_exactly_once_in_order(hub, p)
            print(f"{p.agent.id}: {len(p.accepted)} accepted, {n} events at the hub")
        wait_decided(hub, kiosk, producers[1].rentals.values(), 60)


def away(service, stopped_s, killed_s):
    """Stops service (SIGTERM) for stopped_s, runs it 3 s, kills it
    (SIGKILL) for killed_s, and starts it again."""
    def outages():
        service.stop()
        time.sleep(stopped_s)
        service.start()
        time.sleep(3)
        service.kill()
        time.sleep(killed_s)
        service.start()
    return outages


def test_broker_outage(broker, make_hub):
    """Also the ack hold's broker-restart test (issue 11): the agents speak
    revision 1.2, so the hub holds their acks (one in flight per device,
    the newest watermark on the previous PUBACK, decisions that ack) while
    the broker goes and comes back; it once made mosquitto drop the hub for
    a malformed packet after every reconnect (docs/architecture.md)."""
    hub = make_hub(latency_ms=1)
    produce_through(broker, hub, away(broker, BROKER_OUTAGE_S, BROKER_OUTAGE_S / 2))
    malformed = [line for line in broker.log().splitlines() if "malformed" in line.lower()]
    assert not malformed, "mosquitto dropped a client for a malformed packet:\n" + \
        "\n".join(malformed[:5])


def test_hub_outage(broker, make_hub):
    hub = make_hub(latency_ms=1)
    produce_through(broker, hub, away(hub, HUB_OUTAGE_S, 10))


def hello_times(agent, why):
    """Seconds (log time stamps) of the agent's 'hello sent (why)' lines."""
    stamps = []
    for line in agent.log().splitlines():
        if f"hello sent ({why})" in line:
            hms = line.split("T", 1)[1].split("Z", 1)[0]  # 2026-11-21T01:35:55.520Z
            h, m, s = hms.split(":")
            stamps.append(int(h) * 3600 + int(m) * 60 + float(s))
    return stamps


def test_hello_backs_off_while_no_hub_answers(broker, make_hub):
    # No hub yet: the hello that gets no sync is repeated after 0.2 s, then
    # after waits that double (with jitter: the upper half of the doubled
    # wait), instead of every 0.2 s. A hub that comes up is greeted at once,
    # not after the backed-off wait.
    sync = {"hello_retry_ms": 200, "hello_retry_max_ms": 30000}
    with Agent(broker, "V1", role="vehicle", config={"sync": sync}) as car:
        time.sleep(8)
        retries = hello_times(car, "no sync")
        gaps = [b - a for a, b in zip(retries, retries[1:])]
        # at a fixed 0.2 s that would be 40 retries; a base doubling from
        # 0.2 s, each wait drawn from its upper half, gives 5 or 6 in 8 s
        assert 3 <= len(retries) <= 8, retries
        assert all(b >= a - 0.1 for a, b in zip(gaps, gaps[1:])), gaps  # 0.1: tick
        assert gaps[-1] >= 4 * gaps[0] and gaps[-1] >= 0.8, gaps
        hub = make_hub(latency_ms=1)
        t0 = time.monotonic()
        wait_for(lambda: "sync received" in car.log(), 10, "the agent's sync")
        assert time.monotonic() - t0 < 5, "the hub's first status should trigger a hello"
        assert hello_times(car, "hub online"), car.log()[-2000:]
        rc, out, err = car.ctl("fault", "P0300", "warning")
        assert rc == 0, err
        wait_drained(car, 30)
        assert hub  # the hub stopped by the fixture
