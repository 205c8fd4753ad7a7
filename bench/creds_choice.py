#!/usr/bin/python3
"""Measures the three ways of giving devices broker credentials that
docs/operations.md ("Device credentials") chooses between, on mosquitto 2.0:

  (a) password file (mosquitto_passwd) + ACL file, reloaded with SIGHUP
  (b) client certificates signed by a fleet CA (openssl)
  (c) the dynamic-security plugin driven by mosquitto_ctrl

    /usr/bin/python3 bench/creds_choice.py [DEVICES]   (default 10000)

Prints one line per figure. Everything runs in a temporary directory on a
free loopback port; nothing is left behind."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "harness"))
from fleet import Broker, wait_for  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000


def can_connect(port, user, password):
    rc = []
    c = mqtt.Client(client_id=user, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    c.on_connect = lambda cl, ud, fl, r, p=None: rc.append(r.value if hasattr(r, "value") else r)
    try:
        c.connect("127.0.0.1", port)
    except OSError:
        return False
    c.loop_start()
    deadline = time.monotonic() + 5
    while not rc and time.monotonic() < deadline:
        time.sleep(0.005)
    c.disconnect()
    c.loop_stop()
    return bool(rc) and rc[0] == 0


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def password_file(d):
    plain = d / "passwd"
    plain.write_text("".join(f"D{i:05d}:secret-{i}\n" for i in range(N)) + "hub:hub\n")
    t = time.monotonic()
    subprocess.run(["mosquitto_passwd", "-U", str(plain)], check=True)
    hash_s = time.monotonic() - t
    acl = d / "acl"
    acl.write_text("user hub\ntopic readwrite fleet/v1/#\n" + "".join(
        f"user D{i:05d}\ntopic write fleet/v1/dev/D{i:05d}/up/#\n"
        f"topic read fleet/v1/dev/D{i:05d}/down/#\ntopic read fleet/v1/hub/status\n"
        for i in range(N)))
    plain.chmod(0o600)
    acl.chmod(0o600)
    print(f"(a) mosquitto_passwd -U, {N} passwords: {hash_s:.2f} s "
          f"({hash_s / N * 1000:.2f} ms each); files {plain.stat().st_size // 1024} KB + "
          f"{acl.stat().st_size // 1024} KB")
    with Broker(allow_anonymous="false", password_file=plain, acl_file=acl,
                use_username_as_clientid="true") as b:
        assert can_connect(b.port, "D00001", "secret-1")
        print(f"(a) broker RSS with {N} users: {rss_kb(b.proc.pid) // 1024} MB")
        # a new device, then SIGHUP: how long until it can log in
        line = subprocess.run(["mosquitto_passwd", "-c", "-b", str(d / "one"), "NEW", "pw"],
                              check=True) and (d / "one").read_text()
        with open(plain, "a") as f:
            f.write(line)
        with open(acl, "a") as f:
            f.write("user NEW\ntopic write fleet/v1/dev/NEW/up/#\n")
        kept = []  # a device connected across the reload
        c = mqtt.Client(client_id="D00002", protocol=mqtt.MQTTv5)
        c.username_pw_set("D00002", "secret-2")
        c.on_disconnect = lambda *a: kept.append("disconnected")
        c.connect("127.0.0.1", b.port)
        c.loop_start()
        time.sleep(0.5)
        t = time.monotonic()
        b.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: can_connect(b.port, "NEW", "pw"), 30, "NEW after SIGHUP")
        took = time.monotonic() - t
        time.sleep(0.5)
        print(f"(a) SIGHUP reload of {N} users until the new one connects: {took:.2f} s; "
              f"a device connected across the reload: {kept[0] if kept else 'kept'}")
        c.loop_stop()


def certificates(d):
    def ossl(*a):
        subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=fleet-ca", "-days", "2")
    n = 50
    t = time.monotonic()
    for i in range(n):
        ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"d{i}.key", "-out", f"d{i}.csr", "-subj", f"/CN=D{i:05d}")
        ossl("x509", "-req", "-in", f"d{i}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"d{i}.crt", "-days", "365")
    each = (time.monotonic() - t) / n
    print(f"(b) openssl key + CSR + signature: {each * 1000:.1f} ms per device "
          f"({each * N:.0f} s for {N}); revoking needs a CRL (crlfile) on every TLS listener")


def dynsec(d):
    conf = d / "dynsec.json"
    subprocess.run(["mosquitto_ctrl", "dynsec", "init", str(conf), "admin", "adminpw"],
                   check=True, capture_output=True)
    plugin = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
    with Broker(allow_anonymous="false", plugin=plugin, plugin_opt_config_file=conf) as b:
        def ctrl(*a):
            subprocess.run(["mosquitto_ctrl", "-h", "127.0.0.1", "-p", str(b.port), "-u", "admin",
                            "-P", "adminpw", "dynsec", *a], check=True, capture_output=True)
        n = 200
        t = time.monotonic()
        for i in range(n):
            ctrl("createClient", f"D{i:05d}", "-p", f"secret-{i}")
        first = (time.monotonic() - t) / n
        t = time.monotonic()
        for i in range(n, n + 50):
            ctrl("createClient", f"D{i:05d}", "-p", f"secret-{i}")
        later = (time.monotonic() - t) / 50
        assert can_connect(b.port, "D00003", "secret-3")
        print(f"(c) mosquitto_ctrl dynsec createClient: {first * 1000:.0f} ms each for the first "
              f"{n}, {later * 1000:.0f} ms each at {n}..{n + 50} (the plugin rewrites "
              f"{conf.name}, {conf.stat().st_size // 1024} KB, at every change); "
              f"{first * N:.0f} s for {N} at the first rate")


def main():
    d = Path(tempfile.mkdtemp(prefix="fleet-creds-bench-"))
    try:
        for f in (password_file, certificates, dynsec):
            sub = d / f.__name__
            sub.mkdir()
            f(sub)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
