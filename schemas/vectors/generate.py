#!/usr/bin/python3
"""Regenerates the fleet/v1 test vectors (docs/protocol.md, schemas/fleet-v1.cddl).

Run with Debian's interpreter:  /usr/bin/python3 schemas/vectors/generate.py
Output (deterministic: fixed ids and times), next to this script:
  <name>.hex / <name>.diag        valid messages in canonical form: the C encoder
                                  re-encodes each to the same bytes
  noncanonical/<name>.hex/.diag   valid but not canonical (unknown keys, key order,
                                  float widths, long integer heads); expected.txt
                                  names the canonical vector each must decode to
  bad/<name>.hex (+ .diag)        invalid messages; bad/expected.txt: file, error
                                  token (fl_errname), protocol rule id, comment
Valid vectors are encoded with cbor2 and checked against the small encoder below,
which also builds the invalid ones (duplicate keys, indefinite lengths, tags...).
"""
import json
import os
import struct
import sys

import cbor2

HERE = os.path.dirname(os.path.abspath(__file__))

T0 = 1767225600000  # 2026-01-01T00:00:00Z in ms
KIOSK, VEH, HUB = "kiosk-01", "veh-0042", "hub"
RENTAL, BOOKING, CUST = "R-20260101-0001", "B-20260101-0007", "cust-7"
QUERY = "kiosk-01-3-5"  # a query id: the kiosk's request id scheme {dev}-{boot}-{n}


# ---------------------------------------------------------------- encoder
class Pairs:
    """A map given as ordered (key, value) pairs; keys may repeat."""
    def __init__(self, pairs):
        self.pairs = list(pairs)


class Indef:
    """An indefinite-length str, list or dict (chunks: for str, a list)."""
    def __init__(self, value):
        self.value = value


class Tag:
    def __init__(self, tag, value):
        self.tag, self.value = tag, value


class Float:
    """A float of a given width in bytes (2, 4, 8)."""
    def __init__(self, value, width):
        self.value, self.width = value, width


class WideInt:
    """A non-negative integer with a longer head than needed (width 1, 2, 4, 8)."""
    def __init__(self, value, width):
        self.value, self.width = value, width


class Raw:
    """Bytes put into the output as they are; `diag` is how to print them."""
    def __init__(self, data, diag=None):
        self.data = bytes(data)
        self.diag = diag


def head(major, n, width=None):
    if width is None:
        width = 0 if n < 24 else 1 if n < 0x100 else 2 if n < 0x10000 else 4 if n < 0x100000000 else 8
    if width == 0:
        return bytes([major << 5 | n])
    ai = {1: 24, 2: 25, 4: 26, 8: 27}[width]
    return bytes([major << 5 | ai]) + n.to_bytes(width, "big")


def enc(v):
    if isinstance(v, Raw):
        return v.data
    if v is None:
        return b"\xf6"
    if isinstance(v, bool):
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, WideInt):
        return head(0, v.value, v.width)
    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, Float):
        fmt = {2: ">e", 4: ">f", 8: ">d"}[v.width]
        return bytes([0xf9 + {2: 0, 4: 1, 8: 2}[v.width]]) + struct.pack(fmt, v.value)
    if isinstance(v, float):
        return b"\xfb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode("utf-8")
        return head(3, len(b)) + b
    if isinstance(v, bytes):
        return head(2, len(v)) + v
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(enc(x) for x in v)
    if isinstance(v, dict):
        v = Pairs(v.items())
    if isinstance(v, Pairs):
        return head(5, len(v.pairs)) + b"".join(enc(k) + enc(x) for k, x in v.pairs)
    if isinstance(v, Tag):
        return head(6, v.tag) + enc(v.value)
    if isinstance(v, Indef):
        x = v.value
        if isinstance(x, list) and x and all(isinstance(c, str) for c in x):
            return b"\x7f" + b"".join(enc(c) for c in x) + b"\xff"
        if isinstance(x, list):
            return b"\x9f" + b"".join(enc(c) for c in x) + b"\xff"
        return b"\xbf" + b"".join(enc(k) + enc(c) for k, c in x.items()) + b"\xff"
    raise TypeError(type(v))


# ----------------------------------------------------- diagnostic notation
def diag(v):
    """RFC 8949 section 8 diagnostic notation. For plain values (maps with
    text keys, text, ints, float64, bools, arrays) the output is also JSON."""
    if isinstance(v, Raw):
        return v.diag or "h'%s'" % v.data.hex()
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, WideInt):
        return "%d_%d" % (v.value, {1: 0, 2: 1, 4: 2, 8: 3}[v.width])
    if isinstance(v, int):
        return str(v)
    if isinstance(v, Float):
        return "%r_%d" % (v.value, {2: 1, 4: 2, 8: 3}[v.width])
    if isinstance(v, float):
        r = repr(v)
        assert "e" not in r and "n" not in r, r  # keep the JSON subset
        return r
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, bytes):
        return "h'%s'" % v.hex()
    if isinstance(v, list):
        return "[" + ", ".join(diag(x) for x in v) + "]"
    if isinstance(v, dict):
        v = Pairs(v.items())
    if isinstance(v, Pairs):
        return "{" + ", ".join("%s: %s" % (diag(k), diag(x)) for k, x in v.pairs) + "}"
    if isinstance(v, Tag):
        return "%d(%s)" % (v.tag, diag(v.value))
    if isinstance(v, Indef):
        x = v.value
        if isinstance(x, list) and x and all(isinstance(c, str) for c in x):
            return "(_ " + ", ".join(diag(c) for c in x) + ")"
        if isinstance(x, list):
            return "[_ " + ", ".join(diag(c) for c in x) + "]"
        return "{_ " + ", ".join("%s: %s" % (diag(k), diag(c)) for k, c in x.items()) + "}"
    raise TypeError(type(v))


# ----------------------------------------------------------------- messages
def msg(mtype, dev, seq, body, corr=None, mid=None, boot=3, time=T0):
    """An envelope in canonical key order: v type mid dev boot seq time corr body."""
    m = {"v": 1, "type": mtype, "mid": mid or "%s-%s-%d" % (dev, mtype, seq),
         "dev": dev, "boot": boot, "seq": seq, "time": time}
    if corr is not None:
        m["corr"] = corr
    m["body"] = body
    return m


BOOKINGS = [
    {"booking": BOOKING, "customer": CUST, "start_ms": T0 + 32400000, "end_ms": T0 + 46800000},
    {"booking": "B-20260102-0001", "customer": "cust-9", "start_ms": T0 + 86400000,
     "end_ms": T0 + 93600000},
]

VALID = {
    "rental_request": msg("rental_request", KIOSK, 17,
                          {"vehicle": VEH, "customer": CUST, "minutes": 90}, corr=RENTAL),
    "rental_cancel": msg("rental_cancel", KIOSK, 18, {"reason": "changed plans"}, corr=RENTAL),
    "rental_return": msg("rental_return", KIOSK, 19,
                         {"station": "st-central", "odometer_m": 120345}, corr=RENTAL),
    "booking_request": msg("booking_request", KIOSK, 20,
                           {"vehicle": VEH, "customer": CUST, "start_ms": T0 + 32400000,
                            "end_ms": T0 + 46800000}, corr=BOOKING),
    "booking_cancel": msg("booking_cancel", KIOSK, 21, {}, corr=BOOKING),
    "fault": msg("fault", VEH, 41, {"dtcs": ["P0301", "P0420"], "severity": "warning",
                                     "text": "misfire, cylinder 1"}),
    "lock": msg("lock", VEH, 42, {"locked": False, "customer": CUST, "offline": True},
                corr=BOOKING),
    "lock-refused": msg("lock", VEH, 43, {"locked": True, "customer": "cust-9",
                                          "reason": "no booking now", "refused": True}),
    "telemetry": msg("telemetry", VEH, 44, {"odometer_m": 120000, "energy_pct": 81,
                                            "lat": 52.5, "lon": 13.25, "speed_kmh": 42}),
    "command_result": msg("command_result", VEH, 45, {"cmd_seq": 6, "status": "applied"}),
    "command_result-expired": msg("command_result", VEH, 46,
                                  {"cmd_seq": 7, "status": "expired",
                                   "reason": "past expires_ms"}),
    "hello": msg("hello", VEH, 0, {"role": "vehicle", "last_seq": 46, "last_ack": 40,
                                   "applied": 5, "sw": "1.0.0"}),
    "offline": msg("offline", VEH, 0, {"reason": "connection lost"}),
    "device_ack": msg("device_ack", VEH, 0, {"upto": 7}),
    "ack": msg("ack", VEH, 0, {"upto": 44}, mid="hub-ack-1001", boot=12),
    "sync": msg("sync", VEH, 0, {"acked": 40, "next_seq": 47, "down_seq": 7},
                mid="hub-sync-1002", boot=12),
    "decision": msg("decision", KIOSK, 3, {"subject": "rental", "state": "ACTIVE", "ok": True,
                                           "charged_cents": 1500,
                                           "due_ms": T0 + 5400000},
                    corr=RENTAL, mid="hub-dec-1003", boot=12),
    "decision-rejected": msg("decision", KIOSK, 4,
                             {"subject": "rental", "state": "REJECTED", "ok": False,
                              "reason": "payment unavailable", "retry_after_s": 30},
                             corr="R-20260101-0002", mid="hub-dec-1004", boot=12),
    "decision-late-fee": msg("decision", KIOSK, 5,
                             {"subject": "rental", "state": "COMPLETED", "ok": True,
                              "refunded_cents": -250, "fee_cents": 800},
                             corr=RENTAL, mid="hub-dec-1005", boot=12),
    "command": msg("command", VEH, 6, {"action": "unlock", "expires_ms": T0 + 300000,
                                       "customer": CUST}, mid="hub-cmd-1006", boot=12),
    "command-bookings": msg("command", VEH, 7, {"action": "bookings",
                                                "expires_ms": T0 + 86400000,
                                                "bookings": BOOKINGS},
                            mid="hub-cmd-1007", boot=12),
    "command-bookings-empty": msg("command", VEH, 8, {"action": "bookings",
                                                      "expires_ms": T0 + 86400000,
                                                      "bookings": []},
                                  mid="hub-cmd-1008", boot=12),
    "hub_status": msg("hub_status", HUB, 0, {"online": True}, mid="hub-status-12", boot=12),
    "vehicle_state": msg("vehicle_state", HUB, 0,
                         {"vehicle": VEH, "name": "Blue Golf", "station": "st-central",
                          "rate_cents": 1200, "state": "RENTED", "rental": RENTAL,
                          "energy_pct": 81, "lat": 52.5, "lon": 13.25, "online": True},
                         mid="hub-vs-1009", boot=12),
    "rental_state": msg("rental_state", HUB, 0,
                        {"rental": RENTAL, "vehicle": VEH, "customer": CUST, "state": "ACTIVE",
                         "charged_cents": 1500, "due_ms": T0 + 5400000},
                        corr=RENTAL, mid="hub-rs-1010", boot=12),
    "repair_state": msg("repair_state", HUB, 0,
                        {"repair": "REP-0001", "vehicle": VEH, "state": "REQUESTED",
                         "text": "P0301 misfire"}, mid="hub-rps-1011", boot=12),
    "notify": msg("notify", HUB, 0, {"kind": "rental", "id": RENTAL,
                                     "from": "PAYMENT_PENDING", "to": "ACTIVE"},
                  mid="hub-nt-1012", boot=12),
    "hub_status-negative-time": msg("hub_status", HUB, 0, {"online": False},
                                    mid="hub-status-0", boot=1, time=-1000),
    # revision 1.1 (docs/protocol.md section 8): queries, booking and station state,
    # notify.customer and payment notices
    "query": msg("query", KIOSK, 0, {"what": "available", "station": "st-central"},
                 corr=QUERY, mid="kiosk-01-query-5"),
    "query-window": msg("query", KIOSK, 0, {"what": "available", "start_ms": T0 + 32400000,
                                            "end_ms": T0 + 46800000},
                        corr="kiosk-01-3-6", mid="kiosk-01-query-6"),
    "query-customer": msg("query", KIOSK, 0, {"what": "customer", "customer": CUST},
                          corr="kiosk-01-3-7", mid="kiosk-01-query-7"),
    "answer": msg("answer", KIOSK, 0,
                  {"what": "available", "ok": True, "vehicles": [
                      {"vehicle": VEH, "name": "Blue Golf", "station": "st-central",
                       "rate_cents": 1200, "energy_pct": 81},
                      {"vehicle": "veh-0043", "station": "st-central", "rate_cents": 900}]},
                  corr=QUERY, mid="hub-ans-1013", boot=12),
    "answer-customer": msg("answer", KIOSK, 0,
                           {"what": "customer", "ok": True,
                            "rentals": [{"rental": RENTAL, "vehicle": VEH, "state": "ACTIVE",
                                         "due_ms": T0 - 3600000, "charged_cents": 1500,
                                         "running_fee_cents": 500}],
                            "bookings": [{"booking": BOOKING, "vehicle": VEH, "state": "HELD",
                                          "start_ms": T0 + 32400000, "end_ms": T0 + 46800000,
                                          "deposit_cents": 2000}],
                            "charged_cents": 3500, "refunded_cents": 1500,
                            "fees_paid_cents": 800, "fees_owed_cents": 500},
                           corr="kiosk-01-3-7", mid="hub-ans-1014", boot=12),
    "answer-empty-more": msg("answer", KIOSK, 0, {"what": "customer", "ok": True, "more": True},
                             corr="kiosk-01-3-8", mid="hub-ans-1015", boot=12),
    "answer-refused": msg("answer", VEH, 0, {"what": "available", "ok": False,
                                             "reason": "queries are for kiosks"},
                          corr="veh-0042-3-1", mid="hub-ans-1016", boot=12),
    "booking_state": msg("booking_state", HUB, 0,
                         {"booking": BOOKING, "vehicle": VEH, "customer": CUST, "state": "HELD",
                          "start_ms": T0 + 32400000, "end_ms": T0 + 46800000,
                          "charged_cents": 2000},
                         corr=BOOKING, mid="hub-bs-1017", boot=12),
    "booking_state-cancelled": msg("booking_state", HUB, 0,
                                   {"booking": BOOKING, "vehicle": VEH, "customer": CUST,
                                    "state": "CANCELLED", "start_ms": T0 + 32400000,
                                    "end_ms": T0 + 46800000, "charged_cents": 2000,
                                    "refunded_cents": 2000, "reason": "changed plans"},
                                   corr=BOOKING, mid="hub-bs-1018", boot=12),
    "station_state": msg("station_state", HUB, 0,
                         {"station": "st-central", "available": 4, "rented": 2,
                          "in_repair": 0, "booked": 1}, mid="hub-ss-1019", boot=12),
    "notify-payment": msg("notify", HUB, 0, {"kind": "payment", "id": RENTAL,
                                             "to": "fee_charged", "text": "8.00",
                                             "customer": CUST},
                          mid="hub-nt-1020", boot=12),
    # revision 1.2 (docs/protocol.md section 9): partition status, batched notices,
    # decision.upto
    "partition_status": msg("partition_status", HUB, 0,
                            {"partition": 165, "epoch": 3, "hub": "hub-a", "online": True},
                            mid="hub-a-ps-1021", boot=12),
    "notices": msg("notices", HUB, 0,
                   {"kind": "rental", "changes": [
                       {"id": RENTAL, "from": "PAYMENT_PENDING", "to": "ACTIVE",
                        "customer": CUST},
                       {"id": "R-20260101-0002", "from": "", "to": "REQUESTED",
                        "customer": "cust-9"},
                       {"id": "R-20260101-0003", "from": "RETURNED", "to": "COMPLETED",
                        "text": "late fee 8.00", "customer": CUST}]},
                   mid="hub-nc-1022", boot=12),
    "decision-upto": msg("decision", KIOSK, 6, {"subject": "rental", "state": "ACTIVE",
                                                "ok": True, "charged_cents": 1500,
                                                "due_ms": T0 + 5400000, "upto": 17},
                         corr=RENTAL, mid="hub-dec-1006", boot=12),
}


def with_(m, path, value):
    """A copy of m with m[path...] = value (value None: delete the key)."""
    m = json.loads(json.dumps(m))
    d = m
    for k in path[:-1]:
        d = d[k]
    if value is None:
        del d[path[-1]]
    else:
        d[path[-1]] = value
    return m


def reorder(m, first):
    """Copy of m with the keys in `first` moved to the front."""
    return {**{k: m[k] for k in first}, **{k: v for k, v in m.items() if k not in first}}


TEL = VALID["telemetry"]
Q, QW, QC = VALID["query"], VALID["query-window"], VALID["query-customer"]
ANS, ANSC = VALID["answer"], VALID["answer-customer"]
RR = VALID["rental_request"]
FAULT = VALID["fault"]
PS, NTC = VALID["partition_status"], VALID["notices"]

NONCANONICAL = {
    # name: (value, canonical vector it decodes to)
    "unknown-field": (Pairs(list(TEL.items())[:-1] + [
        ("x-trace", {"span": "abc", "hops": [1, 2, {"deep": None}], "raw": b"\x01\x02"}),
        ("body", {**TEL["body"], "x-firmware": "7.1", "x-undef": Raw(b"\xf7", "undefined")})]),
        "telemetry"),
    "body-before-type": (reorder(RR, ["body", "v", "mid"]), "rental_request"),
    "telemetry-float16": (with_(with_(TEL, ["body", "lat"], None), ["body", "lon"], None),
                          "telemetry"),
    "telemetry-float32": (None, "telemetry"),
    "wide-int-heads": (None, "rental_request"),
}
# float16 / float32 / wide ints keep the canonical key order
_t16 = json.loads(json.dumps(TEL))
_t16["body"] = {"odometer_m": 120000, "energy_pct": 81, "lat": Float(52.5, 2),
                "lon": Float(13.25, 2), "speed_kmh": 42}
NONCANONICAL["telemetry-float16"] = (_t16, "telemetry")
_t32 = json.loads(json.dumps(TEL))
_t32["body"] = {"odometer_m": 120000, "energy_pct": 81, "lat": Float(52.5, 4),
                "lon": Float(13.25, 4), "speed_kmh": 42}
NONCANONICAL["telemetry-float32"] = (_t32, "telemetry")
_wide = json.loads(json.dumps(RR))
_wide["seq"] = WideInt(17, 8)
_wide["boot"] = WideInt(3, 2)
_wide["body"]["minutes"] = WideInt(90, 4)
NONCANONICAL["wide-int-heads"] = (_wide, "rental_request")

LONG_ID = "A" * 65
BAD = [
    # (name, value or bytes, error token, rule id, comment)
    ("truncated-1", enc(RR)[: len(enc(RR)) // 2], "malformed", "P-DEC-2",
     "rental_request cut in half"),
    ("truncated-2", enc(RR)[:-1], "malformed", "P-DEC-2", "rental_request without its last byte"),
    ("truncated-head", enc(RR)[:-2] + b"\x1b\x00\x00", "malformed", "P-DEC-2",
     "8-byte integer head with 2 bytes"),
    ("reserved-ai", enc(RR)[:-2] + b"\x1c", "malformed", "P-DEC-2",
     "additional information 28 (reserved)"),
    ("stray-break", with_(RR, ["body", "minutes"], "__BREAK__"), "malformed", "P-DEC-2",
     "a break byte (0xff) where a value belongs"),
    ("empty", b"", "malformed", "P-DEC-2", "zero bytes"),
    ("trailing-bytes", enc(RR) + b"\x00", "trailing", "P-DEC-3", "one byte after the message"),
    ("trailing-message", enc(RR) + enc(RR), "trailing", "P-DEC-3", "two messages in one payload"),
    ("indefinite-map", Indef(RR), "indefinite", "P-DEC-4", "envelope as an indefinite map"),
    ("indefinite-text", with_(RR, ["mid"], "__INDEF_TEXT__"), "indefinite", "P-DEC-4",
     "mid as an indefinite text string"),
    ("indefinite-array", with_(FAULT, ["body", "dtcs"], "__INDEF_ARRAY__"), "indefinite",
     "P-DEC-4", "dtcs as an indefinite array"),
    ("indefinite-bytes-unknown", Pairs(list(RR.items()) + [("x", Raw(b"\x5f\x41\x01\xff"))]),
     "indefinite", "P-DEC-4", "indefinite byte string inside an unknown key"),
    ("too-deep", with_(RR, ["body", "x"], [[[1]]]), "too_deep", "P-DEC-5",
     "unknown body key holding arrays nested to depth 5"),
    ("too-deep-booking", with_(VALID["command-bookings"], ["body", "bookings", 0, "x"], {}),
     "too_deep", "P-DEC-5", "a map inside a booking (depth 5)"),
    ("duplicate-key", Pairs(list(RR.items())[:6] + [("seq", 18)] + list(RR.items())[6:]),
     "dup_key", "P-DEC-6", "\"seq\" twice in the envelope"),
    ("duplicate-key-body", Pairs(list(RR.items())[:-1] + [("body", Pairs(
        list(RR["body"].items()) + [("vehicle", "veh-0043")]))]), "dup_key", "P-DEC-6",
     "\"vehicle\" twice in the body"),
    ("duplicate-key-unknown", Pairs(list(RR.items()) + [("x", 1), ("x", 2)]), "dup_key",
     "P-DEC-6", "an unknown key twice"),
    ("wrong-type-top", [1, 2, 3], "wrong_type", "P-DEC-7", "an array, not a map"),
    ("wrong-type-seq", with_(RR, ["seq"], "17"), "wrong_type", "P-DEC-7", "seq as text"),
    ("wrong-type-body", with_(RR, ["body"], [RR["body"]]), "wrong_type", "P-DEC-7",
     "body as an array"),
    ("wrong-type-locked", with_(VALID["lock"], ["body", "locked"], 0), "wrong_type", "P-DEC-7",
     "locked as an integer"),
    ("wrong-type-negative-boot", with_(RR, ["boot"], -1), "wrong_type", "P-DEC-7",
     "boot negative"),
    ("wrong-type-lat-text", with_(TEL, ["body", "lat"], "52.5"), "wrong_type", "P-DEC-7",
     "lat as text"),
    ("non-text-key", Pairs(list(RR.items()) + [(1, "x")]), "wrong_type", "P-DEC-7",
     "an integer map key"),
    ("tag", with_(RR, ["time"], "__TAG__"), "wrong_type", "P-DEC-7", "time wrapped in tag 1"),
    ("missing-dev", with_(RR, ["dev"], None), "missing", "P-ENV-1", "no dev"),
    ("missing-body", with_(RR, ["body"], None), "missing", "P-ENV-1", "no body"),
    ("missing-customer", with_(RR, ["body", "customer"], None), "missing", "P-MSG-1",
     "rental_request without customer"),
    ("missing-corr", with_(RR, ["corr"], None), "missing", "P-ENV-4",
     "rental_request without corr"),
    ("missing-bookings", with_(VALID["command-bookings"], ["body", "bookings"], None),
     "missing", "P-MSG-3", "command \"bookings\" without the list"),
    ("unknown-type", with_(RR, ["type"], "rental_teleport"), "unknown_type", "P-DEC-8",
     "type names no message"),
    ("version-2", with_(RR, ["v"], 2), "version", "P-VER-2", "v = 2"),
    ("bad-id", with_(RR, ["body", "vehicle"], "veh 0042"), "bad_value", "P-ENV-3",
     "a space in an id"),
    ("bad-id-too-long", with_(RR, ["dev"], LONG_ID), "bad_value", "P-ENV-3",
     "a 65-byte device id"),
    ("empty-corr", with_(RR, ["corr"], ""), "bad_value", "P-ENV-3", "corr is an empty string"),
    ("minutes-zero", with_(RR, ["body", "minutes"], 0), "bad_value", "P-MSG-2", "minutes 0"),
    ("minutes-too-many", with_(RR, ["body", "minutes"], 43201), "bad_value", "P-MSG-2",
     "minutes 43201"),
    ("energy-101", with_(TEL, ["body", "energy_pct"], 101), "bad_value", "P-MSG-2",
     "energy_pct 101"),
    ("lat-out-of-range", with_(TEL, ["body", "lat"], 90.5), "bad_value", "P-MSG-2", "lat 90.5"),
    ("lat-nan", with_(TEL, ["body", "lat"], "__NAN__"), "bad_value", "P-MSG-2", "lat NaN"),
    ("booking-end-before-start", with_(VALID["booking_request"], ["body", "end_ms"],
                                       T0 + 32400000), "bad_value", "P-MSG-2",
     "end_ms equal to start_ms"),
    ("unknown-severity", with_(FAULT, ["body", "severity"], "fatal"), "bad_value", "P-MSG-2",
     "severity not a known name"),
    ("unknown-vehicle-state", with_(VALID["vehicle_state"], ["body", "state"], "PARKED"),
     "bad_value", "P-MSG-2", "vehicle state not in the list"),
    ("dtc-too-long", with_(FAULT, ["body", "dtcs"], ["P0301", "P0420", "P" * 17]), "bad_value",
     "P-MSG-2", "third code 17 bytes"),
    ("dtcs-empty", with_(FAULT, ["body", "dtcs"], []), "bad_value", "P-MSG-2",
     "no trouble codes"),
    ("dtcs-too-many", with_(FAULT, ["body", "dtcs"], ["P%04d" % i for i in range(17)]),
     "bad_value", "P-MSG-2", "17 trouble codes"),
    ("text-with-nul", with_(VALID["rental_cancel"], ["body", "reason"], "changed\u0000plans"),
     "bad_value", "P-DEC-9", "a NUL inside text"),
    ("invalid-utf8", with_(VALID["rental_cancel"], ["body", "reason"], "__BAD_UTF8__"),
     "bad_value", "P-DEC-9", "text with byte 0xff"),
    ("int-above-int64", with_(RR, ["time"], 2 ** 63), "bad_value", "P-MSG-2",
     "time 2^63 does not fit int64"),
    # revision 1.1
    ("query-missing-corr", with_(Q, ["corr"], None), "missing", "P-ENV-4",
     "query without its query id"),
    ("query-unknown-what", with_(Q, ["body", "what"], "vehicles"), "bad_value", "P-MSG-2",
     "what not a known name"),
    ("query-customer-missing", with_(QC, ["body", "customer"], None), "missing", "P-MSG-4",
     "what customer without customer"),
    ("query-available-customer", with_(Q, ["body", "customer"], CUST), "bad_value", "P-MSG-4",
     "what available with a customer"),
    ("query-customer-station", with_(QC, ["body", "station"], "st-central"), "bad_value",
     "P-MSG-4", "what customer with a station"),
    ("query-half-window", with_(QW, ["body", "end_ms"], None), "missing", "P-MSG-4",
     "start_ms without end_ms"),
    ("query-window-reversed", with_(QW, ["body", "end_ms"], T0), "bad_value", "P-MSG-2",
     "end_ms before start_ms"),
    ("answer-missing-ok", with_(ANS, ["body", "ok"], None), "missing", "P-MSG-1",
     "answer without ok"),
    ("answer-vehicles-too-many", with_(ANS, ["body", "vehicles"],
                                       [{"vehicle": "v%d" % i} for i in range(33)]),
     "bad_value", "P-MSG-2", "33 vehicles"),
    ("answer-rentals-too-many", with_(ANSC, ["body", "rentals"],
                                      [{"rental": "R%d" % i, "vehicle": VEH, "state": "ACTIVE"}
                                       for i in range(17)]),
     "bad_value", "P-MSG-2", "17 rentals"),
    ("answer-vehicles-for-customer", with_(ANSC, ["body", "vehicles"], [{"vehicle": VEH}]),
     "bad_value", "P-MSG-5", "vehicles in an answer to customer"),
    ("answer-totals-for-available", with_(ANS, ["body", "fees_owed_cents"], 500), "bad_value",
     "P-MSG-5", "customer totals in an answer to available"),
    ("answer-rental-bad-state", with_(ANSC, ["body", "rentals", 0, "state"], "HELD"),
     "bad_value", "P-MSG-2", "a booking state for a rental"),
    ("answer-vehicle-missing-id", with_(ANS, ["body", "vehicles", 1, "vehicle"], None),
     "missing", "P-MSG-1", "a vehicle entry without vehicle"),
    ("answer-booking-reversed", with_(ANSC, ["body", "bookings", 0, "end_ms"], T0 + 32400000),
     "bad_value", "P-MSG-2", "a booking entry with end_ms equal to start_ms"),
    ("answer-too-deep", with_(ANS, ["body", "vehicles", 0, "x"], [1]), "too_deep", "P-DEC-5",
     "an array inside a vehicle entry (depth 5)"),
    ("answer-energy-101", with_(ANS, ["body", "vehicles", 0, "energy_pct"], 101), "bad_value",
     "P-MSG-2", "energy_pct 101 in a vehicle entry"),
    ("booking_state-unknown-state", with_(VALID["booking_state"], ["body", "state"], "ACTIVE"),
     "bad_value", "P-MSG-2", "a rental state for a booking"),
    ("booking_state-missing-customer", with_(VALID["booking_state"], ["body", "customer"],
                                             None), "missing", "P-MSG-1", "no customer"),
    ("station_state-missing-booked", with_(VALID["station_state"], ["body", "booked"], None),
     "missing", "P-MSG-1", "no booked count"),
    ("station_state-negative", with_(VALID["station_state"], ["body", "rented"], -1),
     "wrong_type", "P-DEC-7", "a negative count"),
    ("notify-unknown-kind", with_(VALID["notify-payment"], ["body", "kind"], "invoice"),
     "bad_value", "P-MSG-2", "kind not a known name"),
    ("notify-bad-customer", with_(VALID["notify-payment"], ["body", "customer"], "cust 7"),
     "bad_value", "P-ENV-3", "a space in the customer id"),
    # revision 1.2
    ("partition_status-4096", with_(PS, ["body", "partition"], 4096), "bad_value", "P-PART-5",
     "partition 4096 (at most 4095)"),
    ("partition_status-missing-epoch", with_(PS, ["body", "epoch"], None), "missing",
     "P-MSG-1", "no epoch"),
    ("partition_status-online-int", with_(PS, ["body", "online"], 1), "wrong_type", "P-DEC-7",
     "online as an integer"),
    ("notices-empty", with_(NTC, ["body", "changes"], []), "bad_value", "P-NOT-2",
     "no changes"),
    ("notices-too-many", with_(NTC, ["body", "changes"],
                               [{"id": "R-%d" % i, "from": "", "to": "ACTIVE"}
                                for i in range(17)]),
     "bad_value", "P-NOT-2", "17 changes (at most 16)"),
    ("notices-missing-from", with_(NTC, ["body", "changes", 1, "from"], None), "missing",
     "P-NOT-2", "a change without from (\"\" is sent for none)"),
    ("notices-unknown-kind", with_(NTC, ["body", "kind"], "invoice"), "bad_value", "P-MSG-2",
     "kind not a known name"),
    ("notices-bad-to", with_(NTC, ["body", "changes", 0, "to"], ""), "bad_value", "P-ENV-3",
     "to is empty (only from may be)"),
    ("notices-too-deep", with_(NTC, ["body", "changes", 0, "x"], [1]), "too_deep", "P-DEC-5",
     "an array inside a change (depth 5)"),
    ("decision-upto-negative", with_(VALID["decision-upto"], ["body", "upto"], -1),
     "wrong_type", "P-DEC-7", "upto negative"),
]


def bad_bytes(v):
    """Encodes a bad vector, expanding the placeholders used inside dicts."""
    if isinstance(v, bytes):
        return v
    b = enc(v)
    repl = {
        "__INDEF_TEXT__": enc(Indef(["kiosk-01-", "rental_request-17"])),
        "__INDEF_ARRAY__": enc(Indef(["P0301", "P0420"])).replace(b"\x7f", b"\x9f", 1),
        "__TAG__": enc(Tag(1, T0)),
        "__NAN__": b"\xfb" + struct.pack(">d", float("nan")),
        "__BAD_UTF8__": b"\x68changed\xff",
        "__BREAK__": b"\xff",
    }
    for k, r in repl.items():
        b = b.replace(enc(k), r)
    return b


def write(path, data):
    with open(path, "w", encoding="utf-8") as f:
        f.write(data)


def main():
    out = HERE
    names = []
    for name, m in VALID.items():
        b = cbor2.dumps(m)
        assert b == enc(m), name  # cbor2 and the encoder above agree
        write(os.path.join(out, name + ".hex"), b.hex() + "\n")
        write(os.path.join(out, name + ".diag"), diag(m) + "\n")
        names.append(name)
    lines = []
    for name, (v, canon) in NONCANONICAL.items():
        b = enc(v)
        write(os.path.join(out, "noncanonical", name + ".hex"), b.hex() + "\n")
        write(os.path.join(out, "noncanonical", name + ".diag"), diag(v) + "\n")
        lines.append("%s.hex %s.hex" % (name, canon))
    write(os.path.join(out, "noncanonical", "expected.txt"),
          "# <vector> <canonical vector in ..> it decodes to (same fields)\n" +
          "\n".join(lines) + "\n")
    lines = []
    for name, v, err, rule, comment in BAD:
        b = bad_bytes(v)
        assert len(b) <= 8192
        write(os.path.join(out, "bad", name + ".hex"), b.hex() + "\n")
        lines.append("%-32s %-13s %-8s # %s" % (name + ".hex", err, rule, comment))
    write(os.path.join(out, "bad", "expected.txt"),
          "# <vector> <fl_errname token> <rule in docs/protocol.md> # what is wrong\n"
          "# oversize (> 8192 bytes, too_large, P-DEC-1) is built by the tests, see README\n" +
          "\n".join(lines) + "\n")
    print("%d valid, %d noncanonical, %d bad vectors written" %
          (len(names), len(NONCANONICAL), len(BAD)))


if __name__ == "__main__":
    sys.exit(main())
