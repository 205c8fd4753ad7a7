"""QoS 1 publishes with MQTT 5 properties, on a persistent session, while
their connection is cut under them again and again: a TCP proxy
(tests/fault/tcpproxy.py) between the client and a real mosquitto resets
every connection (RST) at random moments, and the broker itself is stopped
and killed a few times. tests/fault/mqtt_resend_stress.c publishes through
fl_mqtt and reads everything back.

The reproducer of docs/architecture.md's "malformed packet": paho 1.3.12
frees the topic and payload of a QoS 1 publish whose write fails with a
socket error (MQTTAsync_processCommand's SOCKET_ERROR branch) while the copy
it keeps for resending still points at them; after the next reconnect with
the session present it resends that copy, built from freed memory, and
mosquitto drops the client for a malformed packet, on every reconnect.
Asserted: every PUBLISH on the wire has one of the topics sent, mosquitto
never says "malformed", every tagged publish is reported, nothing corrupt
is read back, the publisher exits cleanly."""
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import BUILD, Broker, per_test_timeout  # noqa: F401,E402
from tcpproxy import TcpProxy  # noqa: E402

SECONDS = int(os.environ.get("FLEET_TEST_RESEND_SECONDS", 30))
os.environ.setdefault("FLEET_TEST_TIMEOUT", str(SECONDS + 90))  # read by fleet.py
TOPIC = re.compile(rb"^stress/[0-7]$")


def test_resent_publishes_survive_cut_connections():
    rng = random.Random(int(os.environ.get("FLEET_TEST_SEED", time.time())))
    with Broker() as broker, TcpProxy(broker.port, log_publish=True) as proxy:
        stress = subprocess.Popen(
            [str(BUILD / "tests" / "mqtt_resend_stress"), proxy.uri, str(SECONDS), "stress-pub"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            end = time.monotonic() + SECONDS - 3
            time.sleep(1.0)
            cuts = 0
            while time.monotonic() < end:
                if cuts % 5 == 4:
                    (broker.stop if cuts % 10 == 4 else broker.kill)()
                    time.sleep(0.2)
                    broker.start()
                else:
                    proxy.reset_all()
                cuts += 1
                time.sleep(rng.uniform(1.5, 3.0))  # paho takes ~1 s to reconnect
            out, _ = stress.communicate(timeout=SECONDS + 40)
        finally:
            if stress.poll() is None:
                stress.kill()
                stress.wait()
        print(out)
        print(f"cuts={cuts} connections={proxy.connections} publishes_on_wire={len(proxy.publishes)}")
        bad = [p for p in proxy.publishes if not TOPIC.match(p[3])]
        assert not bad, f"{len(bad)} PUBLISH packets with a topic never sent, first: {bad[:5]}"
        malformed = [l for l in broker.log().splitlines() if "malformed" in l.lower()]
        assert not malformed, "mosquitto dropped a client for a malformed packet:\n" + \
            "\n".join(malformed[:10])
        reports = [l for l in out.splitlines()
                   if "ERROR: AddressSanitizer" in l or "runtime error:" in l]
        assert not reports, "sanitizer reports from the publisher:\n" + "\n".join(reports)
        assert "stress: published=" in out, out
        assert stress.returncode == 0, out
