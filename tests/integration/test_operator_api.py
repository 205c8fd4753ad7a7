"""The operator's side of the hub: the HTTP API (hub/http.h) and fleetctl,
against a real fleet-hub, a private broker and, for a rental, a real kiosk
agent.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_operator_api.py
"""

import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import Agent, fleetctl, free_port, parse_table  # noqa: E402
from fleet import broker, make_hub, per_test_timeout  # noqa: E402,F401  (pytest fixtures)


def raw_post(hub, path, data, content_type):
    """POSTs bytes with the given Content-Type; returns the HTTP status."""
    req = urllib.request.Request(hub.url + path, data=data, method="POST",
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def test_register_list_retire(make_hub):
    hub = make_hub()
    rc, out, err = hub.fleetctl("register", "V1", "--name", "Blue Fiat", "--station", "S1",
                                "--rate", "1200")
    assert rc == 0, err
    assert re.search(r"^state\s+AVAILABLE$", out, re.M)

    rc, out, err = hub.fleetctl("register", "V1", "--name", "x", "--station", "S1", "--rate", "1")
    assert rc == 1 and err.startswith("fleetctl: ")
    assert hub.api("POST", "/v1/vehicles", {"id": "V1", "name": "x", "station": "S1",
                                            "rate_cents": 1})[0] == 409

    assert [r["ID"] for r in parse_table(hub.fleetctl("vehicles", "--state", "AVAILABLE")[1])] \
        == ["V1"]
    assert parse_table(hub.fleetctl("vehicles", "--state", "RENTED")[1]) == []
    rc, out, err = hub.fleetctl("vehicle", "V9")
    assert (rc, err) == (1, "fleetctl: no vehicle V9\n")

    rc, out, err = hub.fleetctl("retire", "V1")
    assert rc == 0, err
    assert hub.api("GET", "/v1/vehicles/V1")[1]["state"] == "RETIRED"


def test_bad_requests_get_clear_errors(make_hub):
    hub = make_hub()
    good = {"id": "V1", "name": "n", "station": "S1", "rate_cents": 100}
    for bad in ({**good, "id": "V 1"}, {**good, "rate_cents": 0}, {**good, "rate_cents": 1.5},
                {**good, "station": ""}, {"id": "V1"}, [1, 2]):
        status, body = hub.api("POST", "/v1/vehicles", bad)
        assert (status, body["code"]) == (400, "invalid"), bad
        assert body["error"]
    assert raw_post(hub, "/v1/vehicles", b"{}", "text/plain") == 415
    assert raw_post(hub, "/v1/vehicles", b"{" + b" " * 17000 + b"}", "application/json") == 413
    assert hub.api("GET", "/v1/nothing")[0] == 404
    assert hub.api("POST", "/v1/health")[0] == 405
    assert hub.api("GET", "/v1/rentals?limit=0")[0] == 400
    assert hub.api("GET", "/v1/rentals?state=no%20such")[0] == 400
    assert hub.api("GET", "/v1/customers/C9")[0] == 404
    status, body = hub.api("POST", "/v1/repairs/P9/start")
    assert status == 404 and body["code"] == "not_found"

    with urllib.request.urlopen(hub.url + "/", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/html")
        page = resp.read().decode()
    # the console's files come from the hub itself (hub/console/), nothing from elsewhere
    links = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert "/console/console.js" in links
    assert all(re.match(r"^(/[^/]|#)", u) for u in links), links
    with urllib.request.urlopen(hub.url + "/console/console.js", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/javascript")
        assert "/v1/vehicles" in resp.read().decode()


def test_rental_seen_by_the_operator(broker, make_hub):
    hub = make_hub()
    assert hub.fleetctl("register", "V1", "--name", "Blue Fiat", "--station", "S1",
                        "--rate", "1200")[0] == 0
    with Agent(broker, "K1", role="kiosk") as kiosk:
        rc, out, err = kiosk.ctl("rent", "V1", "C1", "60", "--wait", "15")
        assert rc == 0, out + err
    rental = hub.api("GET", "/v1/rentals?customer=C1")[1][0]
    assert rental["state"] == "ACTIVE"

    status, detail = hub.api("GET", f"/v1/rentals/{rental['id']}")
    assert status == 200
    assert [(s["step"], s["status"]) for s in detail["saga_steps"]] == [("charge", "done")]
    rc, out, err = hub.fleetctl("rental", rental["id"])
    assert rc == 0 and "saga_steps:" in out

    status, customer = hub.api("GET", "/v1/customers/C1")
    assert status == 200
    assert [r["id"] for r in customer["open_rentals"]] == [rental["id"]]
    assert customer["fees_owed_cents"] == 0
    rows = parse_table(hub.fleetctl("rentals", "--customer", "C1")[1])
    assert [(r["ID"], r["STATE"], r["CHARGED"]) for r in rows] == [(rental["id"], "ACTIVE",
                                                                     "12.00")]
    assert "K1" in [r["ID"] for r in parse_table(hub.fleetctl("devices")[1])]


def test_fleetctl_without_a_hub():
    url = f"http://127.0.0.1:{free_port()}"
    rc, out, err = fleetctl("status", hub=url)
    assert rc == 1
    assert err.startswith(f"fleetctl: cannot reach the hub at {url}: ")
    rc, out, err = fleetctl("no-such-command", hub=url)
    assert rc == 2 and "unknown command" in err  # a usage error (fleetctl exits 2)
