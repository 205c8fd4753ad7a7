"""fleet-hub refuses a bad configuration with a clear message and exit 2,
and takes environment overrides."""
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import BUILD, per_test_timeout  # noqa: F401,E402

HUB = str(BUILD / "hub" / "fleet-hub")


def run_hub(*args, env=None, ini=None, tmp_path=None):
    cmd = [HUB, *args]
    if ini is not None:
        path = tmp_path / "hub.ini"
        path.write_text(ini)
        cmd += ["--config", str(path)]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_HUB_")}
    full_env.update(env or {})
    return subprocess.run(cmd + ["--check-config"], capture_output=True, text=True,
                          env=full_env, timeout=30)


def test_out_of_range_value_names_the_key(tmp_path):
    done = run_hub(ini="[payment.sim]\ndecline_rate = 2\n", tmp_path=tmp_path)
    assert done.returncode == 2
    assert "[payment.sim] decline_rate" in done.stderr and "between 0 and 1" in done.stderr


def test_syntax_error_names_the_line(tmp_path):
    done = run_hub(ini="[hub]\nstate_dir = x\nthis is not ini\n", tmp_path=tmp_path)
    assert done.returncode == 2 and "line 3" in done.stderr


def test_missing_file(tmp_path):
    done = subprocess.run([HUB, "--config", str(tmp_path / "nope.ini")], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and "cannot open" in done.stderr


def test_environment_overrides_file(tmp_path):
    done = run_hub(ini="[mqtt]\nuri = tcp://127.0.0.1:1\n", tmp_path=tmp_path,
                   env={"FLEET_HUB_MQTT_URI": "tcp://127.0.0.1:2"})
    assert done.returncode == 0 and "mqtt.uri = tcp://127.0.0.1:2" in done.stdout


def test_bad_environment_value(tmp_path):
    done = run_hub(env={"FLEET_HUB_STORE_DURABILITY": "sometimes"})
    assert done.returncode == 2 and "durability" in done.stderr
