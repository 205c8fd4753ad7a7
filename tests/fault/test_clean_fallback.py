"""fl_mqtt's fallback to a clean session (common/src/mqtt.c, QUICK_LOSS_US and
QUICK_LOSSES_CLEAN): after three connections in a row that the broker drops
within 3 s of being made, the next connect starts a clean session, which
throws away what the broker queued for the client and what paho kept to
resend. Forced here for real: a TCP proxy (tests/fault/tcpproxy.py) between
the client and a real mosquitto resets the client's connection, then closes
each of the next three of that client 1.5 s after its CONNECT (so that
each is made, and lost within 3 s), then passes traffic. The devices keep producing the whole time; afterwards every event
they accepted is in the hub exactly once and in order, and the kiosk has a
decision for every rental, although the clean start discarded the uplink
the broker had queued for the hub."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from agentload import (Producer, check_exactly_once_in_order,  # noqa: E402
                       wait_decided, wait_drained)
from fleet import Agent, per_test_timeout, broker, make_hub, wait_for  # noqa: F401,E402
from tcpproxy import TcpProxy  # noqa: E402

FALLBACK = "connecting with a clean session"
DROP_AFTER_S = 1.5


def flap(proxy, client_id, service_log):
    """Cuts every connection, lets the next three of client_id be made and
    dropped 1.5 s later each, and waits for the client's fallback line. A
    connect that the drop cuts before it completed (a slow sanitizer build)
    is a failed attempt, not a lost connection: then one more is dropped."""
    assert FALLBACK not in service_log()
    proxy.drop_next(3, after_s=DROP_AFTER_S, client_id=client_id)
    opened = proxy.connections
    proxy.reset_all()

    def fell_back():
        if FALLBACK in service_log():
            return True
        if not proxy.pending_drops():
            proxy.drop_next(1, after_s=DROP_AFTER_S, client_id=client_id)
        return False
    wait_for(fell_back, 60, "the clean-session fallback in the log")
    assert proxy.dropped >= 3, proxy.dropped
    assert proxy.connections >= opened + 4  # three dropped, then the clean one


def test_hub_falls_back_to_a_clean_session(broker, make_hub):
    with TcpProxy(broker.port) as proxy:
        hub = make_hub(latency_ms=1, config={"mqtt": {"uri": proxy.uri}})
        with Agent(broker, "V1", role="vehicle") as vehicle, \
                Agent(broker, "K1", role="kiosk") as kiosk:
            producers = [Producer(vehicle, "fault", pause=0.02),
                         Producer(kiosk, "rent", pause=0.02)]
            for p in producers:
                p.start()
            try:
                time.sleep(3.5)  # the hub's first connection is older than 3 s
                flap(proxy, "fleet-hub", hub.log)
                wait_for(lambda: hub.api("GET", "/v1/health")[1].get("mqtt_connected"), 20,
                         "the hub connected again")
                time.sleep(2)
            finally:
                for p in producers:
                    p.stop()
            line = next(l for l in hub.log().splitlines() if FALLBACK in l)
            assert "dropped 3 connections in a row" in line, line
            for p in producers:
                assert p.failures == 0, f"{p.agent.id}: ctl failed {p.failures} times"
                wait_drained(p.agent, 90)
                n = check_exactly_once_in_order(hub, p)
                print(f"{p.agent.id}: {len(p.accepted)} accepted, {n} events at the hub")
            wait_decided(hub, kiosk, producers[1].rentals.values(), 60)


def test_agent_falls_back_to_a_clean_session(broker, make_hub):
    # The same for a device: its clean start drops the downlink the broker
    # queued for it; the hello after the connect brings everything back.
    hub = make_hub(latency_ms=1)
    with TcpProxy(broker.port) as proxy, \
            Agent(broker, "K2", role="kiosk", config={"mqtt": {"uri": proxy.uri}}) as kiosk:
        producer = Producer(kiosk, "rent", pause=0.02)
        producer.start()
        try:
            time.sleep(3.5)
            flap(proxy, "K2", kiosk.log)
            time.sleep(3)
        finally:
            producer.stop()
        assert producer.failures == 0, f"ctl failed {producer.failures} times"
        wait_drained(kiosk, 90)
        n = check_exactly_once_in_order(hub, producer)
        print(f"K2: {len(producer.accepted)} accepted, {n} events at the hub")
        wait_decided(hub, kiosk, producer.rentals.values(), 60)
