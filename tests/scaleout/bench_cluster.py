"""What cluster mode costs and gives, measured with fleet-loadgen's ingest
(bench/README.md: D vehicles sending sequenced telemetry, at most W
unacknowledged each; an event counts when its ack came back): one hub on
PostgreSQL alone, one hub in cluster mode, two hubs in cluster mode, each on a
fresh database of one private PostgreSQL cluster, one mosquitto.

    /usr/bin/python3 tests/scaleout/bench_cluster.py [--devices 200] [--seconds 8] [--runs 1]

Prints key=value lines (events per second acknowledged). Not a ctest: a
benchmark, run by hand (FLEET_BUILD_DIR names the build; default build/)."""
import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
import fleet  # noqa: E402
from fleet import BUILD, Broker, Hub  # noqa: E402
from cluster import cluster_hub, wait_balanced  # noqa: E402

LOADGEN = str(BUILD / "bench" / "fleet-loadgen")


def ingest(broker, devices, seconds, prefix):
    done = subprocess.run([LOADGEN, "ingest", "--broker", broker.uri, "--devices", str(devices),
                           "--seconds", str(seconds), "--window", "32", "--prefix", prefix],
                          capture_output=True, text=True, timeout=seconds * 10 + 60)
    out = dict(line.partition("=")[::2] for line in done.stdout.splitlines())
    return float(out["ingest_events_per_s"])


def register(hub, prefix, n):
    for i in range(n):
        status, _ = hub.api("POST", "/v1/vehicles", {"id": f"{prefix}T{i}", "name": "bench",
                                                     "station": "s", "rate_cents": 600})
        assert status == 201, status


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    for run in range(1, args.runs + 1):
        with Broker() as broker:
            pg, db = fleet.fresh_pg_database()
            with Hub(broker, latency_ms=0, config={"store": {"backend": "postgresql",
                                                             "url": pg.url(db)}}) as hub:
                register(hub, f"A{run}-", args.devices)
                print(f"run{run}.one_hub_alone_events_per_s="
                      f"{ingest(broker, args.devices, args.seconds, f'A{run}-'):.0f}", flush=True)
        with Broker() as broker:
            pg, db = fleet.fresh_pg_database()
            with cluster_hub(broker, pg, db, "hub-a", latency_ms=0) as a:
                register(a, f"C{run}-", args.devices)
                print(f"run{run}.one_hub_cluster_events_per_s="
                      f"{ingest(broker, args.devices, args.seconds, f'C{run}-'):.0f}", flush=True)
        with Broker() as broker:
            pg, db = fleet.fresh_pg_database()
            with cluster_hub(broker, pg, db, "hub-a", latency_ms=0) as a, \
                    cluster_hub(broker, pg, db, "hub-b", latency_ms=0):
                wait_balanced(a, ["hub-a", "hub-b"])
                register(a, f"D{run}-", args.devices)
                print(f"run{run}.two_hubs_cluster_events_per_s="
                      f"{ingest(broker, args.devices, args.seconds, f'D{run}-'):.0f}", flush=True)


if __name__ == "__main__":
    main()
