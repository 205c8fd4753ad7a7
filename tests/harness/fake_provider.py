"""A fake payment provider for the hub's HTTP payment adapter, speaking the
protocol of docs/payments.md on a free 127.0.0.1 port, from a thread of the
test process (stdlib only).

    with FakeProvider() as provider, Hub(broker, provider="http", url=provider.url):
        ...
        provider.mode = "fail"          # every call answers 503 from now on
        assert provider.totals()["charged"] == 1800

Like a real provider it keeps a ledger keyed by the Idempotency-Key header:
the same key answers the same again and moves no money twice; a key whose
first call is still running answers 409. The knobs the tests turn while it
runs:

    mode     "ok" (default), "fail" (503 to every call, nothing recorded),
             "hang" (the answer never comes: the call is held until the
             hub's timeout has given up on it, then answered 503) or
             "garbage" (200 with a body that is not JSON, nothing recorded)
    latency  seconds every call waits before it is served
    settle_s seconds a new key stays "in progress" before it is decided
    declines a function of the charge's customer id that returns the decline
             reason, or None to take the money; default: customers whose id
             contains "nofunds" are declined (like a test card number)

`requests` lists every call received (path, headers, body, mode), whatever
was answered.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK = "127.0.0.1"


def decline_nofunds(customer):
    """The default decline rule: returns a reason for customers whose id
    contains "nofunds", else None."""
    return "card declined: insufficient funds" if "nofunds" in customer else None


class FakeProvider:
    """The fake provider; starts serving in the constructor."""

    def __init__(self, mode="ok", latency=0.0, declines=decline_nofunds, hang_s=30.0):
        self.mode = mode
        self.latency = latency
        self.declines = declines
        self.hang_s = hang_s              # how long "hang" holds a call at most
        self.settle_s = 0.0               # time a new key spends "in progress"
        self.requests = []                # every call: {"path", "headers", "body", "mode"}
        self.ledger = {}                  # idempotency key -> entry (see _settle)
        self._lock = threading.Lock()
        self._in_flight = set()           # keys whose first call is being served
        self._closing = threading.Event()
        self._next_id = 0
        self._server = ThreadingHTTPServer((LOOPBACK, 0), _handler_for(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="fake-provider", daemon=True)
        self._thread.start()

    # ---- what the tests read

    def entries(self, kind=None):
        """Returns the ledger's entries (of kind "charge" or "refund")."""
        with self._lock:
            return [dict(e) for e in self.ledger.values() if kind in (None, e["kind"])]

    def totals(self):
        """Returns money moved: {"charged", "refunded", "charges", "refunds",
        "declines"} (counts are of ledger entries, not of calls)."""
        with self._lock:
            ok = [e for e in self.ledger.values() if e["status"] == "succeeded"]
            return {
                "charged": sum(e["amount_cents"] for e in ok if e["kind"] == "charge"),
                "refunded": sum(e["amount_cents"] for e in ok if e["kind"] == "refund"),
                "charges": sum(1 for e in ok if e["kind"] == "charge"),
                "refunds": sum(1 for e in ok if e["kind"] == "refund"),
                "declines": sum(1 for e in self.ledger.values() if e["status"] == "declined"),
            }

    def calls(self, path=None):
        """Returns how many calls were received (on path, e.g. "/v1/charges")."""
        with self._lock:
            return sum(1 for r in self.requests if path in (None, r["path"]))

    # ---- serving

    def _settle(self, kind, key, body):
        """Decides a new key (lock held): returns (http status, answer) and
        records it in the ledger."""
        customer = str(body.get("customer", ""))
        amount = int(body.get("amount_cents", 0))
        entry = {"key": key, "kind": kind, "rental": body.get("rental"), "customer": customer,
                 "asked_cents": amount, "refund_of": body.get("refund_of")}
        reason = self.declines(customer) if kind == "charge" and self.declines else None
        if reason:
            entry.update(status="declined", reason=reason, amount_cents=0)
            answer = (402, {"status": "declined", "reason": reason})
        else:
            if kind == "refund":  # at most what the referenced charge took, once
                charge = self.ledger.get(entry["refund_of"] or "")
                taken = charge["amount_cents"] if charge else 0
                given = sum(e["amount_cents"] for e in self.ledger.values()
                            if e["kind"] == "refund" and e["refund_of"] == entry["refund_of"])
                amount = max(0, min(amount, taken - given))
            self._next_id += 1
            entry.update(status="succeeded", id=f"fake-{kind}-{self._next_id}",
                         amount_cents=amount)
            answer = (200, {"status": "succeeded", "id": entry["id"], "amount_cents": amount})
        self.ledger[key] = dict(entry, answer=answer)
        return answer

    def _serve(self, path, headers, raw):
        """Returns (status, answer dict) for one call."""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        with self._lock:
            mode, latency = self.mode, self.latency
            self.requests.append({"path": path, "headers": headers, "body": body, "mode": mode})
        kind = {"/v1/charges": "charge", "/v1/refunds": "refund"}.get(path)
        key = headers.get("idempotency-key", "")
        if kind is None:
            return 404, {"status": "error", "reason": f"no such endpoint {path}"}
        if not key or not isinstance(body, dict):
            return 400, {"status": "error", "reason": "Idempotency-Key and a JSON body needed"}
        if latency:
            time.sleep(latency)
        if mode == "hang":
            self._closing.wait(self.hang_s)
            return 503, {"status": "error", "reason": "provider hung (fake)"}
        if mode == "fail":
            return 503, {"status": "error", "reason": "provider unavailable (fake)"}
        if mode == "garbage":
            return 200, None
        with self._lock:
            if key in self.ledger:
                return self.ledger[key]["answer"]  # the same key answers the same
            if key in self._in_flight:
                return 409, {"status": "error", "reason": "a call with this key is in progress"}
            self._in_flight.add(key)
        try:
            time.sleep(self.settle_s)  # a repeat of the key meanwhile gets 409
            with self._lock:
                return self._settle(kind, key, body)
        finally:
            with self._lock:
                self._in_flight.discard(key)

    # ---- lifecycle

    def close(self):
        """Stops serving; calls held by "hang" are released."""
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _handler_for(provider):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the hub reuses its connections

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer = provider._serve(self.path, headers, raw)
            data = json.dumps(answer).encode() if answer is not None else b"<html>oops"
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.close_connection = True  # the hub gave up waiting (timeout)

        def log_message(self, *args):
            pass

    return Handler
