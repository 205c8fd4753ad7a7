#!/usr/bin/python3
"""Independent check of the fleet/v1 test vectors, written from docs/protocol.md
without the C codec: Debian's cbor2 decodes the values, and a small strict
scanner written here checks what cbor2 lets through (duplicate keys,
indefinite lengths, depth, tags, trailing bytes).

Usage: /usr/bin/python3 tests/unit/test_vectors_cbor2.py [schemas/vectors]
Prints failures and a final "N passed, M failed"; exits non-zero on failure.
Comments name the rule of docs/protocol.md a check enforces (P-...).
"""
import json
import math
import os
import struct
import sys

import cbor2

HERE = os.path.dirname(os.path.abspath(__file__))
VEC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "schemas", "vectors")

MAX_BYTES, MAX_DEPTH = 8192, 4
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


class Bad(Exception):
    def __init__(self, token, why):
        super().__init__("%s: %s" % (token, why))
        self.token = token


# ------------------------------------------------------- strict scanner
class Map:
    """A decoded map as ordered pairs (keys are unique once scanned)."""
    def __init__(self, pairs):
        self.pairs = pairs
        self.d = dict(pairs)


def scan(b):
    """Parses one CBOR item under the rules P-DEC-1..P-DEC-9 and returns it
    (maps as Map, floats as float, text as str). Raises Bad(token)."""
    if len(b) > MAX_BYTES:
        raise Bad("too_large", "%d bytes" % len(b))          # P-DEC-1
    pos = 0

    def need(n):
        if pos + n > len(b):
            raise Bad("malformed", "truncated")                # P-DEC-2

    def item(depth):
        nonlocal pos
        need(1)
        ib = b[pos]
        pos += 1
        major, ai = ib >> 5, ib & 31
        if ai == 31:
            if major in (2, 3, 4, 5):
                raise Bad("indefinite", "indefinite length")   # P-DEC-4
            if major == 7:
                raise Bad("malformed", "stray break")
            raise Bad("malformed", "indefinite integer/tag")
        if ai >= 28:
            raise Bad("malformed", "reserved additional information")
        if ai < 24:
            arg = ai
        else:
            n = 1 << (ai - 24)
            need(n)
            raw = b[pos:pos + n]
            pos += n
            arg = int.from_bytes(raw, "big")
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major in (2, 3):
            need(arg)
            data = b[pos:pos + arg]
            pos += arg
            if major == 2:
                return bytes(data)
            try:
                s = data.decode("utf-8")                     # P-DEC-9
            except UnicodeDecodeError:
                raise Bad("bad_value", "text not UTF-8")
            if "\0" in s:
                raise Bad("bad_value", "NUL in text")
            return s
        if major in (4, 5):
            if depth + 1 > MAX_DEPTH:
                raise Bad("too_deep", "depth %d" % (depth + 1))  # P-DEC-5
            if arg > len(b):
                need(arg)  # cannot hold that many items
            if major == 4:
                return [item(depth + 1) for _ in range(arg)]
            pairs, seen = [], set()
            for _ in range(arg):
                k = item(depth + 1)
                if not isinstance(k, str):
                    raise Bad("wrong_type", "map key %r" % (k,))  # P-DEC-7
                if k in seen:
                    raise Bad("dup_key", k)                   # P-DEC-6
                seen.add(k)
                pairs.append((k, item(depth + 1)))
            return Map(pairs)
        if major == 6:
            raise Bad("wrong_type", "tag %d" % arg)             # P-DEC-7
        # major 7
        if ai == 20:
            return False
        if ai == 21:
            return True
        if ai in (22, 23):
            return None
        if ai == 24:
            if arg < 32:
                raise Bad("malformed", "two-byte simple value < 32")
            raise Bad("wrong_type", "simple value")
        if ai == 25:
            return struct.unpack(">e", raw)[0]
        if ai == 26:
            return struct.unpack(">f", raw)[0]
        if ai == 27:
            return struct.unpack(">d", raw)[0]
        raise Bad("wrong_type", "simple value %d" % ai)

    v = item(0)
    if pos != len(b):
        raise Bad("trailing", "%d bytes after the item" % (len(b) - pos))  # P-DEC-3
    return v


# ------------------------------------------------- the contract, in Python
U32, U64 = 2 ** 32 - 1, 2 ** 64 - 1
VEHICLE_STATES = {"AVAILABLE", "RESERVED", "RENTED", "REPAIR_REQUESTED", "IN_REPAIR", "RETIRED"}
RENTAL_STATES = {"REQUESTED", "PAYMENT_PENDING", "ACTIVE", "RETURNED", "COMPLETED", "REJECTED",
                 "CANCEL_REQUESTED", "CANCELLED"}
REPAIR_STATES = {"REQUESTED", "IN_PROGRESS", "COMPLETED"}
BOOKING_STATES = {"PAYMENT_PENDING", "HELD", "USED", "CANCELLED", "REJECTED", "EXPIRED"}
NOTIFY_KINDS = {"vehicle", "rental", "repair", "booking", "alert", "payment"}


def ID(n=64, names=None, empty=False):
    return ("id", n, names, empty)


def TEXT(n=128):
    return ("text", n)


def UINT(lo=0, hi=U64):
    return ("uint", lo, hi)


INT = ("int",)
BOOL = ("bool",)


def NUM(lo, hi):
    return ("num", lo, hi)


def ENUM(*names):
    return ("enum", set(names))


BOOKING = {"booking": (ID(), 1), "customer": (ID(), 1), "start_ms": (INT, 1),
           "end_ms": (INT, 1)}
# revision 1.1: the entries of an answer
ANSWER_VEHICLE = {"vehicle": (ID(), 1), "name": (TEXT(), 0), "station": (ID(), 0),
                  "rate_cents": (INT, 0), "energy_pct": (UINT(0, 100), 0)}
ANSWER_RENTAL = {"rental": (ID(), 1), "vehicle": (ID(), 1), "state": (ID(23, RENTAL_STATES), 1),
                 "due_ms": (INT, 0), "charged_cents": (INT, 0), "fee_cents": (INT, 0),
                 "running_fee_cents": (INT, 0)}
ANSWER_BOOKING = {"booking": (ID(), 1), "vehicle": (ID(), 1),
                  "state": (ID(23, BOOKING_STATES), 1), "start_ms": (INT, 1),
                  "end_ms": (INT, 1), "deposit_cents": (INT, 0)}
# revision 1.2: one change of a "notices" message (P-NOT-2)
NOTICE = {"id": (ID(), 1), "from": (ID(23, empty=True), 1), "to": (ID(23), 1),
          "text": (TEXT(), 0), "customer": (ID(), 0)}
CUSTOMER_ONLY = ("rentals", "bookings", "charged_cents", "refunded_cents", "fees_paid_cents",
                 "fees_owed_cents")

# type: ({key: (kind, required)}, corr required)      P-MSG-1, P-MSG-2, P-ENV-4
SPEC = {
    "rental_request": ({"vehicle": (ID(), 1), "customer": (ID(), 1),
                        "minutes": (UINT(1, 43200), 1)}, True),
    "rental_cancel": ({"reason": (TEXT(), 0)}, True),
    "rental_return": ({"station": (ID(), 0), "odometer_m": (UINT(), 0)}, True),
    "booking_request": ({"vehicle": (ID(), 1), "customer": (ID(), 1), "start_ms": (INT, 1),
                         "end_ms": (INT, 1)}, True),
    "booking_cancel": ({"reason": (TEXT(), 0)}, True),
    "fault": ({"dtcs": (("array", 1, 16, TEXT(16)), 1),
               "severity": (ENUM("info", "warning", "critical"), 1),
               "text": (TEXT(), 0)}, False),
    "lock": ({"locked": (BOOL, 1), "customer": (ID(), 0), "offline": (BOOL, 0),
              "reason": (TEXT(), 0), "refused": (BOOL, 0)}, False),
    "telemetry": ({"odometer_m": (UINT(), 1), "energy_pct": (UINT(0, 100), 1),
                   "lat": (NUM(-90, 90), 1), "lon": (NUM(-180, 180), 1),
                   "speed_kmh": (UINT(0, U32), 0)}, False),
    "command_result": ({"cmd_seq": (UINT(), 1),
                        "status": (ENUM("applied", "expired", "refused"), 1),
                        "reason": (TEXT(), 0)}, False),
    "hello": ({"role": (ENUM("vehicle", "kiosk"), 1), "last_seq": (UINT(), 1),
               "last_ack": (UINT(), 1), "applied": (UINT(), 1), "sw": (ID(), 0)}, False),
    "offline": ({"reason": (TEXT(), 0)}, False),
    "device_ack": ({"upto": (UINT(), 1)}, False),
    "ack": ({"upto": (UINT(), 1)}, False),
    "sync": ({"acked": (UINT(), 1), "next_seq": (UINT(), 1), "down_seq": (UINT(), 1)}, False),
    "decision": ({"subject": (ENUM("rental", "booking"), 1), "state": (ID(23), 1),
                  "ok": (BOOL, 1), "reason": (TEXT(), 0), "retry_after_s": (UINT(0, U32), 0),
                  "charged_cents": (INT, 0), "refunded_cents": (INT, 0), "fee_cents": (INT, 0),
                  "due_ms": (INT, 0), "upto": (UINT(), 0)}, True),
    "command": ({"action": (ENUM("unlock", "lock", "bookings"), 1), "expires_ms": (INT, 1),
                 "customer": (ID(), 0),
                 "bookings": (("array", 0, 32, ("map", BOOKING)), 0)}, False),
    "hub_status": ({"online": (BOOL, 1)}, False),
    "vehicle_state": ({"vehicle": (ID(), 1), "name": (TEXT(), 0), "station": (ID(), 0),
                       "rate_cents": (INT, 0), "state": (ID(23, VEHICLE_STATES), 1),
                       "rental": (ID(), 0), "energy_pct": (UINT(0, 100), 0),
                       "lat": (NUM(-90, 90), 0), "lon": (NUM(-180, 180), 0),
                       "online": (BOOL, 0)}, False),
    "rental_state": ({"rental": (ID(), 1), "vehicle": (ID(), 1), "customer": (ID(), 1),
                      "state": (ID(23, RENTAL_STATES), 1), "reason": (TEXT(), 0),
                      "charged_cents": (INT, 0), "refunded_cents": (INT, 0),
                      "fee_cents": (INT, 0), "due_ms": (INT, 0)}, False),
    "repair_state": ({"repair": (ID(), 1), "vehicle": (ID(), 1),
                      "state": (ID(23, REPAIR_STATES), 1), "text": (TEXT(), 0)}, False),
    "notify": ({"kind": (ID(15, NOTIFY_KINDS), 1),
                "id": (ID(), 1), "from": (ID(23), 0), "to": (ID(23), 1),
                "text": (TEXT(), 0), "customer": (ID(), 0)}, False),
    "query": ({"what": (ENUM("available", "customer"), 1), "station": (ID(), 0),
               "start_ms": (INT, 0), "end_ms": (INT, 0), "customer": (ID(), 0)}, True),
    "answer": ({"what": (ENUM("available", "customer"), 1), "ok": (BOOL, 1),
                "reason": (TEXT(), 0),
                "vehicles": (("array", 0, 32, ("map", ANSWER_VEHICLE)), 0),
                "rentals": (("array", 0, 16, ("map", ANSWER_RENTAL)), 0),
                "bookings": (("array", 0, 16, ("map", ANSWER_BOOKING)), 0),
                "charged_cents": (INT, 0), "refunded_cents": (INT, 0),
                "fees_paid_cents": (INT, 0), "fees_owed_cents": (INT, 0),
                "more": (BOOL, 0)}, True),
    "booking_state": ({"booking": (ID(), 1), "vehicle": (ID(), 1), "customer": (ID(), 1),
                       "state": (ID(23, BOOKING_STATES), 1), "start_ms": (INT, 1),
                       "end_ms": (INT, 1), "charged_cents": (INT, 0),
                       "refunded_cents": (INT, 0), "reason": (TEXT(), 0)}, False),
    "station_state": ({"station": (ID(), 1), "available": (UINT(0, U32), 1),
                       "rented": (UINT(0, U32), 1), "in_repair": (UINT(0, U32), 1),
                       "booked": (UINT(0, U32), 1)}, False),
    # revision 1.2
    "partition_status": ({"partition": (UINT(0, 4095), 1), "epoch": (UINT(), 1),
                          "hub": (TEXT(64), 1), "online": (BOOL, 1)}, False),
    "notices": ({"kind": (ID(15, NOTIFY_KINDS), 1),
                 "changes": (("array", 1, 16, ("map", NOTICE)), 1)}, False),
}
ENVELOPE = {"v": (("version",), 1), "type": (("type",), 1), "mid": (ID(), 1),
            "dev": (ID(), 1), "boot": (UINT(), 1), "seq": (UINT(), 1), "time": (INT, 1),
            "corr": (ID(), 0), "body": (("body",), 1)}
ID_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def value(kind, v, name):
    """Checks one value against its kind (P-DEC-7 types, P-MSG-2 ranges)."""
    k = kind[0]
    if k in ("id", "text", "enum", "type"):
        if not isinstance(v, str):
            raise Bad("wrong_type", name)
        n = len(v.encode("utf-8"))
        if k == "id":                                          # P-ENV-3
            if n == 0 and kind[3]:
                return v                                       # P-NOT-2: from may be ""
            if not (1 <= n <= kind[1]) or not set(v) <= ID_CHARS:
                raise Bad("bad_value", name + " not an id")
            if kind[2] and v not in kind[2]:
                raise Bad("bad_value", name + " unknown name")
        elif k == "text" and n > kind[1]:
            raise Bad("bad_value", name + " too long")
        elif k == "enum" and v not in kind[1]:
            raise Bad("bad_value", name + " unknown name")
        elif k == "type" and v not in SPEC:
            raise Bad("unknown_type", v)                       # P-DEC-8
    elif k in ("uint", "version"):
        if not is_int(v):
            raise Bad("wrong_type", name)
        if v < 0:
            raise Bad("wrong_type", name + " negative")
        if k == "version" and v != 1:
            raise Bad("version", str(v))                       # P-VER-2
        if k == "uint" and not (kind[1] <= v <= kind[2]):
            raise Bad("bad_value", name + " out of range")
    elif k == "int":
        if not is_int(v):
            raise Bad("wrong_type", name)
        if not (-2 ** 63 <= v < 2 ** 63):
            raise Bad("bad_value", name + " not int64")
    elif k == "bool":
        if not isinstance(v, bool):
            raise Bad("wrong_type", name)
    elif k == "num":
        if not (is_int(v) or isinstance(v, float)):
            raise Bad("wrong_type", name)
        if math.isnan(v) or not (kind[1] <= v <= kind[2]):
            raise Bad("bad_value", name + " out of range")
    elif k == "array":
        if not isinstance(v, list):
            raise Bad("wrong_type", name)
        if not (kind[1] <= len(v) <= kind[2]):
            raise Bad("bad_value", name + " count")
        for i, x in enumerate(v):
            value(kind[3], x, "%s[%d]" % (name, i))
    elif k == "map":
        record(kind[1], v, name)
        if "start_ms" in kind[1] and v.d["end_ms"] <= v.d["start_ms"]:
            raise Bad("bad_value", name + " end_ms")
    return v


def record(fields, m, name):
    if not isinstance(m, Map):
        raise Bad("wrong_type", name + " not a map")
    for key, x in m.pairs:
        if key in fields and fields[key][0][0] != "body":
            value(fields[key][0], x, name + "." + key)
    for key, (kind, req) in fields.items():
        if req and key not in m.d:
            raise Bad("missing", name + "." + key)             # P-ENV-1, P-MSG-1


def validate(b):
    """Returns "ok" or the error token for the message bytes b."""
    try:
        m = scan(b)
        if not isinstance(m, Map):
            raise Bad("wrong_type", "top is not a map")
        record(ENVELOPE, m, "")
        fields, corr_required = SPEC[m.d["type"]]
        if corr_required and "corr" not in m.d:
            raise Bad("missing", "corr")                        # P-ENV-4
        record(fields, m.d["body"], "body")
        body = m.d["body"].d
        if m.d["type"] in ("booking_request", "booking_state") and \
                body["end_ms"] <= body["start_ms"]:
            raise Bad("bad_value", "end_ms")
        if m.d["type"] == "query":                              # P-MSG-4
            if body["what"] == "customer":
                if "customer" not in body:
                    raise Bad("missing", "customer")
                if any(k in body for k in ("station", "start_ms", "end_ms")):
                    raise Bad("bad_value", "only for available")
            elif "customer" in body:
                raise Bad("bad_value", "customer only for customer")
            if ("start_ms" in body) != ("end_ms" in body):
                raise Bad("missing", "start_ms and end_ms go together")
            if "start_ms" in body and body["end_ms"] <= body["start_ms"]:
                raise Bad("bad_value", "end_ms")
        if m.d["type"] == "answer":                             # P-MSG-5
            if body["what"] == "customer" and "vehicles" in body:
                raise Bad("bad_value", "vehicles only for available")
            if body["what"] == "available" and any(k in body for k in CUSTOMER_ONLY):
                raise Bad("bad_value", "only for customer")
        if m.d["type"] == "command" and body["action"] == "bookings" and "bookings" not in body:
            raise Bad("missing", "bookings")                    # P-MSG-3
        return "ok"
    except Bad as e:
        return e.token


def read_hex(path):
    with open(path) as f:
        return bytes.fromhex("".join(f.read().split()))


def same(a, b):
    """Deep equality that also compares types (True != 1, 1 != 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def known_only(msg):
    """The message without unknown keys, for comparing non-canonical vectors."""
    fields = SPEC[msg["type"]][0]
    out = {k: v for k, v in msg.items() if k in ENVELOPE}
    out["body"] = {k: v for k, v in msg["body"].items() if k in fields}
    return out


def main():
    valid = sorted(f for f in os.listdir(VEC) if f.endswith(".hex"))
    types = set()
    for f in valid:
        b = read_hex(os.path.join(VEC, f))
        with open(os.path.join(VEC, f[:-4] + ".diag")) as d:
            expect = json.loads(d.read())  # canonical vectors use the JSON subset of diag
        got = cbor2.loads(b)
        check(same(got, expect), "%s: cbor2 value differs from %s.diag" % (f, f[:-4]))
        check(cbor2.dumps(got) == b, "%s: not in canonical form" % f)  # P-ENC-1
        check(list(got)[:7] == ["v", "type", "mid", "dev", "boot", "seq", "time"],
              "%s: envelope key order" % f)
        r = validate(b)
        check(r == "ok", "%s: rejected (%s)" % (f, r))  # P-ENV-1..4, P-MSG-1..3
        types.add(got.get("type"))
    check(types == set(SPEC), "a valid vector for every type (missing %s)" % (set(SPEC) - types))

    # P-DEC-11, P-VER-1: any key order / widths, unknown keys ignored
    nc = os.path.join(VEC, "noncanonical")
    for line in open(os.path.join(nc, "expected.txt")):
        if line.startswith("#") or not line.strip():
            continue
        f, canon = line.split()[:2]
        b = read_hex(os.path.join(nc, f))
        check(validate(b) == "ok", "noncanonical/%s: rejected (%s)" % (f, validate(b)))
        got = known_only(cbor2.loads(b))
        want = cbor2.loads(read_hex(os.path.join(VEC, canon)))
        check(same(got, want), "noncanonical/%s: differs from %s" % (f, canon))

    bad = os.path.join(VEC, "bad")
    n_bad = 0
    for line in open(os.path.join(bad, "expected.txt")):
        if line.startswith("#") or not line.strip():
            continue
        f, token = line.split()[:2]
        b = read_hex(os.path.join(bad, f))
        try:
            cbor2.loads(b)
            cbor2_ok = True
        except Exception:  # noqa: BLE001 - any cbor2 failure counts as "bad"
            cbor2_ok = False
        r = validate(b)
        check(r != "ok" or not cbor2_ok, "bad/%s: accepted by cbor2 and the rules" % f)
        check(r == token, "bad/%s: rules say %s, expected.txt says %s" % (f, r, token))
        n_bad += 1
    check(n_bad >= 11, "bad vectors listed")
    listed = {l.split()[0] for l in open(os.path.join(bad, "expected.txt"))
              if l.strip() and not l.startswith("#")}
    on_disk = {f for f in os.listdir(bad) if f.endswith(".hex")}
    check(listed == on_disk, "bad/expected.txt lists every bad vector: %s" % (listed ^ on_disk))

    # every rule id cited in bad/expected.txt exists in docs/protocol.md
    doc = os.path.join(VEC, "..", "..", "docs", "protocol.md")
    if os.path.exists(doc):
        text = open(doc, encoding="utf-8").read()
        for line in open(os.path.join(bad, "expected.txt")):
            if line.strip() and not line.startswith("#"):
                rule = line.split()[2]
                check("**%s**" % rule in text, "rule %s of %s is in docs/protocol.md" %
                      (rule, line.split()[0]))

    # P-DEC-1: the oversize case is built here, not stored (see bad/README.md)
    ack = read_hex(os.path.join(VEC, "ack.hex"))

    def padded(total):
        """ack.hex plus an unknown key "pad" holding bytes, total bytes long."""
        pad = total - len(ack) - 4 - 3
        return bytes([ack[0] + 1]) + ack[1:] + b"\x63pad\x59" + pad.to_bytes(2, "big") + \
            b"\xab" * pad

    check(validate(padded(MAX_BYTES + 1)) == "too_large", "oversize rejected")
    check(validate(padded(MAX_BYTES)) == "ok", "8192 bytes accepted")

    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
