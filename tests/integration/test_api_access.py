"""The operator API's access and its newer routes (hub/http.h): bearer tokens
and roles, HTTPS, PATCH /v1/vehicles/{id}, repairs opened by the operator,
booking cancel, pages with X-Next-Cursor, the customer's running and paid
late fees, and GET /metrics in the Prometheus text format; with fleetctl.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_api_access.py
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import Agent, BUILD, Hub, fleetctl, parse_table, rent  # noqa: E402
from fleet import broker, make_hub, per_test_timeout  # noqa: E402,F401  (pytest fixtures)


def new_token(role, name):
    """fleetctl token new ROLE NAME: returns (token, tokens-file line)."""
    rc, out, err = fleetctl("token", "new", role, name)
    assert rc == 0, err
    token, line = out.splitlines()
    assert re.fullmatch(r"flt_[0-9a-f]{64}", token), token
    assert re.fullmatch(rf"{role} [0-9a-f]{{64}} {name}", line), line
    return token, line


def tokens_file(tmp_path, *lines):
    path = tmp_path / "tokens"
    path.write_text("# role sha256 name\n\n" + "\n".join(lines) + "\n")
    return path


def register(hub, vehicle, station="S1", rate=1200):
    status, body = hub.api("POST", "/v1/vehicles", {"id": vehicle, "name": f"car {vehicle}",
                                                    "station": station, "rate_cents": rate})
    assert status == 201, body


def test_tokens_and_roles(make_hub, tmp_path):
    viewer, vline = new_token("viewer", "vera")
    mechanic, mline = new_token("mechanic", "max")
    operator, oline = new_token("operator", "olga")
    hub = make_hub(config={"http": {"tokens_file": tokens_file(tmp_path, vline, mline, oline)}},
                   token=operator)
    assert "is open to anyone" not in hub.log()

    # no token, a wrong one: 401 with a JSON error and the challenge
    for token in ("", "flt_" + "0" * 64, viewer[:-1]):
        status, headers, raw = hub.request("GET", "/v1/vehicles", token=token)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), raw
        assert hub.api("GET", "/v1/vehicles", token=token)[1]["code"] == "unauthorized"
    # open: health, the contract, metrics (metrics_open defaults to true), the page
    for path in ("/v1/health", "/v1/openapi.yaml", "/metrics", "/"):
        assert hub.request("GET", path, token="")[0] == 200, path

    register(hub, "V1")
    # viewer reads, may not change
    assert hub.api("GET", "/v1/vehicles", token=viewer)[0] == 200
    status, body = hub.api("POST", "/v1/vehicles/V1/retire", token=viewer)
    assert (status, body["code"]) == (403, "forbidden") and "operator" in body["error"]
    assert hub.api("POST", "/v1/vehicles/V1/repairs", {"text": "dent"}, token=viewer)[0] == 403
    # mechanic: repairs, nothing else
    status, repair = hub.api("POST", "/v1/vehicles/V1/repairs", {"text": "dent"}, token=mechanic)
    assert status == 201, repair
    assert hub.api("POST", f"/v1/repairs/{repair['id']}/start", token=mechanic)[0] == 200
    assert hub.api("POST", f"/v1/repairs/{repair['id']}/complete", token=mechanic)[0] == 200
    assert hub.api("PATCH", "/v1/vehicles/V1", {"name": "x"}, token=mechanic)[0] == 403
    assert hub.api("POST", "/v1/read-models/check", token=mechanic)[0] == 403

    # fleetctl: --token, FLEET_TOKEN, and the hint without one
    rc, out, err = fleetctl("vehicles", hub=hub)
    assert rc == 1 and "--token" in err and "FLEET_TOKEN" in err, err
    rc, out, err = fleetctl("--token", viewer, "vehicles", hub=hub)
    assert rc == 0 and [r["ID"] for r in parse_table(out)] == ["V1"], err
    env = dict(os.environ, FLEET_TOKEN=viewer)
    done = subprocess.run([str(BUILD / "hub" / "fleetctl"), "--hub", hub.url, "retire", "V1"],
                          capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 1 and "may not do this" in done.stderr, done.stderr
    env["FLEET_TOKEN"] = operator
    done = subprocess.run([str(BUILD / "hub" / "fleetctl"), "--hub", hub.url, "retire", "V1"],
                          capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 0, done.stderr


def test_metrics_closed_and_bad_tokens_file(broker, make_hub, tmp_path):
    viewer, vline = new_token("viewer", "vera")
    hub = make_hub(config={"http": {"tokens_file": tokens_file(tmp_path, vline),
                                    "metrics_open": "false"}})
    assert hub.request("GET", "/metrics", token="")[0] == 401
    assert hub.request("GET", "/metrics", token=viewer)[0] == 200
    assert hub.request("GET", "/v1/health", token="")[0] == 200

    bad = tmp_path / "bad"
    bad.write_text(vline + "\nadmin " + "a" * 64 + " root\n")
    hub2 = Hub(broker, start=False, config={"http": {"tokens_file": bad}})
    try:
        done = subprocess.run(hub2.command(), capture_output=True, text=True, timeout=30)
        assert done.returncode != 0
        assert f"tokens file {bad} line 2" in done.stderr, done.stderr
    finally:
        hub2.close()


def test_no_tokens_warns_and_stays_open(make_hub):
    hub = make_hub()
    assert hub.api("GET", "/v1/vehicles")[0] == 200
    assert "is open to anyone who can reach it" in hub.log()


def test_https(make_hub, tmp_path):
    if not shutil.which("openssl"):
        import pytest
        pytest.skip("no openssl command")
    key, cert = tmp_path / "hub.key", tmp_path / "hub.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    hub = make_hub(config={"http": {"cert_file": cert, "key_file": key}}, cafile=cert)
    assert hub.url.startswith("https://")
    register(hub, "V1")
    rc, out, err = hub.fleetctl("vehicle", "V1")
    assert rc == 0 and re.search(r"^state\s+AVAILABLE$", out, re.M), err
    rc, out, err = fleetctl("vehicle", "V1", hub=hub)   # without the CA: refused
    assert rc == 1 and "cannot reach the hub" in err


def test_edit_damage_unbook_and_unknown_things(make_hub):
    hub = make_hub()
    register(hub, "V1")
    status, v = hub.api("PATCH", "/v1/vehicles/V1", {"name": "Red Fiat", "rate_cents": 950})
    assert status == 200 and (v["name"], v["rate_cents"], v["station"]) == ("Red Fiat", 950, "S1")
    rc, out, err = hub.fleetctl("edit", "V1", "--station", "S2", "--rate", "9.00")
    assert rc == 0, err
    v = hub.api("GET", "/v1/vehicles/V1")[1]
    assert (v["name"], v["rate_cents"], v["station"]) == ("Red Fiat", 900, "S2")
    for bad in ({}, {"colour": "red"}, {"rate_cents": 0}, {"rate_cents": 1.5},
                {"station": "no spaces"}, {"name": ""}, [1]):
        status, body = hub.api("PATCH", "/v1/vehicles/V1", bad)
        assert (status, body["code"]) == (400, "invalid"), bad
    assert hub.api("PATCH", "/v1/vehicles/V9", {"name": "x"})[0] == 404
    assert hub.fleetctl("edit", "V1", "--rate", "900")[0] == 2   # edit's rate is money: 9.00

    rc, out, err = hub.fleetctl("damage", "V1", "scratched door")
    assert rc == 0 and re.search(r"^state\s+REQUESTED$", out, re.M), out + err
    assert re.search(r"^text\s+scratched door$", out, re.M), out
    assert hub.api("GET", "/v1/vehicles/V1")[1]["state"] == "REPAIR_REQUESTED"
    assert hub.api("POST", "/v1/vehicles/V9/repairs", {"text": "x"})[0] == 404
    assert hub.api("POST", "/v1/vehicles/V1/repairs", {"text": ""})[0] == 400
    assert hub.api("POST", "/v1/vehicles/V1/repairs", {"txt": "x"})[0] == 400

    status, body = hub.api("POST", "/v1/bookings/B9/cancel")
    assert (status, body["code"]) == (404, "not_found"), body
    rc, out, err = hub.fleetctl("unbook", "B9")
    assert rc == 1 and err.startswith("fleetctl: "), err
    # a retry of a rental the hub never had: 404 (the engine says not_found)
    status, body = hub.api("POST", "/v1/rentals/R-none/retry")
    assert (status, body["code"]) == (404, "not_found"), body
    # PATCH needs JSON like POST does
    import urllib.error
    import urllib.request
    req = urllib.request.Request(hub.url + "/v1/vehicles/V1", data=b'{"name": "x"}',
                                 method="PATCH", headers={"Content-Type": "text/plain"})
    try:
        urllib.request.urlopen(req, timeout=10)
        assert False, "PATCH without JSON accepted"
    except urllib.error.HTTPError as e:
        assert e.code == 415


def test_pages_follow_the_cursor(make_hub):
    hub = make_hub()
    ids = [f"V{i:02d}" for i in range(7)]
    for v in reversed(ids):
        register(hub, v)
    seen, cursor, pages = [], None, 0
    while True:
        path = "/v1/vehicles?limit=3" + (f"&cursor={cursor}" if cursor else "")
        status, headers, raw = hub.request("GET", path)
        assert status == 200, raw
        import json
        page = json.loads(raw)
        pages += 1
        seen += [v["id"] for v in page]
        cursor = headers.get("X-Next-Cursor")
        if not cursor:
            break
        assert len(page) == 3
    assert (seen, pages) == (ids, 3)
    # exactly a page: no cursor after it
    status, headers, raw = hub.request("GET", "/v1/vehicles?limit=7")
    assert headers.get("X-Next-Cursor") is None
    # filters apply on every page
    status, headers, _ = hub.request("GET", "/v1/vehicles?state=AVAILABLE&limit=6")
    status, body = hub.api("GET", f"/v1/vehicles?state=AVAILABLE&cursor={headers['X-Next-Cursor']}")
    assert [v["id"] for v in body] == ["V06"]
    for bad in ("zz", "0", "5620", "0a", "56310a3130", headers["X-Next-Cursor"] + "00"):
        status, body = hub.api("GET", f"/v1/vehicles?cursor={bad}")
        assert (status, body["code"]) == (400, "invalid"), bad
    # a cursor of another list (rentals: a time and an id) is refused by vehicles
    other = "12\nV1".encode().hex()
    assert hub.api("GET", f"/v1/rentals?cursor={other}")[0] == 200
    assert hub.api("GET", f"/v1/vehicles?cursor={other}")[0] == 400
    assert hub.api("GET", "/v1/vehicles?limit=1001")[0] == 400
    rc, out, err = hub.fleetctl("vehicles", "--limit", "5")
    assert rc == 0 and len(parse_table(out)) == 5
    m = re.search(r"more rows follow: add --cursor ([0-9a-f]+)", err)
    assert m, err
    rc, out, err = hub.fleetctl("vehicles", "--limit", "5", "--cursor", m.group(1))
    assert [r["ID"] for r in parse_table(out)] == ["V05", "V06"] and "more rows" not in err


def test_customer_running_and_paid_fees(broker, make_hub):
    # minute_ms=100: a rental minute lasts 0.1 s, an hour 6 s (docs/operations.md)
    hub = make_hub(latency_ms=5, config={"engine": {"minute_ms": 100},
                                         "fees": {"tier1_hours": 1, "tier1_cents": 700,
                                                  "tier2_hours": 24, "tier2_cents": 5000}})
    register(hub, "V1")
    register(hub, "V2")
    with Agent(broker, "K1", role="kiosk") as kiosk:
        late, state, line = rent(kiosk, "V1", "C1", 1)      # due 0.1 s from now
        assert state == "ACTIVE", line
        onduty, state, line = rent(kiosk, "V2", "C1", 600)  # due in a minute
        assert state == "ACTIVE", line
        time.sleep(0.5)
        status, c = hub.api("GET", "/v1/customers/C1")
        assert status == 200, c
        fees = {r["id"]: r.get("running_fee_cents") for r in c["open_rentals"]}
        assert fees == {late: 700, onduty: None}, fees
        assert (c["fees_owed_cents"], c["fees_paid_cents"]) == (0, 0)
        rc, out, err = kiosk.ctl("return", late, "--wait", 20)
        assert rc == 0 and "fee=700" in out, out + err
    status, c = hub.api("GET", "/v1/customers/C1")
    assert (c["fees_owed_cents"], c["fees_paid_cents"]) == (0, 700), c
    assert [r["id"] for r in c["open_rentals"]] == [onduty]


# ---- GET /metrics: the Prometheus text format, checked strictly ---------------

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})?'
                    r" (-?(?:[0-9]+(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?|\+Inf|-Inf|NaN))$")


def parse_metrics(text):
    """A strict reader of the Prometheus text format 0.0.4: every family
    has HELP and TYPE before its samples, once; every sample belongs to the
    family declared last (histograms: _bucket, _sum, _count); no sample
    twice; histogram buckets rise with le and end at +Inf == _count.
    Returns {family: (type, [(name, labels dict, value)])}."""
    assert text.endswith("\n"), "the text ends with a newline"
    families, current, seen = {}, None, set()
    for n, line in enumerate(text.splitlines(), 1):
        assert line, f"line {n}: empty"
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert METRIC_NAME.fullmatch(name) and name not in families, f"line {n}: {line}"
            families[name] = [None, []]
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == current and families[name][0] is None, f"line {n}: TYPE after HELP"
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            families[name][0] = kind
        else:
            assert not line.startswith("#"), f"line {n}: unknown comment {line}"
            m = SAMPLE.fullmatch(line)
            assert m, f"line {n}: not a sample: {line!r}"
            name, labels = m.group(1), dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                                       m.group(3) or ""))
            kind = families[current][0]
            allowed = {current} if kind != "histogram" else \
                {current + "_bucket", current + "_sum", current + "_count"}
            assert name in allowed, f"line {n}: {name} outside its family {current}"
            key = (name, tuple(sorted(labels.items())))
            assert key not in seen, f"line {n}: sample repeated"
            seen.add(key)
            value = float(m.group(4))
            if kind == "counter":
                assert name.endswith("_total") and value >= 0, line
            families[current][1].append((name, labels, value))
    for name, (kind, samples) in families.items():
        assert kind, f"{name} has no TYPE"
        if kind == "histogram":
            buckets = [(float(l["le"]), v) for s, l, v in samples if s.endswith("_bucket")]
            assert buckets == sorted(buckets) and buckets[-1][0] == float("inf"), name
            assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), name
            count = [v for s, _, v in samples if s.endswith("_count")]
            assert count == [buckets[-1][1]], name
    return {k: (v[0], v[1]) for k, v in families.items()}


def test_metrics(broker, make_hub):
    hub = make_hub(latency_ms=5)
    register(hub, "V1")
    register(hub, "V2")
    with Agent(broker, "K1", role="kiosk") as kiosk:
        _, state, line = rent(kiosk, "V1", "C1", 60)
        assert state == "ACTIVE", line
        status, headers, raw = hub.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = raw.decode()
    families = parse_metrics(text)
    promtool = shutil.which("promtool")
    if promtool:   # Debian's prometheus package, when it is installed
        done = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                              capture_output=True)
        assert done.returncode == 0, done.stdout + done.stderr

    def value(family, **labels):
        return [v for _, l, v in families[family][1] if l == labels][0]
    assert value("fleet_hub_ready") == 1
    assert value("fleet_hub_vehicles", state="RENTED") == 1
    assert value("fleet_hub_vehicles", state="AVAILABLE") == 1
    assert value("fleet_hub_breaker_state", state="closed") == 1
    assert value("fleet_hub_breaker_state", state="open") == 0
    assert value("fleet_hub_events_applied_total") >= 1
    assert value("fleet_hub_devices_online") >= 1
    assert value("fleet_hub_sagas_waiting") == 0
    calls = [v for s, _, v in families["fleet_hub_payment_call_seconds"][1] if s.endswith("_count")]
    assert calls == [1], calls
    for family in ("fleet_hub_duplicates_total", "fleet_hub_batches_total", "fleet_hub_queue_depth",
                   "fleet_hub_downlink_queued", "fleet_hub_rejected_total",
                   "fleet_hub_payments_pending", "fleet_hub_saga_steps"):
        assert family in families, family
