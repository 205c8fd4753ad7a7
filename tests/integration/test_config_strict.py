"""Config strictness (docs/operations.md "Settings", docs/agent.md
"Settings"): a key, a section or a FLEET_HUB_* / FLEET_AGENT_* environment
variable that the program does not know stops it at start, exit 2, one line
naming it; --check-config prints every effective setting, passwords masked,
every key of the documented tables among them; the example configs load."""
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import BUILD, REPO, per_test_timeout  # noqa: F401,E402

HUB = str(BUILD / "hub" / "fleet-hub")
AGENT = str(BUILD / "agent" / "fleet-agent")
AGENT_BASE = "[agent]\nid = K1\nrole = kiosk\n"


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLEET_HUB_", "FLEET_AGENT_"))}
    env.update(extra or {})
    return env


def check(program, tmp_path, ini=None, env=None, config=None):
    """Runs `fleet-hub --check-config` or `fleet-agent run --check-config`."""
    cmd = [HUB] if program == "hub" else [AGENT, "run"]
    if ini is not None:
        config = tmp_path / f"{program}.ini"
        config.write_text(ini)
    if config is not None:
        cmd += ["--config", str(config)]
    return subprocess.run(cmd + ["--check-config"], capture_output=True, text=True,
                          env=clean_env(env), timeout=30)


def refused(done, *words):
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def settings(done):
    """Parses --check-config's output into {"section.key": value}."""
    assert done.returncode == 0, done.stderr
    out = {}
    for line in done.stdout.splitlines():
        m = re.fullmatch(r"(\S+) = (.*)", line)
        assert m, f"not 'section.key = value': {line!r}"
        out[m.group(1)] = m.group(2)
    return out


def doc_keys(doc):
    """Returns the "section.key" names of the settings table of docs/DOC
    ("| section | key | default | meaning |"); "tierN_hours" means N = 1..4."""
    keys, in_table = set(), False
    for line in (REPO / "docs" / doc).read_text().splitlines():
        if line.startswith("| section | key |"):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not in_table or cells[0].startswith("---"):
            continue
        for key in cells[1].split(","):
            key = key.strip().strip("`")
            tiers = range(1, 5) if "N" in key else [None]
            keys |= {f"{cells[0]}.{key.replace('N', str(n)) if n else key}" for n in tiers}
    assert len(keys) > 10, keys
    return keys


# ---- the hub

def test_hub_misspelt_key_is_refused(tmp_path):
    line = refused(check("hub", tmp_path, ini="[fees]\ntier1_hours = 24\ntier1_cent = 700\n"),
                   "unknown key", "[fees] tier1_cent")
    assert "tier1_hours" not in line


def test_hub_unknown_section_is_refused(tmp_path):
    refused(check("hub", tmp_path, ini="[hub]\nstate_dir = x\n[fee]\ntier1_cents = 700\n"),
            "unknown section [fee]")


def test_hub_unknown_environment_variable_is_refused(tmp_path):
    refused(check("hub", tmp_path, env={"FLEET_HUB_FEES_TIER1_CENT": "700"}),
            "FLEET_HUB_FEES_TIER1_CENT")


def test_hub_check_config_prints_every_documented_key(tmp_path):
    shown = settings(check("hub", tmp_path, ini="[mqtt]\npassword = hunter2\n"
                                                "[store]\nurl = postgresql://fleet:pw9@db/fleet\n",
                           env={"FLEET_HUB_HTTP_PORT": "9999"}))
    missing = doc_keys("operations.md") - set(shown)
    assert not missing, f"documented, not printed: {sorted(missing)}"
    undocumented = set(shown) - doc_keys("operations.md")
    assert not undocumented, f"printed, not documented: {sorted(undocumented)}"
    assert shown["http.port"] == "9999"
    assert shown["mqtt.password"] == "****" and "hunter2" not in str(shown)
    assert "pw9" not in shown["store.url"] and shown["store.url"].startswith("postgresql://fleet:")
    assert shown["payment.queue_max"] == "1000" and shown["breaker.slow_ms"] == "3000"


def test_library_fees_example_loads(tmp_path):
    shown = settings(check("hub", tmp_path,
                           config=REPO / "docs" / "examples" / "hub-library-fees.ini"))
    assert shown["fees.tier1_hours"] == "168"   # late by up to 7 days
    assert shown["fees.tier2_hours"] == "336"   # up to 14 days
    assert int(shown["fees.tier3_hours"]) > 336  # beyond


# ---- the agent

def test_agent_misspelt_key_is_refused(tmp_path):
    refused(check("agent", tmp_path, ini=AGENT_BASE + "[outbox]\nmax_event = 10\n"),
            "unknown key", "[outbox] max_event")


def test_agent_unknown_section_is_refused(tmp_path):
    refused(check("agent", tmp_path, ini=AGENT_BASE + "[outboxes]\nmax_events = 10\n"),
            "unknown section [outboxes]")


def test_agent_unknown_environment_variable_is_refused(tmp_path):
    refused(check("agent", tmp_path, ini=AGENT_BASE,
                  env={"FLEET_AGENT_MQTT_URL": "tcp://127.0.0.1:1"}),
            "FLEET_AGENT_MQTT_URL")


def test_agent_check_config_prints_every_documented_key(tmp_path):
    shown = settings(check("agent", tmp_path, ini=AGENT_BASE + "[mqtt]\npassword = s3cret\n",
                           env={"FLEET_AGENT_OUTBOX_WINDOW": "64"}))
    missing = doc_keys("agent.md") - set(shown)
    assert not missing, f"documented, not printed: {sorted(missing)}"
    assert shown["agent.id"] == "K1" and shown["outbox.window"] == "64"
    assert shown["mqtt.password"] == "****" and "s3cret" not in str(shown)
