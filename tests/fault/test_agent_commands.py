"""Hub-to-vehicle commands under faults: delivered, applied once, and never
applied after they expired.

A kiosk rents a vehicle, so the hub sends the vehicle an unlock command for
the customer; the return sends a lock command. Each vehicle reports every
command with a command_result event, whose content is checked in hub.db."""
import os
import random
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("FLEET_TEST_TIMEOUT", "240")  # read by fleet.py
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from agentload import agent_status, hub_device, hub_events, wait_drained  # noqa: E402
from fleet import Agent, per_test_timeout, broker, make_hub, wait_for  # noqa: F401,E402

ROUNDS = 8


def register(hub, vehicle):
    rc, _, err = hub.fleetctl("register", vehicle, "--name", vehicle, "--station", "s",
                              "--rate", "600")
    assert rc == 0, err


def rent(kiosk, vehicle, customer):
    rc, out, err = kiosk.ctl("rent", vehicle, customer, 60, "--wait", 30)
    assert rc == 0 and " ACTIVE" in out, out + err
    return out.split()[1]


def command_results(hub, device):
    """(cmd_seq, status) of every command_result of device at the hub, in order."""
    return [(m["body"]["cmd_seq"], m["body"]["status"])
            for _, kind, m in hub_events(hub, device) if kind == "command_result"]


def remote_locks(hub, device):
    """Lock events the device recorded for a lock command."""
    return [m for _, kind, m in hub_events(hub, device)
            if kind == "lock" and m["body"].get("reason") == "remote"]


def wait_applied(hub, vehicle, timeout=60):
    """Waits until the vehicle applied every downlink message the hub issued."""
    def caught_up():
        st = agent_status(vehicle)
        return st and int(st["applied"]) >= hub_device(hub, vehicle.id)[1] > 0
    wait_for(caught_up, timeout, f"{vehicle.id} to apply its commands")


def frozen_while(agent, action):
    """Runs action() while agent is stopped with SIGSTOP (its socket stays
    open: to the broker and the hub it is online but does not answer)."""
    os.kill(agent.proc.pid, signal.SIGSTOP)
    try:
        action()
    finally:
        os.kill(agent.proc.pid, signal.SIGCONT)


def restart(*services):
    for s in services:
        s.kill()
        s.start()


def test_commands_applied_once_through_crashes(broker, make_hub):
    """ROUNDS rentals of one vehicle, each with a fault around its unlock
    command, in turn: the vehicle frozen while the hub sends the unlock and
    is killed and restarted (the new hub publishes its unacknowledged
    downlink again, P-SEQ-9, and resends it after the vehicle's hello,
    P-SEQ-11: the vehicle gets the command two or three times); the vehicle
    killed right after; both. The return's lock command gets a vehicle
    kill every other round. Each command is applied exactly once: one
    command_result "applied" per command seq 1..2*ROUNDS, one lock event per
    lock command, and the renting customer's unlock works."""
    rng = random.Random(7)
    hub = make_hub(latency_ms=5)
    register(hub, "V1")
    faults = [
        lambda rent_it: frozen_while(vehicle, lambda: (rent_it(), restart(hub))),
        lambda rent_it: (rent_it(), time.sleep(rng.uniform(0, 0.05)), restart(vehicle)),
        lambda rent_it: (rent_it(), restart(vehicle, hub)),
    ]
    with Agent(broker, "V1", role="vehicle") as vehicle, \
            Agent(broker, "K1", role="kiosk") as kiosk:
        wait_for(lambda: hub_device(hub, "V1")[0] == 1, 30, "V1 online at the hub")
        for r in range(ROUNDS):
            customer, rentals = f"C{r}", []
            faults[r % len(faults)](lambda: rentals.append(rent(kiosk, "V1", customer)))
            wait_applied(hub, vehicle)
            rc, out, err = vehicle.ctl("unlock", customer)
            assert rc == 0 and f"unlocked customer={customer}" in out, out + err
            rc, out, err = kiosk.ctl("return", rentals[0], "--wait", 30)  # the hub sends lock
            assert rc == 0 and "COMPLETED" in out, out + err
            if r % 2:
                restart(vehicle)
            wait_applied(hub, vehicle)
        wait_drained(vehicle, 60)
        rc, out, err = vehicle.ctl("unlock", "C0")  # the last lock revoked every grant
        assert rc == 4, out + err
    duplicates = vehicle.log().count("already applied")
    print(f"duplicate command deliveries seen by the vehicle: {duplicates}")
    assert duplicates > 0, "the test did not make the hub deliver a command twice"
    results = command_results(hub, "V1")
    assert results == [(seq, "applied") for seq in range(1, 2 * ROUNDS + 1)], results
    assert len(remote_locks(hub, "V1")) == ROUNDS


def test_expired_unlock_is_not_applied(broker, make_hub):
    """command_ttl_s = 2. V2 is frozen (SIGSTOP: its connection stays up, the
    hub still counts it online and publishes the unlock, which waits in V2's
    socket); it wakes after the command expired: it reports "expired" and the
    customer cannot open the car. V3 is killed (the broker publishes its
    will, the hub marks it offline and holds the unlock back); after expiry
    the hub does not resend it (P-SEQ-11): nothing is applied either."""
    hub = make_hub(latency_ms=5, command_ttl_s=2)
    register(hub, "V2")
    register(hub, "V3")
    with Agent(broker, "V2", role="vehicle") as v2, \
            Agent(broker, "V3", role="vehicle") as v3, \
            Agent(broker, "K1", role="kiosk") as kiosk:
        wait_for(lambda: hub_device(hub, "V2")[0] == 1 and hub_device(hub, "V3")[0] == 1, 30,
                 "V2 and V3 online at the hub")
        os.kill(v2.proc.pid, signal.SIGSTOP)
        v3.kill()
        wait_for(lambda: hub_device(hub, "V3")[0] == 0, 30, "V3 offline at the hub (its will)")
        rent(kiosk, "V2", "C2")
        rent(kiosk, "V3", "C3")
        assert hub_device(hub, "V2")[1] == 1 and hub_device(hub, "V3")[1] == 1
        time.sleep(3.5)  # past expires_ms
        os.kill(v2.proc.pid, signal.SIGCONT)
        v3.start()
        wait_for(lambda: command_results(hub, "V2"), 30, "V2's command_result")
        for v in (v2, v3):
            wait_drained(v, 30)
        assert command_results(hub, "V2") == [(1, "expired")]
        assert command_results(hub, "V3") == []
        for v, customer in ((v2, "C2"), (v3, "C3")):
            rc, out, err = v.ctl("unlock", customer)
            assert rc == 4 and "refused" in err, out + err
            assert agent_status(v)["locked"] == "yes"
