"""Runs one scenario script (tests/e2e/scenarios/*.fleet, docs/sim.md) against
a private mosquitto and hub: `python3 run_scenario.py FILE [fleet-sim options]`.

Header lines configure the run before fleet-sim reads the script (fleet-sim
itself ignores them, as comments):
    #! hub engine.minute_ms=100 fees.tier1_hours=1 payment.sim.latency_ms=5
        hub settings as SECTION.KEY=VALUE (the section is all before the last dot)
    #! sim --seed 3
        more fleet-sim options
The script's `restart hub|broker [term|kill]` lines work through
--restart-hub-cmd / --restart-broker-cmd: a small shell command that drops a
request file and waits; this runner restarts the process (same port, same
state) and removes the file. Exit status: fleet-sim's (0: every expect held).
"""
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import BUILD, Broker, Hub  # noqa: E402

REQUEST_SH = """#!/bin/sh
# request.sh DIR WHAT MODE: asks the runner to restart WHAT and waits for it
f="$1/$2.$3.req"
: > "$f"
while [ -e "$f" ]; do sleep 0.05; done
[ ! -e "$1/$2.failed" ]
"""


def read_header(path):
    """Returns (hub config {section: {key: value}}, extra fleet-sim args)."""
    config, sim_args = {}, []
    for line in Path(path).read_text().splitlines():
        if not line.startswith("#!"):
            continue
        words = shlex.split(line[2:])
        if not words:
            continue
        if words[0] == "hub":
            for item in words[1:]:
                name, _, value = item.partition("=")
                section, _, key = name.rpartition(".")
                if not section or not value:
                    sys.exit(f"{path}: '#! hub {item}': write SECTION.KEY=VALUE")
                config.setdefault(section, {})[key] = value
        elif words[0] == "sim":
            sim_args += words[1:]
        else:
            sys.exit(f"{path}: unknown header '#! {words[0]}' (hub or sim)")
    return config, sim_args


class Restarter(threading.Thread):
    """Serves the restart requests that request.sh drops into a folder."""

    def __init__(self, folder, broker, hub):
        super().__init__(daemon=True)
        self.folder, self.services = folder, {"broker": broker, "hub": hub}
        self.stopping = False

    def run(self):
        while not self.stopping:
            for req in sorted(self.folder.glob("*.req")):
                what, mode, _ = req.name.split(".")
                service = self.services[what]
                print(f"runner: restarting the {what} ({mode})", flush=True)
                try:
                    if mode == "kill":
                        service.kill()
                        service.start()
                    else:
                        service.restart()
                except Exception as e:  # reported through the .failed file
                    print(f"runner: restarting the {what} failed: {e}", flush=True)
                    (self.folder / f"{what}.failed").touch()
                req.unlink()
            time.sleep(0.05)


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: run_scenario.py FILE [fleet-sim options]")
    script = Path(sys.argv[1]).resolve()
    config, sim_args = read_header(script)
    config.setdefault("payment.sim", {}).setdefault("latency_ms", 5)
    work = Path(tempfile.mkdtemp(prefix="fleet-scenario-"))
    (work / "request.sh").write_text(REQUEST_SH)
    with Broker() as broker, Hub(broker, config=config) as hub:
        restarter = Restarter(work, broker, hub)
        restarter.start()
        request = f"/bin/sh {work / 'request.sh'} {work}"
        cmd = [str(BUILD / "firmware-sim" / "fleet-sim"), "--broker", broker.uri, "--hub", hub.url,
               "--state-dir", str(work / "sim"),
               # fleet-sim reads hub.db itself for the deepest checks (every event
               # once, the provider's ledger); on PostgreSQL it checks through the API
               *(["--hub-state", str(hub.dir)] if hub.store == "sqlite" else []),
               "--restart-hub-cmd", f"{request} hub", "--restart-broker-cmd", f"{request} broker",
               "--script", str(script), *sim_args, *sys.argv[2:]]
        print("runner:", shlex.join(cmd), flush=True)
        try:
            done = subprocess.run(cmd, timeout=float(os.environ.get("FLEET_SCENARIO_TIMEOUT", 170)))
            status = done.returncode
        except subprocess.TimeoutExpired:
            print("runner: fleet-sim did not finish in time", flush=True)
            status = 3
        restarter.stopping = True
        restarter.join()
        if status != 0:
            print("---- hub log (tail) ----\n" + hub.log()[-4000:], flush=True)
    if not os.environ.get("FLEET_KEEP_TMP"):
        subprocess.run(["rm", "-rf", str(work)])
    sys.exit(status)


if __name__ == "__main__":
    main()
