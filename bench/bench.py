"""The benchmarks behind bench/run. Each one starts its own mosquitto (and
hub) on free loopback ports through tests/harness/fleet.py, measures the raw
broker QoS 1 rate in the same run as the baseline, and prints key=value lines:
each run's figures, then the medians over the runs, the headline last.
With --store postgresql (saga, ingest) the hub's store is a fresh database in
a PostgreSQL cluster the bench starts itself (tests/harness/pg.py, fsync on,
as a real server), like the tests."""
import argparse
import json
import os
import time
import platform
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "harness"))
import fleet  # noqa: E402
from fleet import BUILD, Broker, Hub  # noqa: E402

LOADGEN = str(BUILD / "bench" / "fleet-loadgen")


def loadgen(*args, timeout=300):
    """Runs fleet-loadgen; returns its key=value output as a dict of floats."""
    done = subprocess.run([LOADGEN, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"fleet-loadgen {args[0]} failed: {done.stderr}")
    out = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        out[key] = float(value)
    return out


def series(out, prefix):
    """The series a loadgen printed as prefix.N=value, as [(N, value)] by N."""
    pts = [(float(k[len(prefix) + 1:]), v) for k, v in out.items() if k.startswith(prefix + ".")]
    return sorted(pts)


def progress(msg):
    """A line on stderr while a bench runs (its figures go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def baseline(broker, count=100000):
    return loadgen("baseline", "--broker", broker.uri, "--count", count, "--window", 256,
                   "--size", 200)["baseline_qos1_msgs_per_s"]


def children_cpu_seconds():
    """User + system CPU seconds of this process's finished children (the
    load generator runs that have returned)."""
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cpu_seconds(pid):
    """User + system CPU seconds used so far by process pid."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_hub(broker, args, **settings):
    """Starts the hub under test on args.store: SQLite in its state dir, or a
    fresh database of this process's PostgreSQL cluster."""
    config = settings.pop("config", {})
    for item in getattr(args, "set", []):
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if not (section and name and value):
            sys.exit(f"bench/run: --set {item}: use SECTION.KEY=VALUE")
        config.setdefault(section, {})[name] = value
    if args.store == "postgresql":
        cluster, database = fleet.fresh_pg_database()
        config.setdefault("store", {}).update(backend="postgresql", url=cluster.url(database))
    else:
        config.setdefault("store", {}).update(backend="sqlite")
    if args.publish_connections:
        config.setdefault("mqtt", {})["publish_connections"] = args.publish_connections
    return Hub(broker, config=config, **settings)


def register(hub, prefix, n):
    for i in range(n):
        status, _ = hub.api("POST", "/v1/vehicles", {"id": f"{prefix}{i}", "name": "bench",
                                                     "station": "s", "rate_cents": 600})
        assert status == 201, status


def run_saga(args):
    figures = {}
    # sys_interval 1: the broker's $SYS counters every second, read by
    # fleet-loadgen --count-broker around the max run (saga_msgs_per_rental)
    with Broker(sys_interval=1) as broker:
        figures["baseline_qos1_msgs_per_s"] = baseline(broker)
        hub = bench_hub(broker, args, latency_ms=0, config={"engine": {"command_ttl_s": 60}})
        try:
            register(hub, "max-V", args.lanes)
            register(hub, "paced-V", args.lanes)
            cpu0, bcpu0, lcpu0 = (cpu_seconds(hub.proc.pid), cpu_seconds(broker.proc.pid),
                                  children_cpu_seconds())
            progress(f"saga: {args.lanes} kiosks as fast as the hub answers, {args.seconds:.0f} s")
            out = loadgen("saga", "--broker", broker.uri, "--lanes", args.lanes, "--seconds",
                          args.seconds, "--rate", 0, "--window", 256, "--prefix", "max-",
                          "--count-broker", "--family", args.family)
            if "saga_msgs_per_rental" in out:
                figures["saga_msgs_per_rental"] = out["saga_msgs_per_rental"]
            figures["series.completed_per_s"] = series(out, "series.completed_per_s")
            figures["series.decisions_le_ms"] = series(out, "series.decisions_le_ms")
            # CPU of each process over the run (percent of one core; the
            # drain and the $SYS wait of --count-broker included, ~5 s)
            wall = out["saga_seconds"]
            figures["saga_hub_cpu_percent"] = 100 * (cpu_seconds(hub.proc.pid) - cpu0) / wall
            figures["saga_broker_cpu_percent"] = 100 * (cpu_seconds(broker.proc.pid) - bcpu0) / wall
            figures["saga_loadgen_cpu_percent"] = 100 * (children_cpu_seconds() - lcpu0) / wall
            figures["saga_max_decision_p50_ms"] = out["saga_decision_p50_ms"]
            figures["saga_max_decision_p99_ms"] = out["saga_decision_p99_ms"]
            figures["saga_max_rejected"] = out["saga_rejected"] + out["saga_timeouts"]
            progress(f"saga: paced at {args.rate} requests/s, {args.seconds:.0f} s")
            paced = loadgen("saga", "--broker", broker.uri, "--lanes", args.lanes, "--seconds",
                            args.seconds, "--rate", args.rate, "--window", 256, "--prefix", "paced-",
                            "--family", args.family)
            figures["series.paced_decisions_le_ms"] = series(paced, "series.decisions_le_ms")
            figures[f"saga_at_{args.rate}_per_s_p50_ms"] = paced["saga_decision_p50_ms"]
            figures[f"saga_at_{args.rate}_per_s_p99_ms"] = paced["saga_decision_p99_ms"]
            figures[f"saga_at_{args.rate}_per_s_achieved"] = paced["saga_completed_rentals_per_s"]
            figures["saga_completed_rentals_per_s"] = out["saga_completed_rentals_per_s"]
            figures["saga_vs_baseline_msgs_ratio"] = (
                out["saga_completed_rentals_per_s"] / figures["baseline_qos1_msgs_per_s"])
        finally:
            hub.stop()
            hub.close()
    return figures


def run_ingest(args):
    figures = {}
    with Broker() as broker:
        figures["baseline_qos1_msgs_per_s"] = baseline(broker)
        hub = bench_hub(broker, args, latency_ms=0)
        try:
            register(hub, "B-T", args.devices)
            cpu0, bcpu0, lcpu0 = (cpu_seconds(hub.proc.pid), cpu_seconds(broker.proc.pid),
                                  children_cpu_seconds())
            progress(f"ingest: {args.devices} vehicles, {args.seconds:.0f} s")
            out = loadgen("ingest", "--broker", broker.uri, "--devices", args.devices,
                          "--seconds", args.seconds, "--window", args.window, "--prefix", "B-",
                          "--family", args.family)
            figures["series.events_per_s"] = series(out, "series.events_per_s")
            wall = out["ingest_seconds"]
            figures["ingest_hub_cpu_percent"] = 100 * (cpu_seconds(hub.proc.pid) - cpu0) / wall
            figures["ingest_broker_cpu_percent"] = 100 * (cpu_seconds(broker.proc.pid) - bcpu0) / wall
            figures["ingest_loadgen_cpu_percent"] = 100 * (children_cpu_seconds() - lcpu0) / wall
            figures["ingest_events_per_s"] = out["ingest_events_per_s"]
            figures["ingest_vs_baseline_ratio"] = out["ingest_events_per_s"] / figures["baseline_qos1_msgs_per_s"]
        finally:
            hub.stop()
            hub.close()
    return figures


def save(name, args, runs, medians):
    """Writes the run's figures as JSON: $FLEET_BENCH_RESULTS (a directory,
    default bench/results/) / NAME-STORE-UTCTIME.json; bench/plot.py draws
    them. Returns the path."""
    out_dir = Path(os.environ.get("FLEET_BENCH_RESULTS", Path(__file__).resolve().parent / "results"))
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = out_dir / f"{name}-{args.store}-{stamp}.json"
    doc = {"bench": name, "store": args.store, "utc": stamp,
           "machine": {"node": platform.node(), "cores": os.cpu_count(),
                       "kernel": platform.release()},
           "args": {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str))},
           "runs": runs, "median": medians}
    path.write_text(json.dumps(doc, indent=1))
    return path


def run_mqtt(args):
    with Broker() as broker:
        return {"baseline_qos1_msgs_per_s": baseline(broker)}


BENCHES = {"saga": run_saga, "ingest": run_ingest, "mqtt": run_mqtt}


def find_bench(name):
    """Returns the run(args) of a benchmark: built in above, or the run() of
    bench/bench_<name>.py (which may add its own options with add_options(p))."""
    if name in BENCHES:
        return BENCHES[name], None
    import importlib
    try:
        module = importlib.import_module(f"bench_{name}")
    except ImportError:
        sys.exit(f"bench/run: no benchmark {name} (built in: {', '.join(sorted(BENCHES))}; "
                 f"or bench/bench_<name>.py)")
    return module.run, getattr(module, "add_options", None)


def main():
    p = argparse.ArgumentParser(prog="bench/run")
    p.add_argument("name")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--lanes", type=int, default=200, help="saga: kiosks, one request in flight each")
    p.add_argument("--rate", type=int, default=1000, help="saga: paced rental requests per second")
    p.add_argument("--devices", type=int, default=200, help="ingest: vehicles")
    p.add_argument("--window", type=int, default=32, help="ingest: unacked events per vehicle")
    p.add_argument("--publish-connections", type=int, default=0,
                   help="saga, ingest: the hub's [mqtt] publish_connections (0: its default)")
    p.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite",
                   help="saga, ingest: the hub's store")
    p.add_argument("--family", choices=("partitioned", "legacy"), default="partitioned",
                   help="saga, ingest: the devices' topics (revision 1.2, or 1.1's legacy ones)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="saga, ingest: a hub setting (repeatable), e.g. mqtt.state_interval_ms=0")
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    run, add_options = find_bench(name)
    if add_options:
        add_options(p)
    args = p.parse_args()
    if args.store == "postgresql":
        os.environ["FLEET_PG_FSYNC"] = "on"  # the cluster the bench starts: durable commits
    print(f"machine={platform.node()} cores={os.cpu_count()} kernel={platform.release()} "
          f"store={args.store}")
    runs = []
    for i in range(args.runs):
        progress(f"{name}: run {i + 1} of {args.runs}")
        started = time.monotonic()
        figures = run(args)
        for k, v in figures.items():
            if not k.startswith("series."):
                print(f"run{i + 1}.{k}={v:.2f}")
        print(f"run{i + 1}.store={args.store}")
        sys.stdout.flush()
        progress(f"{name}: run {i + 1} done in {time.monotonic() - started:.0f} s")
        runs.append(figures)
    keys = [k for k in runs[0] if not k.startswith("series.")]
    keys += [k for r in runs[1:] for k in r if not k.startswith("series.") and k not in keys]
    medians = {k: statistics.median(r[k] for r in runs if k in r) for k in keys}
    print(f"median.store={args.store}")
    for k in keys:
        print(f"median.{k}={medians[k]:.2f}")
    path = save(name, args, runs, medians)
    progress(f"figures saved in {path} (plot them: python3 bench/plot.py {path})")


if __name__ == "__main__":
    main()
