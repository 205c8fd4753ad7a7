"""`cmake --install` (dist/CMakeLists.txt): what a machine gets, checked in a
temporary prefix.

- libfleetagent, its headers and fleetagent.pc: a tiny C program compiles and
  links with `pkg-config --cflags --libs fleetagent` and runs (creates an agent).
- The example configs /etc/fleet/hub.ini and agent.ini load
  (`--check-config`), and name every key that `--check-config` prints.
- The systemd units pass `systemd-analyze verify` (skipped without systemd).
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import BUILD, per_test_timeout  # noqa: E402,F401

TINY = r"""
#include <fleet/agent.h>
#include <fleet/error.h>
#include <stdio.h>

int main(int argc, char **argv) {
  agent_config cfg = {.id = "K1", .role = FL_ROLE_KIOSK, .db_path = argv[1],
                      .mqtt_uri = "tcp://127.0.0.1:1"};
  fl_agent *a = NULL;
  int rc = agent_create(&cfg, &a);
  printf("agent_create: %s\n", fl_strerror(rc));
  agent_destroy(a);
  return argc == 2 && rc == FL_OK ? 0 : 1;
}
"""


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    d = tmp_path_factory.mktemp("prefix")
    done = subprocess.run(["cmake", "--install", str(BUILD), "--prefix", str(d)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return d


def run(*cmd, env=None, cwd=None):
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd,
                          env=None if env is None else {**os.environ, **env}, timeout=60)
    assert done.returncode == 0, f"{cmd}: {done.stdout}{done.stderr}"
    return done.stdout


def test_what_is_installed(prefix):
    for f in ["bin/fleet-hub", "bin/fleet-agent", "bin/fleetctl", "bin/fleet-sim",
              "lib/systemd/system/fleet-hub.service", "lib/systemd/system/fleet-agent@.service",
              "lib/sysusers.d/fleet.conf", "etc/fleet/hub.ini", "etc/fleet/agent.ini",
              "include/fleet/agent.h", "lib/pkgconfig/fleetagent.pc"]:
        assert (prefix / f).exists(), f
    # the configs hold passwords: not for everyone to read
    assert (prefix / "etc/fleet/hub.ini").stat().st_mode & 0o777 == 0o640


def test_link_a_program_with_pkg_config(prefix, tmp_path):
    env = {"PKG_CONFIG_PATH": str(prefix / "lib" / "pkgconfig")}
    flags = run("pkg-config", "--cflags", "--libs", "fleetagent", env=env).split()
    assert f"-I{prefix}/lib/pkgconfig/../../include" in flags, flags  # relocatable
    (tmp_path / "tiny.c").write_text(TINY)
    # a sanitizer build installs instrumented libraries: a program links them
    # with the same runtime (docs: install from a plain build)
    cache = (BUILD / "CMakeCache.txt").read_text() if (BUILD / "CMakeCache.txt").exists() else ""
    sanitize = ["-fsanitize=address,undefined"] if "FLEET_SANITIZE:BOOL=ON" in cache else []
    run("cc", "-std=c11", "-Wall", "-Werror", *sanitize, "-o", tmp_path / "tiny", tmp_path / "tiny.c",
        *flags)
    assert "agent_create: success" in run(tmp_path / "tiny", tmp_path / "agent-K1.db")


def keys_in(ini):
    """{section: set of keys} named in ini, set or commented out ("; key = ...")."""
    keys, section = {}, None
    for line in ini.read_text().splitlines():
        m = re.match(r"\[(.+)\]$", line.strip())
        if m:
            section = keys.setdefault(m.group(1), set())
            continue
        m = re.match(r"[;#]?\s*([a-z0-9_]+)\s*=", line.strip())
        if m and section is not None:
            section.add(m.group(1))
    return keys


def effective(output):
    """[(section, key)] of a --check-config output ("payment.sim.latency_ms = 20")."""
    return [tuple(l.split(" = ")[0].rsplit(".", 1)) for l in output.splitlines() if " = " in l]


def test_example_configs_load_and_name_every_key(prefix):
    hub_ini, agent_ini = prefix / "etc/fleet/hub.ini", prefix / "etc/fleet/agent.ini"
    hub = effective(run(prefix / "bin/fleet-hub", "--check-config", "--config", hub_ini))
    agent = effective(run(prefix / "bin/fleet-agent", "run", "--check-config", "--config",
                          agent_ini))
    assert len(hub) > 30 and len(agent) > 15
    for ini, settings in ((hub_ini, hub), (agent_ini, agent)):
        named = keys_in(ini)
        missing = [f"{s}.{k}" for s, k in settings if k not in named.get(s, set())]
        assert not missing, f"{ini.name} does not document {missing}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="needs systemd-analyze (Debian package systemd)")
def test_units_verify(prefix, tmp_path):
    # The units name the configured prefix's programs; verify checks that
    # ExecStart exists, so point it at this temporary prefix.
    bindir = re.search(r"ExecStart=(\S+)/fleet-hub ",
                       (prefix / "lib/systemd/system/fleet-hub.service").read_text()).group(1)
    units = []
    for unit in ("fleet-hub.service", "fleet-agent@.service"):
        text = (prefix / "lib/systemd/system" / unit).read_text()
        (tmp_path / unit).write_text(text.replace(f"{bindir}/", f"{prefix}/bin/"))
        units.append(tmp_path / unit)
    done = subprocess.run(["systemd-analyze", "verify", *map(str, units)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stdout + done.stderr
