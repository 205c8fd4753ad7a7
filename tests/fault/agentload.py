"""Helpers of the agent fault tests: devices that keep producing events
through `fleet-agent ctl` while the test breaks things, and the check that
the hub holds every accepted event exactly once, in per-device order.

Every attempt carries a token of its own (a fault's DTC, a rental's
customer), so that the hub's copy (hub.db `events`, CBOR payloads) can be
matched to the attempts by content:

- accepted: ctl returned 0, so the agent had committed the event to its
  outbox: it must reach the hub exactly once;
- uncertain: ctl failed (the agent was down, or killed while answering): the
  event may or may not have been committed, and may arrive at most once.

A failed attempt is never retried with the same token, so a token seen twice
at the hub is a duplicate delivery."""
import random
import sqlite3
import sys
import threading
from pathlib import Path

import cbor2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import wait_for  # noqa: E402


class Producer(threading.Thread):
    """Submits events to one agent until stop(), one `fleet-agent ctl` call at
    a time, pausing `pause` seconds between calls. kind is "fault" (a
    vehicle: a fault with DTC F<n>, and a telemetry reading after every
    `telemetry_every`th fault) or "rent" (a kiosk: a rental request for an
    unregistered vehicle by customer C<n>, which the hub rejects). Tokens are
    prefixed with the device id, so they are unique across devices."""

    def __init__(self, agent, kind, pause=0.0, telemetry_every=5):
        super().__init__(daemon=True)
        assert kind in ("fault", "rent")
        self.agent, self.kind, self.pause = agent, kind, pause
        self.telemetry_every = telemetry_every
        self.attempts = []     # tokens in the order they were tried
        self.accepted = []     # tokens the agent confirmed, in that order
        self.rentals = {}      # rent: token -> rental id the kiosk gave
        self.failures = 0
        self._stop_event = threading.Event()
        self._n = 0

    def _one(self):
        self._n += 1
        token = f"{self.agent.id}x{self._n}"
        if self.kind == "fault":
            args = ("fault", token, "warning", "crash test")
        else:
            args = ("rent", "NOCAR", token, 30)
        self.attempts.append(token)
        try:
            rc, out, _ = self.agent.ctl(*args, timeout=10)
        except Exception:  # the ctl client itself timed out: uncertain
            rc, out = -1, ""
        if rc == 0:
            self.accepted.append(token)
            if self.kind == "rent":
                self.rentals[token] = out.split()[1]  # "rental ID queued"
        else:
            self.failures += 1
        if self.kind == "fault" and self._n % self.telemetry_every == 0:
            self.agent.ctl("telemetry", 1000 * self._n, 50, 48.1, 11.5, timeout=10)

    def run(self):
        while not self._stop_event.is_set():
            self._one()
            if self.pause:
                self._stop_event.wait(self.pause)

    def stop(self):
        self._stop_event.set()
        self.join(timeout=30)
        assert not self.is_alive(), "producer did not stop"


def agent_status(agent):
    """`fleet-agent ctl status` as a dict, or None when the agent does not answer."""
    rc, out, _ = agent.ctl("status", timeout=10)
    if rc != 0:
        return None
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def wait_drained(agent, timeout):
    """Waits until the agent's outbox is empty and the hub acked its last seq."""
    def drained():
        st = agent_status(agent)
        return (st and st["backlog"] == "0" and st["telemetry_queued"] == "0"
                and int(st["last_ack"]) == int(st["next_seq"]) - 1 and st)
    return wait_for(drained, timeout, f"{agent.id}'s outbox to drain")


def hub_events(hub, device):
    """The hub's events of device as (seq, type, decoded message), in the
    order the hub appended them."""
    db = sqlite3.connect(hub.db_path, timeout=30)
    try:
        rows = db.execute("SELECT seq, type, payload FROM events WHERE device = ? ORDER BY id",
                          (device,)).fetchall()
    finally:
        db.close()
    return [(seq, kind, cbor2.loads(payload)) for seq, kind, payload in rows]


def token_of(kind, msg):
    """The token of a producer's event, None for other events."""
    if kind == "fault":
        return msg["body"]["dtcs"][0]
    if kind == "rental_request":
        return msg["body"]["customer"]
    return None


def check_exactly_once_in_order(hub, producer):
    """Asserts that the hub holds the producer's device's events as seqs
    1..N, each once, and that the producer's events among them are every
    accepted one exactly once plus at most its uncertain ones, in the order
    they were submitted. Returns the number of events checked."""
    device = producer.agent.id
    events = hub_events(hub, device)
    seqs = [seq for seq, _, _ in events]
    assert seqs == list(range(1, len(seqs) + 1)), (
        f"{device}: hub seqs are not 1..{len(seqs)} in order: "
        f"first differences {[(i + 1, s) for i, s in enumerate(seqs) if s != i + 1][:5]}")
    for seq, _, msg in events:
        assert msg["seq"] == seq and msg["dev"] == device, (device, seq, msg)
    tokens = [t for _, kind, msg in events if (t := token_of(kind, msg)) is not None]
    assert len(tokens) == len(set(tokens)), (
        f"{device}: duplicates at the hub: {sorted({t for t in tokens if tokens.count(t) > 1})[:5]}")
    missing = [t for t in producer.accepted if t not in set(tokens)]
    assert not missing, f"{device}: {len(missing)} accepted events lost, e.g. {missing[:5]}"
    order = {t: i for i, t in enumerate(producer.attempts)}
    unknown = [t for t in tokens if t not in order]
    assert not unknown, f"{device}: events nobody submitted: {unknown[:5]}"
    positions = [order[t] for t in tokens]
    assert positions == sorted(positions), f"{device}: events out of submission order"
    extra = len(tokens) - len(producer.accepted)
    assert extra <= producer.failures, (device, extra, producer.failures)
    return len(events)


def hub_device(hub, device):
    """(online, down_seq) of device in hub.db, (0, 0) when unknown."""
    db = sqlite3.connect(hub.db_path, timeout=30)
    try:
        row = db.execute("SELECT online, down_seq FROM devices WHERE id = ?", (device,)).fetchone()
    finally:
        db.close()
    return row or (0, 0)


def wait_decided(hub, kiosk, rentals, timeout, sample=20, seed=1):
    """Waits until the kiosk applied every downlink message the hub issued to
    it (at least one decision per rental), then checks that a seeded sample
    of the rentals, and the last one, show a decision (not QUEUED)."""
    rentals = list(rentals)

    def caught_up():
        st = agent_status(kiosk)
        down_seq = hub_device(hub, kiosk.id)[1]
        return st and down_seq >= len(rentals) and int(st["applied"]) >= down_seq
    wait_for(caught_up, timeout, f"{kiosk.id} to apply the decisions of {len(rentals)} rentals")
    for rental in random.Random(seed).sample(rentals, min(sample, len(rentals))) + rentals[-1:]:
        rc, out, err = kiosk.ctl("decision", rental, timeout=10)
        assert rc == 0 and " QUEUED" not in out, out + err
