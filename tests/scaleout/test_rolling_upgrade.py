"""Scale-out, a rolling upgrade: three hubs in cluster mode share one
PostgreSQL database, one broker and one payment provider; kiosks (fleet-agent,
partitioned topics) keep renting and returning while each hub in turn is
stopped (SIGTERM: it hands its partitions over at once) and started again, as
an upgrade does. Kiosks get no error other than an explicit retry-after:
every request is decided, no vehicle is in two open rentals, every saga step
settles, and the hubs' books equal the provider's.

ctest scaleout_rolling (labels scaleout, postgresql)."""
import re
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
import fleet  # noqa: E402
from fleet import Agent, Broker, per_test_timeout, wait_for  # noqa: F401,E402
from cluster import cluster_hub, devices_in, partitioned, wait_balanced  # noqa: E402
from fake_provider import FakeProvider  # noqa: E402

HUBS = ("hub-a", "hub-b", "hub-c")
KIOSKS = 4


class Kiosk(threading.Thread):
    """Rents its own vehicle and returns it, again and again, through
    fleet-agent ctl; keeps every answer it got."""

    def __init__(self, agent, vehicle):
        super().__init__(daemon=True)
        self.agent, self.vehicle = agent, vehicle
        self.stop = threading.Event()
        self.done, self.retry_after, self.errors = 0, 0, []

    def ask(self, *args):
        rc, out, err = self.agent.ctl(*args, "--wait", 20)
        line = out.strip().splitlines()[-1] if out.strip() else ""
        if rc != 0 or not re.match(r"rental \S+ \S+", line):
            self.errors.append(f"{args}: rc={rc} {out} {err}".strip())
            return None, None, line
        return line.split()[1], line.split()[2], line

    def run(self):
        while not self.stop.is_set():
            rental, state, line = self.ask("rent", self.vehicle, f"C-{self.agent.id}", 30)
            if state == "ACTIVE":
                _, state, line = self.ask("return", rental)
                if state == "COMPLETED":
                    self.done += 1
                elif state is not None:
                    self.errors.append(f"return {rental}: {line}")
            elif state is not None:
                if "retry_after=" in line:  # the one refusal allowed: come back in N s
                    self.retry_after += 1
                    time.sleep(0.5)
                else:
                    self.errors.append(f"rent {rental}: {line}")
            time.sleep(0.05)


def test_rolling_upgrade_under_load():
    pg, db = fleet.fresh_pg_database()
    pg.psql(db, f'ALTER DATABASE "{db}" SET deadlock_timeout = \'100ms\'')  # docs/operations.md
    settings = dict(provider="http", timeout_ms=3000, workers=4)
    hubs, kiosks, agents = {}, [], []
    with Broker() as broker, FakeProvider(latency=0.01) as provider:
        try:
            for name in HUBS:
                hubs[name] = cluster_hub(broker, pg, db, name, url=provider.url, **settings)
            a = hubs["hub-a"]
            held = wait_balanced(a, list(HUBS))
            # kiosks and vehicles spread over every hub's partitions
            ids = [devices_in(set(held[h]), 2, f"K{h[-1]}") for h in HUBS]
            kiosk_ids = [k for pair in ids for k in pair][:KIOSKS]
            for i, _ in enumerate(kiosk_ids):
                status, body = a.api("POST", "/v1/vehicles", {"id": f"RV{i}", "name": "up",
                                                             "station": "S1", "rate_cents": 600})
                assert status == 201, body
            for i, k in enumerate(kiosk_ids):
                agent = Agent(broker, k, role="kiosk", config=partitioned())
                agents.append(agent)
                kiosks.append(Kiosk(agent, f"RV{i}"))
            for k in kiosks:
                k.start()
            time.sleep(3)
            for name in HUBS:  # the upgrade: one hub at a time
                hub = hubs[name]
                t0 = time.monotonic()
                assert hub.stop(timeout=20) == 0, name
                others = [h for h in HUBS if h != name]
                wait_balanced(hubs[others[0]], others)
                handover = time.monotonic() - t0
                hub.start(timeout=60)  # ready: it holds its share again
                wait_balanced(hubs[others[0]], list(HUBS))
                print(f"{name}: handed over in {handover:.2f} s, back and balanced after "
                      f"{time.monotonic() - t0:.2f} s")
                time.sleep(2)
            time.sleep(2)
            for k in kiosks:
                k.stop.set()
            for k in kiosks:
                k.join(timeout=60)
            done = sum(k.done for k in kiosks)
            print(f"rentals completed during the upgrade: {done}, retry-after answers: "
                  f"{sum(k.retry_after for k in kiosks)}")
            errors = [e for k in kiosks for e in k.errors]
            assert not errors, "\n".join(errors[:10])
            assert done >= len(kiosks) * 3, done  # they kept renting throughout
            # every saga step settled, no vehicle held twice, books = provider
            wait_for(lambda: not a.sql("SELECT rental FROM saga_steps WHERE status IN "
                                       "('calling', 'retry')"), 60, "every saga step settled")
            assert not a.sql("SELECT vehicle FROM rentals WHERE state IN ('PAYMENT_PENDING', "
                             "'ACTIVE') GROUP BY vehicle HAVING count(*) > 1")
            charged = {}
            for e in provider.entries("charge"):
                if e["status"] == "succeeded":
                    charged[e["rental"]] = charged.get(e["rental"], 0) + e["amount_cents"]
            books = {r: c for r, c in a.sql("SELECT id, charged_cents FROM rentals") if c}
            assert books == charged, (books, charged)
            status, body = a.api("POST", "/v1/read-models/check")
            assert status == 200, body
        finally:
            for k in kiosks:
                k.stop.set()
            for agent in agents:
                agent.close()
            for h in hubs.values():
                h.close()
