"""systemd readiness and watchdog (dist/systemd, common/src/sdnotify.c): the
hub and the agent, started with NOTIFY_SOCKET naming a datagram socket this
test listens on (as systemd does for Type=notify), and WATCHDOG_USEC.

- The hub says READY=1 only once its engine is ready and MQTT connected: not
  while the broker is down, at once when it comes up; WATCHDOG=1 every half
  WATCHDOG_USEC while its engine makes progress; STOPPING=1 on SIGTERM.
- The agent says READY=1 when its control socket serves (broker or not),
  then WATCHDOG=1 from its loop.
"""
import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from fleet import Agent, Broker, Hub, per_test_timeout, wait_for  # noqa: E402,F401

WATCHDOG_USEC = 400_000  # the programs ping every 0.2 s


class Listener:
    """A datagram socket standing in for systemd's notification socket."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.got = []  # (monotonic time, datagram text)

    def drain(self):
        while True:
            try:
                self.got.append((time.monotonic(), self.sock.recv(4096).decode()))
            except BlockingIOError:
                return self.got

    def states(self):
        return [line for _, text in self.drain() for line in text.split("\n")]

    def close(self):
        self.sock.close()


@pytest.fixture
def listener(tmp_path):
    lst = Listener(tmp_path / "notify.sock")
    yield lst
    lst.close()


class UnreadyHub(Hub):
    """A hub whose start() does not wait for /v1/health: its broker may be down."""

    def wait_ready(self, timeout):
        time.sleep(0.2)
        self._check_alive()


def test_hub_ready_after_mqtt_and_watchdog_while_engine_runs(listener):
    env = {"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    with Broker(start=False) as broker, UnreadyHub(broker, env=env) as hub:
        # the broker is down: the engine runs (watchdog) but the hub is not ready
        wait_for(lambda: listener.states().count("WATCHDOG=1") >= 3, 10, "watchdog pings")
        assert "READY=1" not in listener.states()
        broker.start()
        wait_for(lambda: "READY=1" in listener.states(), 20, "READY=1 once MQTT is connected")
        status, health = hub.api("GET", "/v1/health")
        assert status == 200 and health["ready"], health
        # pings keep coming, about every WATCHDOG_USEC / 2
        n = listener.states().count("WATCHDOG=1")
        time.sleep(1.5)
        later = listener.states().count("WATCHDOG=1")
        assert 4 <= later - n <= 9, (n, later)
        assert hub.stop() == 0
        assert "STOPPING=1" in listener.states()


def test_hub_without_notify_socket_sends_nothing(listener):
    with Broker() as broker, Hub(broker, env={"WATCHDOG_USEC": str(WATCHDOG_USEC)}):
        time.sleep(0.5)
        assert listener.states() == []


def test_agent_ready_and_watchdog(listener):
    env = {"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    with Broker(start=False) as broker, Agent(broker, "K1", env=env) as agent:
        wait_for(lambda: "READY=1" in listener.states(), 10, "the agent's READY=1")
        wait_for(lambda: listener.states().count("WATCHDOG=1") >= 3, 10, "agent watchdog pings")
        assert agent.stop() == 0
        assert "STOPPING=1" in listener.states()
