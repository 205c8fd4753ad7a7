"""The API's contract (docs/openapi.yaml, OpenAPI 3.0) against a live hub:
every operation of the document is driven (with a real kiosk agent for a
rental and a booking), and every answer is checked against it: the status
is one the operation documents, the body validates against the documented
schema (python3-jsonschema), a list's X-Next-Cursor is as documented. The
document the hub serves at /v1/openapi.yaml is the file. At the end, every
operation of the document must have been driven, and every route of the hub
is in the document (a route missing from it answers 404 here only if it is
absent from hub/http.c too).

Run: /usr/bin/python3 -m pytest -q tests/integration/test_api_contract.py
"""

import json
import re
import sys
import time
from pathlib import Path

import jsonschema
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import REPO, Agent, fleetctl, rent  # noqa: E402
from fleet import broker, make_hub, per_test_timeout  # noqa: E402,F401  (pytest fixtures)

DOC_PATH = REPO / "docs" / "openapi.yaml"


def json_schema(node):
    """OpenAPI 3.0 schema -> JSON Schema: nullable becomes a null type."""
    if isinstance(node, list):
        return [json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: json_schema(v) for k, v in node.items() if k not in ("nullable", "example")}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    elif node.get("nullable") and "$ref" in out:
        out = {"anyOf": [{"$ref": out["$ref"]}, {"type": "null"}]}
    return out


class Contract:
    def __init__(self, doc):
        self.doc = doc
        self.root = json_schema(doc)
        self.resolver = jsonschema.RefResolver.from_schema(self.root)
        self.driven = set()

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            node = self.resolver.resolve(node["$ref"])[1]
        return node

    def operation(self, method, path):
        """Finds the document's template for a concrete path."""
        for template, item in self.doc["paths"].items():
            pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
            if re.match(pattern, path) and method.lower() in item:
                return template, item[method.lower()]
        raise AssertionError(f"{method} {path}: not in docs/openapi.yaml")

    def check(self, hub, method, path, body=None, token=None, expect=None):
        """Calls the hub and checks the answer against the document; returns
        (status, parsed body or text, headers)."""
        status, headers, raw = hub.request(method, path, body, token=token)
        template, op = self.operation(method, path.split("?")[0])
        self.driven.add((method, template))
        where = f"{method} {path} -> {status}"
        assert str(status) in op["responses"], f"{where}: status not documented"
        if expect is not None:
            assert status == expect, f"{where}: expected {expect}: {raw[:300]!r}"
        response = self.resolve(op["responses"][str(status)])
        content = response.get("content", {})
        ctype = headers.get("Content-Type", "").split(";")[0]
        assert ctype in content, f"{where}: Content-Type {ctype} not documented"
        schema = content[ctype]["schema"]
        parsed = json.loads(raw) if ctype == "application/json" else raw.decode()
        if ctype == "application/json":
            jsonschema.validate(parsed, json_schema(self.resolve(schema)), resolver=self.resolver)
        for name, header in response.get("headers", {}).items():
            if name in headers:
                jsonschema.validate(headers[name], self.resolve(header)["schema"],
                                    resolver=self.resolver)
        if "X-Next-Cursor" in headers:
            assert "X-Next-Cursor" in response.get("headers", {}), f"{where}: header not documented"
        return status, parsed, headers

    def every_operation(self):
        return {(m.upper(), t) for t, item in self.doc["paths"].items() for m in item
                if m in ("get", "post", "patch", "put", "delete")}


def routes_of_the_hub():
    """The route table of hub/http.c, as (method, template) pairs."""
    text = (REPO / "hub" / "http.c").read_text()
    table = text[text.index("static const http_route routes[]"):]
    table = table[:table.index("};")]
    routes = set()
    for method, pattern in re.findall(r'\{"(GET|POST|PATCH|PUT|DELETE)", "([^"]+)"', table):
        if pattern == "/":
            continue
        routes.add((method, pattern.replace("*", "{id}")))
    return routes


def test_every_route_answers_as_documented(broker, make_hub, tmp_path):
    doc = yaml.safe_load(DOC_PATH.read_text())
    jsonschema.validators.validator_for({}).check_schema(json_schema(doc["components"]["schemas"]["Vehicle"]))
    c = Contract(doc)
    assert routes_of_the_hub() == c.every_operation(), \
        "hub/http.c's routes and docs/openapi.yaml's paths differ"

    tokens = {}
    lines = []
    for role in ("viewer", "mechanic", "operator"):
        rc, out, err = fleetctl("token", "new", role, role)
        assert rc == 0, err
        tokens[role], line = out.splitlines()
        lines.append(line)
    (tmp_path / "tokens").write_text("\n".join(lines) + "\n")
    hub = make_hub(latency_ms=5, config={"http": {"tokens_file": tmp_path / "tokens"}},
                   token=tokens["operator"])

    status, text, _ = c.check(hub, "GET", "/v1/openapi.yaml", token="", expect=200)
    assert text == DOC_PATH.read_text(), "the hub serves another contract than docs/openapi.yaml"
    c.check(hub, "GET", "/v1/health", token="", expect=200)
    c.check(hub, "GET", "/metrics", token="", expect=200)
    c.check(hub, "GET", "/v1/vehicles", token="", expect=401)
    c.check(hub, "POST", "/v1/vehicles/V1/retire", token=tokens["viewer"], expect=403)

    new = {"id": "V1", "name": "Blue Fiat", "station": "S1", "rate_cents": 1200}
    c.check(hub, "POST", "/v1/vehicles", new, expect=201)
    c.check(hub, "POST", "/v1/vehicles", new, expect=409)
    c.check(hub, "POST", "/v1/vehicles", {"id": "V 2"}, expect=400)
    for v in ("V2", "V3", "V4"):
        c.check(hub, "POST", "/v1/vehicles", {**new, "id": v}, expect=201)
    c.check(hub, "GET", "/v1/vehicles?limit=2", expect=200)
    c.check(hub, "GET", "/v1/vehicles?limit=0", expect=400)
    c.check(hub, "GET", "/v1/vehicles/V1", expect=200)
    c.check(hub, "GET", "/v1/vehicles/V9", expect=404)
    c.check(hub, "PATCH", "/v1/vehicles/V4", {"name": "Red Fiat", "rate_cents": 900}, expect=200)
    c.check(hub, "PATCH", "/v1/vehicles/V4", {"colour": "red"}, expect=400)
    c.check(hub, "PATCH", "/v1/vehicles/V9", {"name": "x"}, expect=404)
    c.check(hub, "POST", "/v1/vehicles/V4/retire", expect=200)
    c.check(hub, "POST", "/v1/vehicles/V9/retire", expect=404)

    with Agent(broker, "K1", role="kiosk") as kiosk:
        rental, state, line = rent(kiosk, "V1", "C1", 60)
        assert state == "ACTIVE", line
        t0 = int(time.time() * 1000) + 3600_000
        rc, out, err = kiosk.ctl("book", "V2", "C2", t0, t0 + 600_000, "--wait", 20)
        assert rc == 0, out + err
        booking = re.match(r"booking (\S+) (\S+)", out.strip().splitlines()[-1]).group(1)

        c.check(hub, "GET", "/v1/rentals", expect=200)
        c.check(hub, "GET", "/v1/rentals?customer=C1&limit=5", expect=200)
        c.check(hub, "GET", f"/v1/rentals/{rental}", expect=200)
        c.check(hub, "GET", "/v1/rentals/R-none", expect=404)
        c.check(hub, "GET", "/v1/customers/C1", expect=200)
        c.check(hub, "GET", "/v1/customers/C9", expect=404)
        c.check(hub, "POST", f"/v1/rentals/{rental}/retry", expect=409)
        c.check(hub, "POST", "/v1/rentals/R-none/retry", expect=404)
        c.check(hub, "POST", f"/v1/rentals/{rental}/compensate", expect=200)
        c.check(hub, "POST", "/v1/rentals/R-none/compensate", expect=404)

        c.check(hub, "GET", "/v1/bookings", expect=200)
        c.check(hub, "GET", f"/v1/bookings/{booking}", expect=200)
        c.check(hub, "GET", "/v1/bookings/B-none", expect=404)
        c.check(hub, "POST", f"/v1/bookings/{booking}/cancel", expect=200)
        c.check(hub, "POST", "/v1/bookings/B-none/cancel", expect=404)

        c.check(hub, "GET", "/v1/sagas", expect=200)
        c.check(hub, "GET", "/v1/sagas?status=done&limit=1", expect=200)
        c.check(hub, "GET", "/v1/devices", expect=200)

    status, repair, _ = c.check(hub, "POST", "/v1/vehicles/V3/repairs", {"text": "dent"},
                                token=tokens["mechanic"], expect=201)
    c.check(hub, "POST", "/v1/vehicles/V3/repairs", {"txt": "dent"}, expect=400)
    c.check(hub, "POST", "/v1/vehicles/V9/repairs", {"text": "dent"}, expect=404)
    c.check(hub, "GET", "/v1/repairs", expect=200)
    c.check(hub, "GET", f"/v1/repairs/{repair['id']}", expect=200)
    c.check(hub, "GET", "/v1/repairs/P-none", expect=404)
    c.check(hub, "POST", f"/v1/repairs/{repair['id']}/complete", expect=409)
    c.check(hub, "POST", f"/v1/repairs/{repair['id']}/start", token=tokens["mechanic"], expect=200)
    c.check(hub, "POST", f"/v1/repairs/{repair['id']}/complete", token=tokens["mechanic"],
            expect=200)
    c.check(hub, "POST", "/v1/repairs/P-none/start", expect=404)

    c.check(hub, "GET", "/v1/vehicles/V1/history?limit=5", expect=200)
    status, stations, _ = c.check(hub, "GET", "/v1/stations", expect=200)
    assert {s["station"]: s["vehicles"] for s in stations}.get("S1", 0) >= 1, stations
    c.check(hub, "GET", "/v1/events", token="", expect=401)  # the stream itself never ends
    c.check(hub, "GET", "/console/console.js", token="", expect=200)
    c.check(hub, "GET", "/v1/dead-letters", expect=200)
    c.check(hub, "GET", "/v1/counters", expect=200)
    # cluster mode is off here (tests/scaleout/ drives these with it on)
    c.check(hub, "GET", "/v1/cluster/partitions", expect=404)
    c.check(hub, "GET", "/v1/cluster/hubs", expect=404)
    c.check(hub, "POST", "/v1/read-models/check", expect=200)
    c.check(hub, "POST", "/v1/read-models/rebuild", expect=200)

    missing = c.every_operation() - c.driven
    assert not missing, f"operations of docs/openapi.yaml not driven: {sorted(missing)}"
