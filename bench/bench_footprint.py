"""bench/run footprint: what the agent costs a device: memory, program size,
and bytes written to storage per event, for each [outbox] durability.

Each run, for each durability (off, normal, full): a fresh mosquitto, hub and
vehicle agent (log level warn, so that the log file adds no writes). After a
warm-up of 100 events, --events fault events are submitted one at a time
through the control socket, and the run waits until the hub has acked every
one (so each event's whole life on the device is counted: its insert, and the
delete when the hub's ack came). From /proc/PID/io of the agent process:

- footprint_<d>_disk_bytes_per_event: write_bytes (what the process caused to
  be sent to the storage layer, counted per 4 KiB page when a clean page is
  dirtied; a page rewritten while still dirty counts once) per event;
- footprint_<d>_syscall_bytes_per_event: wchar (bytes passed to write(2) and
  pwrite(2) by SQLite) per event;
- footprint_<d>_write_amplification: disk bytes per event over the event's
  encoded size (the same bytes as hub.db's payload column);
- footprint_<d>_events_per_s: events accepted per second, one at a time.

Memory is read from /proc/PID/status and smaps_rollup of the `normal` agent
at the end of its run: VmRSS (every resident page, shared libraries
included), RssAnon (the agent's private memory) and Pss (shared pages split
among the processes that map them). The headline, last, is VmRSS (goal: at
most 4 MiB). The program size is a stripped copy of fleet-agent (Release).

fleet-agent links paho without TLS; for an ssl:// broker it becomes
fleet-agent-tls (docs/agent.md). When the build has it, one more `normal`
run drives fleet-agent-tls on the same tcp:// broker: footprint_tls_vmrss_kb
and footprint_tls_openssl_kb (the resident pages of libssl and libcrypto, from
/proc/PID/smaps) say what linking OpenSSL costs before any TLS session.

footprint_backlog_vmrss_kb: VmRSS of an agent connected to a broker with no
hub after --backlog events were queued through the control socket (a device
whose hub is away: the outbox grows)."""
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time

from bench import BUILD
from bench_resync import agent_request, ctl_status
from fleet import Agent, Broker, Hub, wait_for

DURABILITIES = ("off", "normal", "full")


def add_options(p):
    p.add_argument("--events", type=int, default=2000, help="footprint: events per durability")
    p.add_argument("--backlog", type=int, default=10000,
                   help="footprint: events queued while no hub answers")


def proc_io(pid):
    with open(f"/proc/{pid}/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def proc_kb(path, keys):
    """The kB figures named in keys from a /proc status-like file."""
    out = {}
    with open(path) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in keys:
                out[key] = int(rest.split()[0])
    return out


def openssl_kb(pid):
    """Resident kB of the libssl and libcrypto mappings of process pid."""
    total, name = 0, ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(None, 6)
            if "-" in first[0] and len(first) >= 5:
                name = first[5].strip() if len(first) > 5 else ""
            elif first[0] == "Rss:" and os.path.basename(name).startswith(("libssl.", "libcrypto.")):
                total += int(first[1])
    return total


class TlsAgent(Agent):
    """The agent daemon linked with paho's TLS build (fleet-agent-tls)."""

    def command(self):
        return [str(BUILD / "agent" / "fleet-agent-tls"), "run", "--config", str(self.config_path)]


def stripped_size():
    """Bytes of fleet-agent as built, and of a stripped copy."""
    binary = BUILD / "agent" / "fleet-agent"
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "fleet-agent")
        shutil.copy(binary, copy)
        subprocess.run(["strip", copy], check=True)
        return os.path.getsize(binary), os.path.getsize(copy)


def submit(agent, first, n):
    """Submits faults DTC W<first>..W<first+n-1>, one request at a time."""
    for i in range(first, first + n):
        _, final = agent_request(agent, "fault", f"W{i}", "info")
        assert final == "ok", final


def wait_acked(agent, n):
    wait_for(lambda: (lambda st: int(st["last_ack"]) >= n and int(st["backlog"]) == 0)(
        ctl_status(agent)), 120, f"the hub's ack of {n} events")


def measure(durability, events, agent_class=Agent):
    """Runs one agent with durability; returns its figures and the memory."""
    figures, memory = {}, {}
    warmup = 100
    with Broker() as broker, Hub(broker, latency_ms=0) as hub:
        agent = agent_class(broker, "F1", role="vehicle",
                            config={"agent": {"log_level": "warn"},
                                    "outbox": {"durability": durability}})
        try:
            wait_for(lambda: ctl_status(agent)["synced"] == "yes", 30, "the agent's sync")
            submit(agent, 1, warmup)
            wait_acked(agent, warmup)
            io0 = proc_io(agent.proc.pid)
            t0 = time.monotonic()
            submit(agent, warmup + 1, events)
            seconds = time.monotonic() - t0
            wait_acked(agent, warmup + events)
            io1 = proc_io(agent.proc.pid)
            pid = agent.proc.pid
            memory = proc_kb(f"/proc/{pid}/status", ("VmRSS", "VmHWM", "RssAnon", "RssFile"))
            memory.update(proc_kb(f"/proc/{pid}/smaps_rollup", ("Pss",)))
            memory["openssl"] = openssl_kb(pid)
            agent.stop()
        finally:
            agent.close()
        db = sqlite3.connect(hub.db_path)
        try:
            (size,) = db.execute("SELECT avg(length(payload)) FROM events WHERE device = 'F1'"
                                 " AND seq > ?", (warmup,)).fetchone()
        finally:
            db.close()
    disk = (io1["write_bytes"] - io0["write_bytes"]) / events
    figures[f"footprint_{durability}_events_per_s"] = events / seconds
    figures[f"footprint_{durability}_syscall_bytes_per_event"] = (io1["wchar"] - io0["wchar"]) / events
    figures[f"footprint_{durability}_disk_bytes_per_event"] = disk
    figures[f"footprint_{durability}_write_amplification"] = disk / size
    figures["footprint_event_encoded_bytes"] = size
    return figures, memory


def measure_backlog(events):
    """VmRSS (kB) of an agent holding events unacked: a broker, no hub."""
    with Broker() as broker:
        agent = Agent(broker, "F1", role="vehicle",
                      config={"agent": {"log_level": "warn"},
                              "outbox": {"max_events": events + 1}})
        try:
            submit(agent, 1, events)
            vmrss = proc_kb(f"/proc/{agent.proc.pid}/status", ("VmRSS",))["VmRSS"]
            agent.stop()
        finally:
            agent.close()
    return vmrss


def run(args):
    figures = {}
    binary, stripped = stripped_size()
    figures["footprint_binary_bytes"] = binary
    figures["footprint_stripped_binary_bytes"] = stripped
    memory = {}
    for durability in DURABILITIES:
        f, m = measure(durability, args.events)
        figures.update(f)
        if durability == "normal":
            memory = m
    if (BUILD / "agent" / "fleet-agent-tls").exists():
        _, tls = measure("normal", args.events, TlsAgent)
        figures["footprint_tls_vmrss_kb"] = tls["VmRSS"]
        figures["footprint_tls_openssl_kb"] = tls["openssl"]
    figures["footprint_backlog_vmrss_kb"] = measure_backlog(args.backlog)
    figures["footprint_vmhwm_kb"] = memory["VmHWM"]
    figures["footprint_rss_file_kb"] = memory["RssFile"]
    figures["footprint_rss_anon_kb"] = memory["RssAnon"]
    figures["footprint_pss_kb"] = memory["Pss"]
    figures["footprint_vmrss_kb"] = memory["VmRSS"]
    return figures
