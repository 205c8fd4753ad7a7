"""bench/run idle: what idle devices cost the process that runs them.

One fleet-sim process with --idle-devices vehicles (real agents: SQLite
outbox, MQTT session) against a fresh mosquitto and hub, no customers,
telemetry every 10 s. Once every device is connected and synced, fleet-sim's
CPU (percent of one core) is measured over --idle-seconds. This is the cost
of agent_tick() every 50 ms per device plus the periodic telemetry: the
figure that decides how many devices one fleet-sim process (or one gateway
running several agents) can hold.

Figures: idle_sim_cpu_percent (headline), idle_sim_cpu_percent_per_1000."""
import os
import resource
import shutil
import subprocess
import tempfile
import time

from bench import BUILD, cpu_seconds
from fleet import Broker, Hub

SIM = str(BUILD / "firmware-sim" / "fleet-sim")


def add_options(p):
    p.add_argument("--idle-devices", type=int, default=1000, help="idle: vehicles in fleet-sim")
    p.add_argument("--idle-seconds", type=float, default=15, help="idle: measured span")


def run(args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    n = args.idle_devices
    state = tempfile.mkdtemp(prefix="fleet-bench-idle-")
    try:
        with Broker(max_connections=-1) as broker, Hub(broker, latency_ms=1) as hub:
            sim = subprocess.Popen(
                [SIM, "--broker", broker.uri, "--hub", hub.url, "--state-dir", state,
                 "--register", "--vehicles", str(n), "--kiosks", "1", "--rate", "0",
                 "--duration", str(args.idle_seconds + 60), "--telemetry", "10",
                 "--faults-per-min", "0", "--no-mechanic", "--quiet"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            try:
                for line in sim.stdout:
                    if "connected and synced" in line:
                        break
                assert f"{n + 1} of {n + 1} devices" in line, line
                c0, t0 = cpu_seconds(sim.pid), time.monotonic()
                time.sleep(args.idle_seconds)
                cpu = 100 * (cpu_seconds(sim.pid) - c0) / (time.monotonic() - t0)
            finally:
                sim.kill()
                sim.wait()
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return {"idle_sim_cpu_percent_per_1000": cpu * 1000 / (n + 1), "idle_sim_cpu_percent": cpu}
