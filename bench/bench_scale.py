"""bench/run scale: many simulated devices on one broker and one hub.

Each run: a fresh mosquitto (max_connections -1) and hub, with the open-file
limit raised first (RLIMIT_NOFILE soft limit up to the hard one, inherited by
both and by fleet-sim: each simulated device holds a socket and its SQLite
file, WAL and shm, so 4 descriptors). The fleet is split over several
fleet-sim processes (--prefix p1-, p2-, ...) of at most --scale-per-process
devices each, and each within the open-file limit (this VM: 20,000, which even
root cannot raise in its container): paho serves every client of a process
with one send and one receive thread under one global lock, which thousands
of clients in one process saturate. fleet-sim registers the vehicles
through the API, starts
--scale-devices agents (1 % kiosks) at --scale-connect-rate a second, each
vehicle sending telemetry every 10 s, and customers rent, ride and return at
--scale-rate a second for --scale-seconds; the run ends with fleet-sim's
invariant check (hub.db and the provider's ledger included).

Figures: scale_connect_s (first start to every device synced with the hub),
hub and broker CPU (percent of one core) while connecting and in the steady
phase (until the first process reports), peak RSS of hub, broker and all
fleet-sim processes, fleet-sim's threads per process, the kiosk-observed
decision latency over every process's answers (p50/p99/max), the number of
answers, scale_invariants_held (1/0), and last the headline
scale_devices_synced."""
import math
import os
import re
import resource
import subprocess
import threading
import time

from bench import BUILD, cpu_seconds
from fleet import Broker, Hub

SIM = str(BUILD / "firmware-sim" / "fleet-sim")


def add_options(p):
    p.add_argument("--scale-devices", type=int, default=10000, help="scale: simulated devices")
    p.add_argument("--scale-seconds", type=float, default=60, help="scale: renting phase")
    p.add_argument("--scale-rate", type=float, default=5, help="scale: rentals asked per second")
    p.add_argument("--scale-connect-rate", type=float, default=500,
                   help="scale: devices started per second")
    p.add_argument("--scale-telemetry", type=float, default=10, help="scale: telemetry period (s)")
    p.add_argument("--seed", type=int, default=1, help="scale: fleet-sim's seed")
    p.add_argument("--scale-per-process", type=int, default=1000,
                   help="scale: at most this many devices per fleet-sim process")


FDS_PER_DEVICE = 4  # socket, SQLite db, -wal, -shm
FDS_SPARE = 1000


def raise_nofile(need):
    """Raises this process's open-file limit (inherited by the children) to
    need, or as far as the hard limit allows; above it only with
    CAP_SYS_RESOURCE, which a container may not grant. Returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(need, hard), max(need, hard)))
        return need
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def threads(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return 0


class Peaks(threading.Thread):
    """Samples RSS (MiB) and thread counts of named processes every 0.5 s."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.rss, self.threads, self.stopping = pids, {}, {}, False

    def run(self):
        while not self.stopping:
            for name, pid in self.pids.items():
                self.rss[name] = max(self.rss.get(name, 0), rss_mb(pid))
                self.threads[name] = max(self.threads.get(name, 0), threads(pid))
            time.sleep(0.5)


def run(args):
    n = args.scale_devices
    limit = raise_nofile(FDS_PER_DEVICE * n + FDS_SPARE)
    per_process = min((limit - FDS_SPARE) // FDS_PER_DEVICE, max(1, args.scale_per_process))
    procs = -(-n // per_process)
    figures = {"scale_fd_limit": float(limit), "scale_sim_processes": float(procs)}
    latencies = []  # kiosk-observed decision latencies (ms) of every process
    with Broker(max_connections=-1) as broker:
        hub = Hub(broker, latency_ms=5, config={"engine": {"queue_max": 100000}})
        try:
            sims, outs, marks = [], [], {}
            for i in range(procs):
                devices = n // procs + (1 if i < n % procs else 0)
                kiosks = max(1, devices // 100)
                cmd = [SIM, "--broker", broker.uri, "--hub", hub.url, "--state-dir",
                       str(hub.dir / "sim"), "--hub-state", str(hub.dir), "--register",
                       "--prefix", f"p{i + 1}-" if procs > 1 else "",
                       "--vehicles", devices - kiosks, "--kiosks", kiosks,
                       "--telemetry", args.scale_telemetry, "--duration", args.scale_seconds,
                       "--rate", args.scale_rate / procs, "--ride", "5..20", "--cancel-share", 0.1,
                       "--faults-per-min", 0.01, "--connect-rate", args.scale_connect_rate / procs,
                       "--seed", args.seed + i, "--quiet",
                       "--latency-file", hub.dir / f"latencies-{i + 1}.txt"]
                sims.append(subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, text=True))
                outs.append([])
            pids = {"hub": hub.proc.pid, "broker": broker.proc.pid}
            pids.update({f"sim{i}": p.pid for i, p in enumerate(sims)})
            peaks = Peaks(pids)
            peaks.start()

            def mark(name):
                marks[name] = (time.monotonic(), cpu_seconds(hub.proc.pid), cpu_seconds(broker.proc.pid))

            def read(i):
                for line in sims[i].stdout:
                    outs[i].append(line)
                    print(f"[sim{i + 1}] {line}" if procs > 1 else line, end="", flush=True)
                    if "devices connected and synced" in line:
                        synced_now = sum(any("devices connected and synced" in l for l in o) for o in outs)
                        if synced_now == procs:
                            mark("synced")
                    elif "==== fleet-sim report" in line and "steady_end" not in marks:
                        mark("steady_end")  # the first process's renting phase is over

            mark("start")
            readers = [threading.Thread(target=read, args=(i,)) for i in range(procs)]
            for t in readers:
                t.start()
            for t in readers:
                t.join()
            mark("end")
            for p in sims:
                p.wait()
            peaks.stopping = True
            peaks.join()
        finally:
            t0 = time.monotonic()
            try:
                hub.stop(timeout=60)
            except RuntimeError:  # ignored SIGTERM for 60 s: killed
                pass
            figures["scale_hub_stop_s"] = time.monotonic() - t0
            for i in range(procs):  # every process's decision latencies, merged
                f = hub.dir / f"latencies-{i + 1}.txt"
                if f.exists():
                    latencies += [float(x) for x in f.read_text().split()]
            hub.close()
    synced, connect_s = 0, 0.0
    for o in outs:
        text = "".join(o)
        m = re.search(r"(\d+) of (\d+) devices connected and synced in ([\d.]+) s", text)
        if m:
            synced += int(m.group(1))
            connect_s = max(connect_s, float(m.group(3)))
    if "synced" in marks:
        for phase, a, b in (("connect", "start", "synced"),
                            ("steady", "synced", "steady_end" if "steady_end" in marks else "end")):
            wall = marks[b][0] - marks[a][0]
            figures[f"scale_hub_cpu_{phase}_percent"] = 100 * (marks[b][1] - marks[a][1]) / wall
            figures[f"scale_broker_cpu_{phase}_percent"] = 100 * (marks[b][2] - marks[a][2]) / wall
    figures["scale_connect_s"] = connect_s
    figures["scale_hub_rss_mb"] = peaks.rss.get("hub", 0)
    figures["scale_broker_rss_mb"] = peaks.rss.get("broker", 0)
    figures["scale_sim_rss_mb"] = sum(v for k, v in peaks.rss.items() if k.startswith("sim"))
    figures["scale_sim_threads"] = max(v for k, v in peaks.threads.items() if k.startswith("sim"))
    if latencies:
        latencies.sort()
        at = lambda q: latencies[max(0, math.ceil(q / 100 * len(latencies)) - 1)]  # nearest rank
        figures["scale_decisions"] = float(len(latencies))
        figures["scale_decision_p50_ms"] = at(50)
        figures["scale_decision_p99_ms"] = at(99)
        figures["scale_decision_max_ms"] = latencies[-1]
    figures["scale_invariants_held"] = 1.0 if all(p.returncode == 0 for p in sims) else 0.0
    figures["scale_devices_synced"] = float(synced)
    return figures
