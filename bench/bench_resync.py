"""bench/run resync: an agent that was offline with a backlog of events
reconnects; how fast does the hub take the backlog?

Each run: a fresh mosquitto, the raw broker QoS 1 rate (fleet-loadgen
baseline) as the yardstick, then a fresh hub, and a vehicle agent's store
filled offline with --events fault events by fleet-backlog (through the agent
library, the i-th event carrying DTC "B<i>"). Then `fleet-agent run` starts on
that store, and the clock runs from its start until the hub's cumulative ack
for the last event came back (the agent's `last_ack`, polled on its control
socket). Afterwards hub.db must hold every event exactly once, seqs 1..N,
each with its own DTC: nothing lost, nothing doubled, order kept.

Figures: resync_events_per_s (events acked by the hub per second),
resync_agent_cpu_percent / resync_hub_cpu_percent (of one core, during the
drain), and the headline resync_vs_baseline_ratio (goal >= 0.5)."""
import socket
import sqlite3
import subprocess
import time

import cbor2

from bench import BUILD, baseline, cpu_seconds
from fleet import Agent, Broker, Hub, wait_for

BACKLOG = str(BUILD / "bench" / "fleet-backlog")


def add_options(p):
    p.add_argument("--events", type=int, default=100000, help="resync: events in the backlog")
    p.add_argument("--durability", default="normal", help="resync: the agent's [outbox] durability")
    p.add_argument("--agent-window", type=int, default=None,
                   help="resync: the agent's [outbox] window (default: the agent's)")


def agent_request(agent, *args):
    """Sends one request to the agent's control socket in its wire format
    (one TAB-separated line; cheaper than a fleet-agent ctl process).
    Returns (result lines, final line)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(agent.socket))
        s.sendall("\t".join(map(str, args)).encode() + b"\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    lines = data.decode().splitlines()
    return lines[:-1], lines[-1] if lines else "error failed no answer"


def ctl_status(agent):
    """The agent's `status` as a dict of strings."""
    lines, final = agent_request(agent, "status")
    assert final == "ok", final
    return dict(line.split(" ", 1) for line in lines)


def check_hub_copy(db_path, device, n):
    """Asserts hub.db holds seqs 1..n of device once each, the i-th with DTC B<i>."""
    db = sqlite3.connect(db_path)
    try:
        rows = db.execute("SELECT seq, payload FROM events WHERE device = ? ORDER BY id",
                          (device,)).fetchall()
    finally:
        db.close()
    seqs = [s for s, _ in rows]
    assert seqs == list(range(1, n + 1)), (
        f"hub holds {len(seqs)} events of {device}, expected seqs 1..{n} in order")
    for seq, payload in rows:
        dtcs = cbor2.loads(payload)["body"]["dtcs"]
        assert dtcs == [f"B{seq}"], f"seq {seq} carries {dtcs}"


def run(args):
    n = args.events
    figures = {}
    with Broker() as broker:
        figures["baseline_qos1_msgs_per_s"] = baseline(broker)
        hub = Hub(broker, latency_ms=0)
        outbox = {"max_events": n + 1000, "durability": args.durability}
        if args.agent_window:
            outbox["window"] = args.agent_window
        agent = Agent(broker, "R1", role="vehicle", start=False,
                      config={"agent": {"log_level": "warn"}, "outbox": outbox})
        try:
            fill = subprocess.run([BACKLOG, "--db", str(agent.dir / "agent-R1.db"), "--id", "R1",
                                   "--count", str(n), "--durability", "off"],
                                  capture_output=True, text=True, timeout=600, check=True)
            filled = dict(l.split("=", 1) for l in fill.stdout.split())
            assert int(filled["backlog_events"]) == n, fill.stdout + fill.stderr
            figures["backlog_fill_events_per_s"] = n / float(filled["backlog_fill_seconds"])
            hub_cpu0 = cpu_seconds(hub.proc.pid)
            t0 = time.monotonic()
            agent.start()
            wait_for(lambda: int(ctl_status(agent)["last_ack"]) >= n or time.sleep(0.05),
                     max(120, n / 200), f"the hub's ack of all {n} events")
            seconds = time.monotonic() - t0
            figures["resync_agent_cpu_percent"] = 100 * cpu_seconds(agent.proc.pid) / seconds
            figures["resync_hub_cpu_percent"] = 100 * (cpu_seconds(hub.proc.pid) - hub_cpu0) / seconds
            figures["resync_seconds"] = seconds
            figures["resync_events_per_s"] = n / seconds
            status = ctl_status(agent)
            assert int(status["backlog"]) == 0, status
            agent.stop()
            hub.stop()
            check_hub_copy(hub.db_path, "R1", n)
            figures["resync_vs_baseline_ratio"] = (figures["resync_events_per_s"]
                                                   / figures["baseline_qos1_msgs_per_s"])
        finally:
            agent.close()
            hub.close()
    return figures
