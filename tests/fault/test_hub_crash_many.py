"""The crash test of the hub: at least 1,000 rentals (rent, then return) from
real kiosk agents while the hub is killed with SIGKILL at random moments at
least 20 times and restarted. The simulated provider declines 5% of charges
and fails 5% of calls (retried). At the end:
- no acknowledged event lost: every event a kiosk accepted is in the hub's
  event log exactly once, its sequence contiguous (P-SEQ-3, P-SEQ-4);
- no double charge: the provider's ledger has at most one successful charge
  and one refund per rental, and its totals equal the hub's;
- no vehicle in two active rentals;
- every saga completed or compensated: nothing left half-way;
- the read models equal a rebuild from the change log."""
import random
import re
import sqlite3
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import Agent, Broker, Hub, wait_for  # noqa: E402

VEHICLES = 50
ROUNDS = 20             # 20 x 50 = 1,000 rentals
MIN_KILLS = 20
KIOSKS = 4


def decision(kiosk, rental):
    rc, out, _ = kiosk.ctl("decision", rental)
    m = re.match(r"\S+ \S+ (\S+)", out.strip().splitlines()[-1]) if rc == 0 and out.strip() else None
    return m.group(1) if m else None


def wait_decisions(kiosks, pending, final, timeout=120):
    """Waits until every (kiosk, rental) in pending has a state in final;
    returns {rental: state}."""
    states, deadline = {}, time.time() + timeout
    todo = list(pending)
    while todo and time.time() < deadline:
        still = []
        for k, r in todo:
            s = decision(kiosks[k], r)
            if s in final:
                states[r] = s
            else:
                still.append((k, r))
        todo = still
        if todo:
            time.sleep(0.2)
    assert not todo, f"{len(todo)} requests without a final decision, e.g. {todo[:3]}"
    return states


class Killer(threading.Thread):
    """Kills the hub with SIGKILL at random moments and starts it again."""

    def __init__(self, hub, seed):
        super().__init__(daemon=True)
        self.hub, self.rng, self.kills, self.stop_when_done = hub, random.Random(seed), 0, False
        self.error = None

    def run(self):
        try:
            while not (self.stop_when_done and self.kills >= MIN_KILLS):
                time.sleep(self.rng.uniform(0.8, 2.2))
                self.hub.kill()
                self.kills += 1
                time.sleep(self.rng.uniform(0.0, 0.3))
                self.hub.start(timeout=30)
        except Exception as e:  # reported by the test
            self.error = e


def test_thousand_rentals_twenty_kills():
    rng = random.Random(20261120)
    with Broker() as broker:
        hub = Hub(broker, latency_ms=15, decline_rate=0.05, failure_rate=0.05, max_attempts=8)
        try:
            for i in range(VEHICLES):
                assert hub.api("POST", "/v1/vehicles", {"id": f"V{i}", "name": f"car {i}",
                                                        "station": "s", "rate_cents": 600})[0] == 201
            kiosks = [Agent(broker, f"K{k}", role="kiosk") for k in range(KIOSKS)]
            killer = Killer(hub, seed=7)
            killer.start()
            outcomes = {}
            for rnd in range(ROUNDS):
                asked = []
                for v in range(VEHICLES):
                    k = rng.randrange(KIOSKS)
                    rc, out, err = kiosks[k].ctl("rent", f"V{v}", f"C{rnd}-{v}", 60)
                    assert rc == 0, out + err
                    asked.append((k, re.match(r"rental (\S+) queued", out).group(1)))
                states = wait_decisions(kiosks, asked, {"ACTIVE", "REJECTED"})
                outcomes.update(states)
                returns = []
                for k, r in asked:
                    if states[r] == "ACTIVE":
                        k2 = rng.randrange(KIOSKS)   # returned at any kiosk
                        assert kiosks[k2].ctl("return", r)[0] == 0
                        returns.append((k2, r))
                outcomes.update(wait_decisions(kiosks, returns, {"COMPLETED"}))
            killer.stop_when_done = True
            killer.join(timeout=120)
            assert killer.error is None, killer.error
            assert killer.kills >= MIN_KILLS

            # quiescence: every kiosk acked up to its last event
            def drained():
                for kiosk in kiosks:
                    st = dict(l.split(" ", 1) for l in kiosk.ctl("status")[1].splitlines() if " " in l)
                    if st.get("backlog") != "0":
                        return False
                return True
            wait_for(drained, 60, "every kiosk's outbox drained")
            last_seq = {}
            for k, kiosk in enumerate(kiosks):
                st = dict(l.split(" ", 1) for l in kiosk.ctl("status")[1].splitlines() if " " in l)
                last_seq[f"K{k}"] = int(st["next_seq"]) - 1
            for kiosk in kiosks:
                kiosk.close()

            db = sqlite3.connect(hub.db_path, timeout=10)
            assert len(outcomes) >= VEHICLES * ROUNDS
            # no acknowledged event lost, none applied twice, order kept
            for dev, last in last_seq.items():
                seqs = [s for (s,) in db.execute(
                    "SELECT seq FROM events WHERE device = ? ORDER BY id", (dev,))]
                assert seqs == list(range(1, last + 1)), f"{dev}: events not 1..{last} in order"
            # every saga completed or compensated
            rentals = dict(db.execute("SELECT id, state FROM rentals"))
            assert len(rentals) == VEHICLES * ROUNDS
            assert set(rentals.values()) <= {"COMPLETED", "REJECTED"}, set(rentals.values())
            assert db.execute("SELECT COUNT(*) FROM saga_steps WHERE status IN "
                              "('calling', 'retry')").fetchone()[0] == 0
            assert db.execute("SELECT COUNT(*) FROM rentals WHERE state = 'ACTIVE'").fetchone()[0] == 0
            # no double charge: the provider's ledger against the hub's
            ledger = sqlite3.connect(hub.db_path.parent / "payments-sim.db", timeout=10)
            per_rental = ledger.execute(
                "SELECT rental, kind, COUNT(*) FROM ledger WHERE outcome = 'ok' "
                "GROUP BY rental, kind HAVING COUNT(*) > 1").fetchall()
            assert per_rental == [], "a rental was charged or refunded twice"
            charged = ledger.execute("SELECT COALESCE(SUM(amount_cents), 0) FROM ledger "
                                     "WHERE kind = 'charge' AND outcome = 'ok'").fetchone()[0]
            refunded = ledger.execute("SELECT COALESCE(SUM(amount_cents), 0) FROM ledger "
                                      "WHERE kind = 'refund' AND outcome = 'ok'").fetchone()[0]
            hub_charged, hub_refunded = db.execute(
                "SELECT SUM(charged_cents), SUM(refunded_cents) FROM rentals").fetchone()
            assert (charged, refunded) == (hub_charged, hub_refunded)
            for r, state in rentals.items():
                if state == "COMPLETED":
                    assert outcomes.get(r) == "COMPLETED"
            # read models equal a rebuild from the change log
            status, body = hub.api("POST", "/v1/read-models/check")
            assert status == 200, body
            print(f"{len(rentals)} rentals, {killer.kills} kills, "
                  f"{sum(s == 'COMPLETED' for s in rentals.values())} completed")
        finally:
            hub.close()
