"""The operator console in a real browser (Debian's chromium, headless,
through chromium-driver and python3-selenium) against a real mosquitto, hub,
kiosk and vehicle agents and a fake payment provider (tests/harness):

- a rental made at a kiosk (fleet-agent ctl rent) appears without a reload;
- a fault from a vehicle opens a repair that the Start and Complete buttons
  take through; a fault on a rented vehicle shows as an alert;
- a saga stuck while the provider fails is run again with "Retry now";
- a vehicle registered, edited and retired from the console;
- 401 asks for a token, 403 says the role may not do this (the answers are
  stood in for in the page until the hub has auth: test_refused_by_role);
- without the live feed (a hub with a broker login) the console polls;
- screenshots (wide and narrow) are written to <build>/console-screenshots
  and their paths printed.

Run: ctest --test-dir build -L browser (FLEET_TEST_TIMEOUT is raised there).
"""
import base64
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import BUILD, Agent, Hub, per_test_timeout, broker, wait_for  # noqa: F401,E402
from fake_provider import FakeProvider  # noqa: E402

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = BUILD / "console-screenshots"


@pytest.fixture(scope="module", autouse=True)
def shots_dir():
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    yield SHOTS


@pytest.fixture(autouse=True)
def list_shots(capsys):
    """After each test, prints the paths of the screenshots it took, past
    pytest's capture (ctest -V shows them)."""
    before = set(SHOTS.glob("*.png"))
    yield
    with capsys.disabled():
        for path in sorted(set(SHOTS.glob("*.png")) - before):
            print(f"\nscreenshot: {path}", end="")


@pytest.fixture
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("chromium and chromium-driver are not installed (tests/setup.sh)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1360,1000", "--lang=en-GB"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver, name):
    """Saves a screenshot of the whole page (beyond the window) as
    <SHOTS>/name.png; the paths are printed at the end."""
    path = SHOTS / f"{name}.png"
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    png = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000),
                 "scale": 1}})
    path.write_bytes(base64.b64decode(png["data"]))
    return path


def until(driver, fn, timeout, what):
    """Waits until fn(driver) is true (DOM changes under it, and elements not
    drawn yet, are retried)."""
    def probe():
        try:
            return fn(driver)
        except (StaleElementReferenceException, NoSuchElementException):
            return False
    return wait_for(probe, timeout, what)


def row(driver, ident):
    rows = driver.find_elements(By.CSS_SELECTOR, f'#view tr[data-id="{ident}"]')
    return rows[0] if rows else None


def row_text(driver, ident):
    r = row(driver, ident)
    return r.text if r else ""


def go(driver, hash_):
    driver.execute_script("location.hash = arguments[0]", hash_)
    until(driver, lambda d: d.execute_script(
        "return document.getElementById('view').dataset.loadedAt !== undefined"
        " && location.hash === arguments[0]", hash_), 10, f"{hash_} to load")


def click(driver, ident, action):
    """Clicks the button data-action of row ident; the live feed may redraw
    the row between finding and clicking (stale: found again and retried)."""
    def press(d):
        buttons = row(d, ident).find_elements(By.CSS_SELECTOR, f'button[data-action="{action}"]') \
            if row(d, ident) else []
        if not buttons:
            return False
        buttons[0].click()
        return True
    until(driver, press, 15, f"{action} button of {ident}")


def live(driver):
    return driver.find_element(By.ID, "live").text == "live"


@pytest.fixture
def fleet(broker):
    """A hub paying through a fake provider (the breaker never opens), a
    kiosk K1 and two vehicle agents V1 and V2 registered with the hub."""
    with FakeProvider() as provider, \
         Hub(broker, provider="http", url=provider.url, max_attempts=50, failures=1000,
             timeout_ms=2000) as hub:
        for v, name in (("V1", "Clio blue"), ("V2", "Zoe white"), ("V3", "Golf grey")):
            status, _ = hub.api("POST", "/v1/vehicles", {"id": v, "name": name,
                                                          "station": "north", "rate_cents": 900})
            assert status == 201
        with Agent(broker, "K1", role="kiosk") as kiosk, \
             Agent(broker, "V1", role="vehicle") as v1, Agent(broker, "V2", role="vehicle") as v2:
            yield hub, provider, kiosk, v1, v2


def test_console_runs_the_fleet(fleet, browser):
    hub, provider, kiosk, v1, v2 = fleet
    d = browser
    d.get(hub.url + "/")
    until(d, live, 15, "the live feed to connect")
    d.execute_script("window.__sameDocument = 'yes'")  # a reload would lose it
    until(d, lambda d: "Clio blue" in row_text(d, "V1"), 10, "the fleet list")

    # register a vehicle from the form
    d.find_element(By.ID, "register-open").click()
    form = d.find_element(By.ID, "register-form")
    for name, value in (("id", "V9"), ("name", "Spare van"), ("station", "south"), ("rate", "12.50")):
        form.find_element(By.NAME, name).send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    until(d, lambda d: "12.50" in row_text(d, "V9"), 10, "V9 in the list")
    assert hub.api("GET", "/v1/vehicles/V9")[1]["rate_cents"] == 1250

    # a rental made at the kiosk shows up by itself
    go(d, "#/rentals")
    rc, out, err = kiosk.ctl("rent", "V1", "C1", 60, "--wait", 20)
    assert rc == 0 and "ACTIVE" in out, out + err
    rental = re.match(r"rental (\S+) queued", out).group(1)
    until(d, lambda d: "ACTIVE" in row_text(d, rental), 10, f"rental {rental} ACTIVE on the page")
    assert "9.00" in row_text(d, rental)  # one hour at 9.00
    assert d.execute_script("return window.__sameDocument") == "yes", "the page was reloaded"
    shot(d, "rentals")

    # a fault opens a repair: Start, then Complete, with the buttons
    go(d, "#/repairs")
    rc, out, err = v2.ctl("fault", "P0300", "warning", "misfire")
    assert rc == 0, out + err
    repair = wait_for(lambda: next((r["id"] for r in hub.api("GET", "/v1/repairs")[1]
                                    if r["vehicle"] == "V2"), None), 15, "the repair")
    until(d, lambda d: "REQUESTED" in row_text(d, repair), 10, "the repair on the page")
    shot(d, "repairs-requested")
    click(d, repair, "start")
    until(d, lambda d: "IN PROGRESS" in row_text(d, repair), 10, "the repair started")
    click(d, repair, "complete")
    until(d, lambda d: "COMPLETED" in row_text(d, repair), 10, "the repair completed")
    assert hub.api("GET", f"/v1/repairs/{repair}")[1]["state"] == "COMPLETED"
    assert hub.api("GET", "/v1/vehicles/V2")[1]["state"] == "AVAILABLE"

    # a fault on the rented vehicle raises an alert, pushed to the console
    rc, out, err = v1.ctl("fault", "P0420", "warning", "catalyst")
    assert rc == 0, out + err
    until(d, lambda d: d.find_element(By.ID, "count-alerts").text != "", 15, "the alert badge")
    go(d, "#/alerts")
    until(d, lambda d: "fault while rented" in d.find_element(By.ID, "view").text, 5, "the alert")
    shot(d, "alerts")

    # the provider fails: the charge waits for another try; Retry now runs it
    provider.mode = "fail"
    rc, out, err = kiosk.ctl("rent", "V3", "C2", 30)
    stuck = re.match(r"rental (\S+) queued", out).group(1)
    go(d, "#/sagas")
    until(d, lambda d: "retry" in row_text(d, f"{stuck}:charge"), 30, "the stuck charge listed")
    until(d, lambda d: d.find_element(By.ID, "count-sagas").text == "1", 10, "the stuck count")
    shot(d, "sagas-stuck")
    provider.mode = "ok"
    click(d, f"{stuck}:charge", "retry")
    until(d, lambda d: row(d, f"{stuck}:charge") is None, 15, "the saga no longer stuck")
    wait_for(lambda: hub.api("GET", f"/v1/rentals/{stuck}")[1]["state"] == "ACTIVE", 15,
             "the rental ACTIVE after the retry")
    go(d, f"#/rental/{stuck}")
    until(d, lambda d: "ACTIVE" in d.find_element(By.ID, "view").text, 10, "the rental's page")
    shot(d, "rental")

    # the vehicle's page: telemetry, history, edit and retire
    rc, out, err = v1.ctl("telemetry", 12345, 81, "48.85661", "2.35222")
    assert rc == 0, out + err
    go(d, "#/vehicle/V1")
    until(d, lambda d: "81 %" in d.find_element(By.ID, "vehicle-facts").text, 15, "V1's telemetry")
    view = d.find_element(By.ID, "view").text
    assert "RESERVED" in view and "RENTED" in view, "the history of V1"
    assert "12.3 km" in view and "9.00 per hour" in view
    shot(d, "vehicle")
    go(d, "#/vehicle/V9")
    until(d, lambda d: d.find_element(By.ID, "edit-form").find_element(By.NAME, "name")
          .get_attribute("value") == "Spare van", 10, "the edit form filled")
    name = d.find_element(By.ID, "edit-form").find_element(By.NAME, "name")
    name.clear()
    name.send_keys("Spare van 2")
    d.find_element(By.ID, "edit-form").find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    until(d, lambda d: not d.find_element(By.ID, "notice").get_attribute("hidden"), 10, "an answer")
    edited = d.find_element(By.ID, "notice").text
    # PATCH /v1/vehicles/{id} comes with the API work; until then the console says so
    assert edited == "Vehicle V9 saved." or "cannot edit a vehicle yet" in edited, edited
    d.find_element(By.ID, "retire").click()
    d.switch_to.alert.accept()
    until(d, lambda d: "RETIRED" in d.find_element(By.ID, "vehicle-facts").text, 10, "V9 retired")
    assert hub.api("GET", "/v1/vehicles/V9")[1]["state"] == "RETIRED"

    # the fleet page, wide and on a narrow screen
    go(d, "#/fleet")
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, '#state-counts [data-state="RENTED"]'), 10,
          "the counts")
    shot(d, "fleet")
    go(d, "#/fleet?state=RENTED")
    until(d, lambda d: row(d, "V1") and not row(d, "V2"), 10, "the filter by state")
    go(d, "#/devices")
    until(d, lambda d: "online" in row_text(d, "V1"), 10, "the devices")
    shot(d, "devices")
    go(d, "#/dead-letters")
    shot(d, "dead-letters")
    # a phone's screen (headless chromium's window is at least 500 px wide: emulated)
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    go(d, "#/fleet")
    until(d, lambda d: row(d, "V1") is not None, 10, "the fleet on a narrow screen")
    assert d.execute_script("return innerWidth") == 390
    assert d.execute_script("return document.documentElement.scrollWidth") <= 390, \
        "the narrow page scrolls sideways"
    shot(d, "fleet-narrow")
    go(d, "#/repairs")
    shot(d, "repairs-narrow")
    assert d.execute_script("return window.__sameDocument") == "yes", "the page was reloaded"


def test_login_and_refused_in_the_page(broker, browser):
    """The console's side of auth, with the hub's 401 and 403 stood in for
    in the page (this hub has no auth yet): 401 asks for a token, which is
    then sent as a bearer token; 403 says the role may not do this. This hub
    logs in to the broker, so it has no live feed (docs/operations.md): the
    console says so and polls."""
    with Hub(broker, config={"mqtt": {"username": "hub"}}) as hub:
        hub.api("POST", "/v1/vehicles", {"id": "V1", "name": "x", "station": "s", "rate_cents": 900})
        d = browser
        d.get(hub.url + "/")
        until(d, lambda d: row(d, "V1") is not None, 10, "the fleet")
        until(d, lambda d: "polling" in d.find_element(By.ID, "live").text, 10, "no live feed")
        hub.api("POST", "/v1/vehicles", {"id": "V2", "name": "y", "station": "s", "rate_cents": 900})
        until(d, lambda d: row(d, "V2") is not None, 12, "V2 shown by polling")
        # from now on: GETs without the token get 401, POSTs with it 403
        d.execute_script("""
          const real = window.fetch; window.__auth = [];
          window.fetch = (url, init) => {
            const h = (init && init.headers) || {}; window.__auth.push(h.Authorization || '');
            if (!h.Authorization) return Promise.resolve(new Response(
              '{"error":"log in","code":"unauthorized"}', {status: 401}));
            if (init.method === 'POST') return Promise.resolve(new Response(
              '{"error":"viewer may not","code":"forbidden"}', {status: 403}));
            return real(url, init);
          };""")
        go(d, "#/repairs")
        until(d, lambda d: d.find_element(By.ID, "login").is_displayed(), 10, "the login box")
        shot(d, "login")
        d.find_element(By.ID, "login-token").send_keys("viewer-token")
        d.find_element(By.CSS_SELECTOR, "#login-form button").click()
        until(d, lambda d: not d.find_element(By.ID, "login").is_displayed(), 5, "logged in")
        assert "Bearer viewer-token" in d.execute_script("return window.__auth")
        go(d, f"#/vehicle/V1")
        until(d, lambda d: d.find_elements(By.ID, "retire"), 10, "the vehicle page")
        d.find_element(By.ID, "retire").click()
        d.switch_to.alert.accept()
        until(d, lambda d: "Your role may not do this" in d.find_element(By.ID, "notice").text, 5,
              "the refusal")
        shot(d, "refused")
        assert hub.api("GET", "/v1/vehicles/V1")[1]["state"] == "AVAILABLE"


@pytest.mark.skip(reason="the hub has no auth on this branch's base yet (bearer tokens and roles "
                         "come with the API work); test_login_and_refused_in_the_page covers the "
                         "console's side")
def test_refused_by_role():
    """With auth on the hub: log in as a viewer, press Start on a repair,
    see "your role may not do this" and the repair unchanged."""
