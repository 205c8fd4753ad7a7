"""Every program's command line (fleet/cli.h): --help prints usage and exits
0, a usage error prints a one-line reason and a hint and exits 2, --version
prints the CMake project's version; fleetctl --json reports errors as JSON
on stdout."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import BUILD, REPO, fleetctl, free_port  # noqa: E402
from fleet import broker, make_hub, per_test_timeout  # noqa: E402,F401  (pytest fixtures)

PROGRAMS = {
    "fleet-hub": BUILD / "hub" / "fleet-hub",
    "fleet-agent": BUILD / "agent" / "fleet-agent",
    "fleet-sim": BUILD / "firmware-sim" / "fleet-sim",
    "fleetctl": BUILD / "hub" / "fleetctl",
    "fleet-loadgen": BUILD / "bench" / "fleet-loadgen",
}


def project_version():
    text = (REPO / "CMakeLists.txt").read_text()
    return re.search(r"project\(fleet VERSION ([0-9.]+)", text).group(1)


def run(name, *args):
    done = subprocess.run([str(PROGRAMS[name]), *args], capture_output=True, text=True,
                          timeout=30)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_help_exits_0_with_usage(name):
    rc, out, err = run(name, "--help")
    assert rc == 0, err
    assert out.startswith("usage: "), out


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_version_is_the_project_version(name):
    rc, out, err = run(name, "--version")
    assert (rc, out) == (0, f"{name} {project_version()}\n"), err


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_unknown_option_is_a_usage_error(name):
    rc, out, err = run(name, "--no-such-option")
    assert rc == 2
    lines = err.splitlines()
    assert lines[0] == f"{name}: unknown option --no-such-option", err
    assert lines[1] == f"Try '{name} --help' for more information.", err


@pytest.mark.parametrize("name, args, reason", [
    ("fleet-hub", ["--config"], "option --config needs a value"),
    ("fleet-agent", ["run", "--config"], "option --config needs a value"),
    ("fleet-agent", ["launch"], "unknown command 'launch' (run or ctl)"),
    ("fleet-sim", ["--broker", "tcp://127.0.0.1:1", "--vehicles", "many"],
     "--vehicles needs a number between 1 and 100000"),
    ("fleet-sim", [], "--broker URI is required"),
    ("fleetctl", ["no-such-command"], "unknown command no-such-command (fleetctl help lists them)"),
    ("fleetctl", ["vehicle"], "usage: fleetctl vehicle ID"),
    ("fleet-loadgen", ["--broker", "tcp://127.0.0.1:1"], "no mode (baseline, saga or ingest)"),
])
def test_usage_error_names_the_reason(name, args, reason):
    rc, out, err = run(name, *args)
    assert rc == 2
    assert err.splitlines()[0].endswith(": " + reason), err
    assert "--help" in err.splitlines()[1]


def test_agent_ctl_help_and_usage_error():
    rc, out, err = run("fleet-agent", "ctl", "--help")
    assert rc == 0 and out.startswith("usage: fleet-agent ctl"), err
    rc, out, err = run("fleet-agent", "ctl", "--socket")
    assert rc == 2 and err.startswith("fleet-agent ctl: option --socket needs a value\n"), err


def test_old_spellings_still_parse():
    # options after the command and before it, "--opt VALUE" and "--opt=VALUE"
    rc, out, err = run("fleetctl", "--hub=http://127.0.0.1:1", "vehicles", "--state", "X")
    assert rc == 1 and "cannot reach the hub at http://127.0.0.1:1:" in err, err
    rc, out, err = run("fleet-hub", "--config=/nonexistent/hub.ini", "--check-config")
    assert rc == 2 and "hub.ini" in err, err


def test_fleetctl_json_errors_are_json_on_stdout():
    url = f"http://127.0.0.1:{free_port()}"
    rc, out, err = fleetctl("--json", "status", hub=url)
    assert rc == 1
    doc = json.loads(out)
    assert doc["code"] == "unreachable" and url in doc["error"], out
    rc, out, err = fleetctl("no-such-command", "--json", hub=url)
    assert rc == 2
    assert json.loads(out) == {"error": "unknown command no-such-command (fleetctl help lists them)",
                               "code": "usage"}
    rc, out, err = run("fleetctl", "--json", "--bogus")
    assert rc == 2 and json.loads(out)["code"] == "usage", out


def test_fleetctl_json_error_from_the_hub(broker_and_hub):
    hub = broker_and_hub
    rc, out, err = hub.fleetctl("--json", "vehicle", "V9")
    assert rc == 1
    doc = json.loads(out)
    assert doc["error"] == "no vehicle V9" and doc["code"], out
    rc, out, err = hub.fleetctl("vehicle", "V9")
    assert (rc, err) == (1, "fleetctl: no vehicle V9\n")


def test_fleetctl_labels_without_units(broker_and_hub):
    hub = broker_and_hub
    rc, out, err = hub.fleetctl("register", "V1", "--name", "x", "--station", "s", "--rate", "1200")
    assert rc == 0, err
    rc, out, err = hub.fleetctl("vehicle", "V1")
    assert rc == 0, err
    assert re.search(r"^rate +12\.00$", out, re.M), out
    assert "rate_cents" not in out


@pytest.fixture
def broker_and_hub(make_hub):
    return make_hub()
