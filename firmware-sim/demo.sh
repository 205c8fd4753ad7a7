#!/usr/bin/env bash
# The demo: a broker, the hub and a simulated fleet (6 vehicles, 2 kiosks) on
# this machine for about half a minute. Installs and builds what is missing
# first. Ctrl-C stops everything it started.
#   DEMO_SECONDS=60 firmware-sim/demo.sh   for a longer run
#   DEMO_TOKENS=1 firmware-sim/demo.sh     the operator API with a token (printed)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$repo/build
seconds=${DEMO_SECONDS:-30}
state=${DEMO_STATE_DIR:-$repo/demo-state}

echo "demo: installing what is missing and building (log: $state/build.log)"
mkdir -p "$state"
if ! bash "$repo/tests/setup.sh" "$build" > "$state/build.log" 2>&1; then
  tail -30 "$state/build.log"
  exit 1
fi
rm -rf "$state/hub" "$state/sim" "$state/broker"
mkdir -p "$state/broker"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mqtt_port=$(free_port)
http_port=$(free_port)
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "demo: stopped broker, hub and fleet; state and logs are in $state"
}
trap cleanup INT TERM EXIT

cat > "$state/broker/mosquitto.conf" <<CONF
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $state/broker/
max_queued_messages 100000
set_tcp_nodelay true
CONF
/usr/sbin/mosquitto -c "$state/broker/mosquitto.conf" > "$state/broker.log" 2>&1 &
pids+=($!)

# DEMO_TOKENS=1: the API wants a bearer token (docs/operations.md, Operator
# API access); the demo makes one operator token and hands it to fleetctl and
# fleet-sim through FLEET_TOKEN. Without it the API is open on loopback.
tokens_line=""
if [ "${DEMO_TOKENS:-0}" = 1 ]; then
  { read -r FLEET_TOKEN; read -r line; } < <("$build/hub/fleetctl" token new operator demo 2>/dev/null)
  printf '# role sha256 name (fleetctl token new ROLE NAME)\n%s\n' "$line" > "$state/tokens"
  export FLEET_TOKEN
  tokens_line="tokens_file = $state/tokens"
fi

cat > "$state/hub.ini" <<CONF
[hub]
state_dir = $state/hub
[mqtt]
uri = tcp://127.0.0.1:$mqtt_port
[http]
port = $http_port
$tokens_line
[engine]
# a rental minute lasts 1 s, so that late returns (and their fees) happen in the demo
minute_ms = 1000
[payment.sim]
latency_ms = 40
decline_rate = 0.1
CONF
"$build/hub/fleet-hub" --config "$state/hub.ini" > "$state/hub.log" 2>&1 &
hub_pid=$!
pids=("$hub_pid" "${pids[@]}")
hub=http://127.0.0.1:$http_port
for _ in $(seq 50); do
  "$build/hub/fleetctl" --hub "$hub" status > /dev/null 2>&1 && break
  sleep 0.2
done

cat <<TXT
demo: broker on tcp://127.0.0.1:$mqtt_port, hub on $hub (open it in a browser for the console)
demo: running 6 vehicles and 2 kiosks for $seconds s; hub log: $state/hub.log
TXT
if [ -n "$tokens_line" ]; then
  cat <<TXT
demo: the API wants a token; log in as the demo's operator with
demo:   export FLEET_TOKEN=$FLEET_TOKEN
demo:   (or fleetctl --token $FLEET_TOKEN ...; HTTP: Authorization: Bearer $FLEET_TOKEN)
demo: tokens file: $state/tokens (more: build/hub/fleetctl token new viewer|mechanic|operator NAME)
TXT
else
  echo "demo: the API is open on loopback (no tokens; DEMO_TOKENS=1 runs it with one)"
fi
set +e
"$build/firmware-sim/fleet-sim" --broker "tcp://127.0.0.1:$mqtt_port" --hub "$hub" \
  --state-dir "$state/sim" --register --vehicles 6 --kiosks 2 --duration "$seconds" \
  --rate 0.8 --ride 3..8 --cancel-share 0.3 --late-share 0.15 --book-share 0.15 --minute-ms 1000 \
  --faults-per-min 2 --seed "${DEMO_SEED:-1}" &
sim_pid=$!
pids=("$sim_pid" "${pids[@]}")
wait "$sim_pid"
sim_status=$?
set -e

echo
echo "demo: the fleet as the operator sees it (build/hub/fleetctl --hub $hub vehicles):"
"$build/hub/fleetctl" --hub "$hub" vehicles || true
echo
echo "demo: latest rentals (fleetctl --hub $hub rentals):"
"$build/hub/fleetctl" --hub "$hub" rentals | head -12 || true
echo
echo "demo: more views: fleetctl --hub $hub repairs | status | customer C0001 | dead-letters"
if [ -t 0 ]; then
  echo "demo: the hub keeps running so you can look around; press Ctrl-C to stop everything."
  wait "$hub_pid" || true
fi
exit "$sim_status"
