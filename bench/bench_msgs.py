"""bench/run msgs: where a rental's broker messages go, topic by topic.

Each run: a fresh mosquitto ($SYS every second) and hub, --lanes kiosks of
fleet-loadgen saga renting and returning their own vehicles as fast as the
hub answers for --seconds, and a subscriber to fleet/# counting every
message the broker relays by topic kind (device ids and partitions folded:
fleet/v1/p/N/dev/D/down/reply). fleet-loadgen counts the broker's own
publishes ($SYS/broker/publish/messages/received) around the run, draining
the rentals under way so that every message belongs to a counted rental.

Figures: msgs_<topic kind>_per_rental for each kind seen, and the headline
saga_msgs_per_rental (the broker's count). Hub settings and the devices'
topic family come from bench/run's --set and --family, so that revision
1.1's behaviour can be measured beside 1.2's:

  bench/run msgs --family legacy --set mqtt.notify=each \\
      --set mqtt.rental_states=true --set mqtt.state_interval_ms=0"""
import collections
import re
import threading
import time

import paho.mqtt.client as mqtt

from bench import bench_hub, loadgen, register, progress
from fleet import Broker


def kind_of(topic):
    """fleet/v1/p/17/dev/K3/down/reply -> fleet/v1/p/N/dev/D/down/reply, and
    fleet/v1/state/vehicle/V3 -> fleet/v1/state/vehicle/X."""
    t = re.sub(r"/p/\d+/", "/p/N/", topic)
    t = re.sub(r"/dev/[^/]+/", "/dev/D/", t)
    return re.sub(r"/(state/\w+)/.*", r"/\1/X", t)


def run(args):
    counts = collections.Counter()
    lock = threading.Lock()
    figures = {}
    with Broker(sys_interval=1) as broker:
        hub = bench_hub(broker, args, latency_ms=0)
        try:
            register(hub, "max-V", args.lanes)
            sub = mqtt.Client(client_id="bench-msgs", protocol=mqtt.MQTTv5)

            def on_message(client, userdata, msg):
                with lock:
                    counts[kind_of(msg.topic)] += 1
            sub.on_message = on_message
            sub.connect("127.0.0.1", broker.port)
            sub.loop_start()
            sub.subscribe("fleet/#", qos=1)
            time.sleep(1)
            progress(f"msgs: {args.lanes} kiosks, {args.seconds:.0f} s")
            out = loadgen("saga", "--broker", broker.uri, "--lanes", args.lanes, "--seconds",
                          args.seconds, "--rate", 0, "--window", 256, "--prefix", "max-",
                          "--count-broker", "--family", args.family)
            sub.disconnect()
            sub.loop_stop()
            rentals = out["saga_rentals_counted"]
            with lock:
                for kind, n in sorted(counts.items()):
                    figures["msgs_" + kind.replace("fleet/v1/", "").replace("/", "_") +
                            "_per_rental"] = n / rentals
            figures["saga_completed_rentals_per_s"] = out["saga_completed_rentals_per_s"]
            figures["saga_msgs_per_rental"] = out["saga_msgs_per_rental"]
        finally:
            hub.stop()
            hub.close()
    return figures
