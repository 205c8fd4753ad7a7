"""QoS 1 publishes with MQTT 5 properties, on a persistent session, while the
broker is stopped (SIGTERM: it saves the session) and killed (SIGKILL) under
them again and again (tests/fault/mqtt_resend_stress.c does the publishing
and reads everything back).

The reproducer of docs/architecture.md's "malformed packet": paho 1.3.12
frees the topic and payload of a QoS 1 publish whose write fails with a
socket error (MQTTAsync_processCommand's SOCKET_ERROR branch) while the copy
it keeps for resending still points at them; after the next reconnect with
the session present it resends that copy, built from freed memory, and
mosquitto drops the client for a malformed packet, on every reconnect.
Asserted: mosquitto never says "malformed", every tagged publish is
reported, nothing corrupt is read back."""
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import BUILD, Broker, per_test_timeout  # noqa: F401,E402

ROUNDS = int(os.environ.get("FLEET_TEST_RESEND_ROUNDS", 8))


def test_resent_publishes_survive_broker_restarts():
    with Broker() as broker:
        seconds = ROUNDS * 3 + 2
        stress = subprocess.Popen(
            [str(BUILD / "tests" / "mqtt_resend_stress"), broker.uri, str(seconds), "stress-pub"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(1.5)
            for i in range(ROUNDS):
                if i % 2 == 0:
                    broker.stop()   # saves the sessions: paho resends on reconnect
                else:
                    broker.kill()   # the sessions since the last save are lost
                time.sleep(0.3)
                broker.start()
                time.sleep(2.4)
            out, _ = stress.communicate(timeout=seconds + 60)
        finally:
            if stress.poll() is None:
                stress.kill()
                stress.wait()
        log = broker.log()
        print(out)
        malformed = [l for l in log.splitlines() if "malformed" in l.lower()]
        assert not malformed, "mosquitto dropped a client for a malformed packet:\n" + \
            "\n".join(malformed[:10])
        assert "stress: published=" in out, out
        assert stress.returncode == 0, out
