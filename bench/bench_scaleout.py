"""bench/run scaleout: several hubs in cluster mode on one PostgreSQL and one
mosquitto (docs/operations.md, "Scale-out"): throughput against 1, 2 and 3
hubs, and what a hub's death or SIGTERM costs the devices of its partitions.

Each run starts one mosquitto; the PostgreSQL cluster is the bench process's
(tests/harness/pg.py, fsync on: this bench's --store defaults to postgresql);
each database gets deadlock_timeout = --scaleout-deadlock-timeout-ms (100 ms,
docs/operations.md's advice for cluster mode). --scaleout-lock-probe samples
pg_stat_activity during the loads (hubsN_{ingest,saga}_lock_wait_share and
_lock_chain_share).

Throughput, for each hub count N of --scaleout-hubs (a fresh database each):
N hubs (tests/harness/cluster.py's cluster_hub, [cluster] partitions =
--scaleout-partitions, the default lease and settle), waited for until every
partition is held and each hub holds its fair share and answers ready; then
the same-run raw broker rate (fleet-loadgen baseline), `fleet-loadgen ingest`
(--devices vehicles, partitioned topic family: each event goes to its
partition's owner only; fleet-loadgen assumes the default 256 partitions) and `fleet-loadgen saga` (--lanes kiosks, each renting
its own vehicle as fast as answers come), both against the whole cluster.
During each load the CPU of every component is read from /proc: the hubs
(summed), the broker, PostgreSQL (the postmaster and all its children) and
the load generator (this process's reaped children), as percent of one core
over the load's wall time, and per event or rental in CPU-milliseconds.

Failover, with 3 hubs (a fresh database): --scaleout-devices real device
agents (fleet-agent run, vehicles, on --scaleout-family: partitioned, each
event reaching its partition's owner, or legacy: every hub sees every message
and applies those of the partitions it holds) each get a telemetry reading every --scaleout-event-ms through their
control socket, so they always have sequenced events in flight. Then, in turn,
a hub is killed with SIGKILL; the clock runs from the kill until (a) every
partition it held is owned, live, by another hub (GET /v1/cluster/partitions
of a survivor, polled every 20 ms) and (b) every device of those partitions has
had an event acknowledged that was given its seq after the kill (the agent's
last_ack beyond its next_seq read just after the kill: only the new owner can
ack that). The killed hub is started again (same hub_id) and the cluster
waited for until balanced before the next kill. Then --scaleout-handovers times
a hub is sent SIGTERM, and the same two times are taken. At the end the
readings stop, every agent must have everything acked, and the database must
hold each device's seqs 1..next_seq-1 exactly once: failover_lost_events and
failover_duplicate_events (both must be 0).

Figures (per run, medians over --runs): hubsN_baseline_qos1_msgs_per_s,
hubsN_ingest_events_per_s, hubsN_ingest_vs_baseline_ratio,
hubsN_saga_completed_rentals_per_s (and its decision p50/p99), for each load
hubsN_{ingest,saga}_cpu_{hubs,broker,pg,loadgen,others}_percent ("others":
every other busy CPU second of the machine meanwhile, /proc/stat),
hubsN_ingest_cpu_ms_per_event_{hubs,broker,pg} and
hubsN_saga_cpu_ms_per_rental_{hubs,broker,pg} (a rental still under way at
the end counts as half), _pg_commits_per_s, _pg_wal_bytes_per_event /
_per_rental, _pg_errors and _pg_deadlocks (lines of the server's log), the
load average; failover_kills, failover_moved_p50_s / _max_s (partitions
owned again), failover_p50_s, failover_p99_s (devices acked again; with fewer
than 100 kills the nearest-rank p99 is the max), failover_after_moved_p50_s,
handover_s (partitions owned again after SIGTERM, median) and handover_max_s,
handover_exit_s, handover_acked_s, failover_events_sent,
failover_duplicate_events and, last, failover_lost_events. The JSON keeps
each kill's times (series.failover_acked_s ...)."""
import math
import os
import resource
import signal
import threading
import time
from pathlib import Path

import fleet
from bench import cpu_seconds, loadgen, progress, series
from bench_resync import agent_request  # the agent's control socket, one request
from cluster import cluster_hub, partition_of
from fleet import Agent, Broker, wait_for

FL_PARTITIONS_DEFAULT = 256  # common/include/fleet/partition.h; fleet-loadgen's partitioned topics



def add_options(p):
    p.set_defaults(store="postgresql", seconds=6)
    p.add_argument("--scaleout-hubs", default="1,2,3", help="scaleout: hub counts to load")
    p.add_argument("--scaleout-partitions", type=int, default=256,
                   help="scaleout: [cluster] partitions (the product's default)")
    p.add_argument("--scaleout-lease-ms", type=int, default=3000,
                   help="scaleout: [cluster] lease_ms (default: the product's)")
    p.add_argument("--scaleout-settle-ms", type=int, default=1000,
                   help="scaleout: [cluster] settle_ms (default: the product's)")
    p.add_argument("--scaleout-deadlock-timeout-ms", type=int, default=100,
                   help="scaleout: the database's deadlock_timeout (docs/operations.md: 100 ms; "
                        "0: the server's default, 1 s)")
    p.add_argument("--scaleout-baseline-count", type=int, default=30000,
                   help="scaleout: messages of the raw broker baseline")
    p.add_argument("--scaleout-devices", type=int, default=24,
                   help="scaleout: device agents of the failover phase")
    p.add_argument("--scaleout-event-ms", type=int, default=100,
                   help="scaleout: a telemetry reading per agent every this many ms")
    p.add_argument("--scaleout-family", choices=("partitioned", "legacy"), default="partitioned",
                   help="scaleout: the failover agents' [mqtt] topic_family")
    p.add_argument("--scaleout-kills", type=int, default=3, help="scaleout: SIGKILLs per run")
    p.add_argument("--scaleout-handovers", type=int, default=1,
                   help="scaleout: SIGTERMs per run")
    p.add_argument("--scaleout-lock-probe", action="store_true",
                   help="scaleout: sample PostgreSQL's lock waits during the loads")
    p.add_argument("--scaleout-no-failover", action="store_true",
                   help="scaleout: throughput only")
    p.add_argument("--scaleout-no-throughput", action="store_true",
                   help="scaleout: failover only")


# ---- CPU of the components, from /proc ------------------------------------

def children_of(ppid):
    """The pids whose parent is ppid."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == ppid:
            out.append(int(entry))
    return out


def postgres_pids(pg):
    """The postmaster of the bench's PostgreSQL cluster and its children."""
    master = int((pg.data / "postmaster.pid").read_text().split()[0])
    return [master] + children_of(master)


def cpu_of(pids):
    """{pid: CPU seconds} of the pids still alive."""
    out = {}
    for pid in pids:
        try:
            out[pid] = cpu_seconds(pid)
        except (OSError, IndexError):
            pass
    return out


def machine_busy_seconds():
    """CPU seconds all cores spent busy (not idle, not waiting for I/O), from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


def reaped_children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class CpuWindow:
    """CPU seconds of each component between start() and stop(): a process
    that appeared meanwhile counts from zero, one that ended is lost (none
    should: the hubs, broker and PostgreSQL backends live through a load)."""

    def __init__(self, hubs, broker, pg):
        self.pg, self.db = pg, hubs[0].pg_database
        self.groups = {"hubs": lambda: [h.proc.pid for h in hubs],
                       "broker": lambda: [broker.proc.pid],
                       "pg": lambda: postgres_pids(pg)}

    def pg_log_counts(self):
        """(errors, deadlocks) the server has logged so far."""
        text = self.pg.log()
        return text.count("ERROR:"), text.count("deadlock detected")

    def commits(self):
        """Transactions committed in the bench's database so far (the
        statistics collector's count: up to 0.5 s stale; the loads last longer)."""
        return int(self.pg.psql(self.db, "SELECT xact_commit FROM pg_stat_database "
                                         "WHERE datname = current_database()").strip())

    def wal_lsn(self):
        return self.pg.psql(self.db, "SELECT pg_current_wal_lsn()").strip()

    def start(self):
        self.w0 = self.wal_lsn()
        self.x0 = self.commits()
        self.t0 = time.monotonic()
        self.c0 = {g: cpu_of(f()) for g, f in self.groups.items()}
        self.r0 = reaped_children_cpu()
        self.m0 = machine_busy_seconds()
        self.e0 = self.pg_log_counts()

    def stop(self):
        wall = time.monotonic() - self.t0
        used = {}
        for g, f in self.groups.items():
            now = cpu_of(f())
            used[g] = sum(v - self.c0[g].get(pid, 0.0) for pid, v in now.items())
        used["loadgen"] = reaped_children_cpu() - self.r0
        # everything else on the machine meanwhile: other engineers' work, the kernel's
        used["others"] = max(0.0, machine_busy_seconds() - self.m0 - sum(used.values()))
        self.pg_log_delta = [b - a for a, b in zip(self.e0, self.pg_log_counts())]
        time.sleep(0.6)  # the backends report their counts at most every 0.5 s
        self.committed = self.commits() - self.x0
        self.wal_bytes = float(self.pg.psql(self.db, f"SELECT pg_wal_lsn_diff("
                                                     f"'{self.wal_lsn()}', '{self.w0}')").strip())
        return wall, used


class LockProbe(threading.Thread):
    """--scaleout-lock-probe: samples pg_stat_activity of the bench's database
    every 100 ms (psql, whose CPU then counts as the load generator's): in how
    many samples a backend waited for a lock, and in how many its blocker was
    itself waiting for a lock (a cycle between hubs' batches, or a chain)."""

    QUERY = ("SELECT count(*) FILTER (WHERE a.wait_event_type = 'Lock'), count(*) FILTER ("
             "WHERE a.wait_event_type = 'Lock' AND EXISTS (SELECT 1 FROM pg_stat_activity b "
             "WHERE b.pid = ANY(pg_blocking_pids(a.pid)) AND b.wait_event_type = 'Lock')) "
             "FROM pg_stat_activity a WHERE a.datname = current_database() "
             "AND a.pid <> pg_backend_pid()")

    def __init__(self, pg, db):
        super().__init__(daemon=True)
        self.pg, self.db, self.stopping = pg, db, False
        self.samples = self.waiting = self.chained = 0

    def run(self):
        while not self.stopping:
            t = time.monotonic()
            try:
                w, c = (int(x) for x in self.pg.psql(self.db, self.QUERY).strip().split("|"))
            except (RuntimeError, ValueError):
                continue
            self.samples += 1
            self.waiting += w > 0
            self.chained += c > 0
            time.sleep(max(0.0, 0.1 - (time.monotonic() - t)))


def probed(args, hubs, pg, figs, key, fn):
    """Runs fn() (a load) with a LockProbe if asked; returns its result."""
    if not args.scaleout_lock_probe:
        return fn()
    probe = LockProbe(pg, hubs[0].pg_database)
    probe.start()
    try:
        return fn()
    finally:
        probe.stopping = True
        probe.join()
        n = max(1, probe.samples)
        figs[f"{key}_lock_wait_share"] = probe.waiting / n
        figs[f"{key}_lock_chain_share"] = probe.chained / n


# ---- throughput -------------------------------------------------------------

def start_cluster(broker, n, args, config=None, **settings):
    """n hubs hub-1..hub-n on a fresh database, balanced and ready."""
    pg, db = fleet.fresh_pg_database()
    if args.scaleout_deadlock_timeout_ms:  # docs/operations.md's advice for cluster mode
        pg.psql(db, f"ALTER DATABASE {db} SET deadlock_timeout = "
                    f"'{args.scaleout_deadlock_timeout_ms}ms'")
    hubs = []
    try:
        for i in range(n):
            hubs.append(cluster_hub(broker, pg, db, f"hub-{i + 1}",
                                    partitions=args.scaleout_partitions,
                                    lease_ms=args.scaleout_lease_ms,
                                    settle_ms=args.scaleout_settle_ms, config=config, **settings))
        wait_settled(hubs, args)
    except BaseException:
        for h in hubs:
            h.close()
        raise
    return pg, hubs


def partitions_view(hubs):
    """GET /v1/cluster/partitions of the first running hub: [row]."""
    for h in hubs:
        if h.running():
            try:
                code, rows = h.api("GET", "/v1/cluster/partitions", timeout=2)
            except OSError:
                continue
            if code == 200 and isinstance(rows, list):
                return rows
    return []


def wait_settled(hubs, args, timeout=60):
    """Until every partition is owned by a live running hub, each holding its
    fair share, and every running hub answers /v1/health 200 (ready)."""
    running = [h for h in hubs if h.running()]
    ids = {h.hub_id for h in running}
    n, parts = len(running), args.scaleout_partitions

    def settled():
        rows = partitions_view(running)
        if len(rows) != parts or not all(r["owner"] in ids and r["owner_live"] for r in rows):
            return False
        held = {i: sum(r["owner"] == i for r in rows) for i in ids}
        if not all(v in (parts // n, -(-parts // n)) for v in held.values()):
            return False
        return all(h.api("GET", "/v1/health", timeout=2)[0] == 200 for h in running)
    wait_for(settled, timeout, f"partitions balanced over {sorted(ids)} and every hub ready")


def register(hub, prefix, n):
    for i in range(n):
        status, body = hub.api("POST", "/v1/vehicles", {"id": f"{prefix}{i}", "name": "bench",
                                                        "station": "s", "rate_cents": 600})
        assert status == 201, (status, body)


def measure_load(figs, key, window, out, count):
    wall, used = window.stop()
    for comp, sec in used.items():
        figs[f"{key}_cpu_{comp}_percent"] = 100 * sec / wall
    figs[f"{key}_pg_commits_per_s"] = window.committed / wall
    figs[f"{key}_pg_errors"], figs[f"{key}_pg_deadlocks"] = map(float, window.pg_log_delta)
    figs[f"{key}_loadavg"] = float(Path("/proc/loadavg").read_text().split()[0])
    unit = 'event' if key.endswith('ingest') else 'rental'
    if count:
        figs[f"{key}_pg_wal_bytes_per_{unit}"] = window.wal_bytes / count
    for comp in ("hubs", "broker", "pg"):
        if count:
            figs[f"{key}_cpu_ms_per_{'event' if key.endswith('ingest') else 'rental'}_{comp}"] = \
                1000 * used[comp] / count


def throughput(broker, n, args, figs):
    pg, hubs = start_cluster(broker, n, args, config={"engine": {"command_ttl_s": 60}},
                             latency_ms=0)
    k = f"hubs{n}"
    try:
        register(hubs[0], "B-T", args.devices)
        register(hubs[0], "max-V", args.lanes)
        wait_settled(hubs, args)
        base = loadgen("baseline", "--broker", broker.uri, "--count",
                       args.scaleout_baseline_count, "--window", 256, "--size", 200)
        figs[f"{k}_baseline_qos1_msgs_per_s"] = base["baseline_qos1_msgs_per_s"]
        window = CpuWindow(hubs, broker, pg)
        progress(f"scaleout: {n} hub(s): ingest, {args.devices} vehicles, {args.seconds:.0f} s")
        window.start()
        out = probed(args, hubs, pg, figs, f"{k}_ingest", lambda: loadgen(
            "ingest", "--broker", broker.uri, "--devices", args.devices, "--seconds",
            args.seconds, "--window", args.window, "--prefix", "B-", "--family",
            "partitioned"))
        measure_load(figs, f"{k}_ingest", window, out, out["ingest_events_acked"])
        figs[f"series.{k}_ingest_events_per_s"] = series(out, "series.events_per_s")
        figs[f"{k}_ingest_events_per_s"] = out["ingest_events_per_s"]
        figs[f"{k}_ingest_unacked"] = out["ingest_events_sent"] - out["ingest_events_acked"]
        figs[f"{k}_ingest_vs_baseline_ratio"] = (out["ingest_events_per_s"]
                                                 / figs[f"{k}_baseline_qos1_msgs_per_s"])
        progress(f"scaleout: {n} hub(s): saga, {args.lanes} kiosks, {args.seconds:.0f} s")
        window.start()
        out = probed(args, hubs, pg, figs, f"{k}_saga", lambda: loadgen(
            "saga", "--broker", broker.uri, "--lanes", args.lanes, "--seconds",
            args.seconds, "--rate", 0, "--window", 256, "--prefix", "max-",
            "--family", "partitioned"))
        # rentals done in the window: completed ones, and those still under way at
        # its end (rented, not returned) as half of one (their return is the other half)
        completed = out["saga_completed_rentals_per_s"] * out["saga_seconds"]
        rentals = (out["saga_requests"] + completed) / 2
        measure_load(figs, f"{k}_saga", window, out, rentals)
        figs[f"series.{k}_saga_completed_per_s"] = series(out, "series.completed_per_s")
        figs[f"{k}_saga_decision_p50_ms"] = out["saga_decision_p50_ms"]
        figs[f"{k}_saga_decision_p99_ms"] = out["saga_decision_p99_ms"]
        figs[f"{k}_saga_rejected"] = out["saga_rejected"] + out["saga_timeouts"]
        figs[f"{k}_saga_completed_rentals_per_s"] = out["saga_completed_rentals_per_s"]
    finally:
        stop_hubs(hubs)


def stop_hubs(hubs):
    """Stops (SIGTERM) and closes every hub, also those that already exited."""
    for h in hubs:
        try:
            h.stop(timeout=20)
        except RuntimeError:
            pass
        h.close()


# ---- failover -----------------------------------------------------------------

def status(agent):
    lines, final = agent_request(agent, "status")
    return dict(l.split(" ", 1) for l in lines if " " in l) if final == "ok" else {}


class Driver(threading.Thread):
    """Gives every agent a telemetry reading every period_ms."""

    def __init__(self, agents, period_ms):
        super().__init__(daemon=True)
        self.agents, self.period, self.stopping, self.errors = agents, period_ms / 1000, False, 0

    def run(self):
        odo, next_t = 0, time.monotonic()
        while not self.stopping:
            odo += 10
            for a in self.agents:
                try:
                    _, final = agent_request(a, "telemetry", odo, 80, "48.85", "2.35")
                    self.errors += final != "ok"
                except OSError:
                    self.errors += 1
            next_t += self.period
            time.sleep(max(0.0, next_t - time.monotonic()))


def nearest_rank(values, q):
    v = sorted(values)
    return v[max(0, math.ceil(q / 100 * len(v)) - 1)] if v else float("nan")


def take_over(hubs, victim, agents, args, how):
    """Stops victim (SIGKILL or SIGTERM) and times (partitions owned by
    others, every device of its partitions acked again), in seconds."""
    others = [h for h in hubs if h is not victim]
    rows = partitions_view(others)
    mine = {r["partition"] for r in rows if r["owner"] == victim.hub_id}
    devs = [a for a in agents if partition_of(a.id, args.scaleout_partitions) in mine]
    t0 = time.monotonic()
    if how == "kill":
        victim.proc.kill()
    else:
        victim.proc.send_signal(signal.SIGTERM)
    # Seqs given after this snapshot can only be acked by another hub. After a
    # SIGKILL at once; after a SIGTERM the hub still commits and acks what it
    # has received before it exits, so the snapshot waits for its exit.
    after, exited_at = None, None
    moved_at, acked_at = None, {}
    deadline = t0 + 60
    while time.monotonic() < deadline and (moved_at is None or len(acked_at) < len(devs)):
        now = time.monotonic()
        if exited_at is None and victim.proc.poll() is not None:
            exited_at = now - t0
        if after is None and (how == "kill" or exited_at is not None):
            after = {a.id: int(status(a)["next_seq"]) - 1 for a in devs}
        if moved_at is None:
            rows = partitions_view(others)
            if rows and all(r["owner"] and r["owner"] != victim.hub_id and r["owner_live"]
                            for r in rows if r["partition"] in mine):
                moved_at = now - t0
        for a in devs if after is not None else ():
            if a.id not in acked_at:
                try:
                    if int(status(a)["last_ack"]) > after[a.id]:
                        acked_at[a.id] = time.monotonic() - t0
                except (OSError, KeyError):
                    pass
        time.sleep(max(0.0, 0.02 - (time.monotonic() - now)))
    victim.proc.wait(timeout=30)
    fleet._running.discard(victim)
    if moved_at is None or len(acked_at) < len(devs):
        raise RuntimeError(f"{how} of {victim.hub_id}: partitions moved {moved_at}, "
                           f"{len(acked_at)} of {len(devs)} devices acked again within 60 s")
    return moved_at, max(acked_at.values()), len(mine), len(devs), exited_at or 0.0


def failover(broker, args, figs):
    pg, hubs = start_cluster(broker, 3, args)
    agents, driver = [], None
    try:
        progress(f"scaleout: failover: {args.scaleout_devices} device agents "
                 f"({args.scaleout_family} topics)")
        for i in range(args.scaleout_devices):
            agents.append(Agent(broker, f"F{i}", role="vehicle",
                                config={"agent": {"log_level": "warn"},
                                        "mqtt": {"topic_family": args.scaleout_family,
                                                 "partitions": args.scaleout_partitions}}))
        wait_for(lambda: all(status(a).get("synced") == "yes" for a in agents), 30,
                 "every agent synced")
        driver = Driver(agents, args.scaleout_event_ms)
        driver.start()
        time.sleep(2)
        moved, acked, kinds, exits = [], [], [], []
        for k in range(args.scaleout_kills + args.scaleout_handovers):
            how = "kill" if k < args.scaleout_kills else "term"
            victim = hubs[k % len(hubs)]
            progress(f"scaleout: {'SIGKILL' if how == 'kill' else 'SIGTERM'} {victim.hub_id} "
                     f"({k + 1} of {args.scaleout_kills + args.scaleout_handovers})")
            m, a, n_parts, n_devs, exited = take_over(hubs, victim, agents, args, how)
            exits.append(exited)
            progress(f"scaleout: {victim.hub_id}'s {n_parts} partitions owned again after "
                     f"{m:.2f} s, its {n_devs} devices acked again after {a:.2f} s")
            moved.append(m)
            acked.append(a)
            kinds.append(how)
            time.sleep(1)
            victim.start(timeout=30)
            wait_settled(hubs, args)
            time.sleep(1)
        driver.stopping = True
        driver.join()
        kill_moved = [m for m, h in zip(moved, kinds) if h == "kill"]
        kill_acked = [a for a, h in zip(acked, kinds) if h == "kill"]
        term_moved = [m for m, h in zip(moved, kinds) if h == "term"]
        term_acked = [a for a, h in zip(acked, kinds) if h == "term"]
        figs["series.failover_acked_s"] = list(enumerate(kill_acked))
        figs["series.failover_moved_s"] = list(enumerate(kill_moved))
        figs["series.handover_acked_s"] = list(enumerate(term_acked))
        figs["series.handover_moved_s"] = list(enumerate(term_moved))
        if kill_acked:
            figs["failover_kills"] = float(len(kill_acked))
            figs["failover_moved_p50_s"] = nearest_rank(kill_moved, 50)
            figs["failover_moved_max_s"] = max(kill_moved)
            figs["failover_p50_s"] = nearest_rank(kill_acked, 50)
            figs["failover_after_moved_p50_s"] = nearest_rank(
                [a - m for a, m in zip(kill_acked, kill_moved)], 50)
            figs["failover_p99_s"] = nearest_rank(kill_acked, 99)
        if term_acked:
            figs["handover_s"] = nearest_rank(term_moved, 50)
            figs["handover_acked_s"] = nearest_rank(term_acked, 50)
            figs["handover_max_s"] = max(term_moved)
            figs["handover_exit_s"] = nearest_rank(
                [e for e, h in zip(exits, kinds) if h == "term"], 50)
        progress("scaleout: failover: every event acked, and in the database once?")
        wait_for(lambda: all((lambda s: s and s["backlog"] == "0" and
                              int(s["last_ack"]) == int(s["next_seq"]) - 1)(status(a))
                             for a in agents), 90, "every agent's events acked")
        sent = {a.id: int(status(a)["next_seq"]) - 1 for a in agents}
        rows = hubs[0].sql("SELECT device, seq, count(*) FROM events WHERE device LIKE 'F%' "
                           "GROUP BY device, seq")
        held = {}
        for dev, seq, n in rows:
            held.setdefault(dev, {})[int(seq)] = int(n)
        lost = dup = beyond = 0
        for dev, n in sent.items():
            seqs = held.get(dev, {})
            lost += sum(1 for s in range(1, n + 1) if s not in seqs)
            dup += sum(c - 1 for c in seqs.values())
            beyond += sum(1 for s in seqs if s > n or s < 1)
        figs["failover_events_beyond_sent"] = float(beyond)
        figs["failover_events_sent"] = float(sum(sent.values()))
        figs["failover_driver_errors"] = float(driver.errors)
        figs["failover_duplicate_events"] = float(dup)
        figs["failover_lost_events"] = float(lost)
    finally:
        if driver:
            driver.stopping = True
        for a in agents:
            a.close()
        stop_hubs(hubs)


def run(args):
    figs = {}
    if args.scaleout_partitions != FL_PARTITIONS_DEFAULT and not args.scaleout_no_throughput:
        raise SystemExit("bench scaleout: fleet-loadgen's partitioned topics assume the default "
                         f"{FL_PARTITIONS_DEFAULT} partitions (use --scaleout-no-throughput)")
    with Broker() as broker:
        if not args.scaleout_no_throughput:
            for n in [int(x) for x in args.scaleout_hubs.split(",") if x]:
                throughput(broker, n, args, figs)
        if not args.scaleout_no_failover:
            failover(broker, args, figs)
    return figs
