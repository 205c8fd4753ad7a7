"""A TCP proxy on a free 127.0.0.1 port in front of a broker, for fault tests
that need to break MQTT connections without stopping the broker.

    with TcpProxy(broker.port) as proxy:
        uri = proxy.uri                 # give this to the client
        proxy.reset_all()               # every open connection gets an RST
        proxy.drop_next(3, after_s=0.5, client_id="fleet-hub")
                                        # the next 3 connections of that
                                        # client are closed 0.5 s after
                                        # their CONNECT

With log_publish=True it parses the client-to-broker stream into MQTT
packets and keeps every PUBLISH (header flags, packet id, topic bytes) in
proxy.publishes, so that a test can show the bytes a client sent."""
import select
import socket
import struct
import threading
import time

LOOPBACK = "127.0.0.1"


def _free_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class _Conn:
    """One proxied connection: the client's socket and the broker's."""

    def __init__(self, client, upstream, n):
        self.client, self.upstream, self.n = client, upstream, n
        self.opened = time.monotonic()
        self.closed = False
        self.buf = b""  # client-to-broker bytes not yet parsed into packets
        self.client_id = None  # from its CONNECT
        self.drop_at = None


class TcpProxy:
    def __init__(self, target_port, log_publish=False):
        self.target_port = target_port
        self.port = _free_port()
        self.uri = f"tcp://{LOOPBACK}:{self.port}"
        self.log_publish = log_publish
        self.publishes = []  # (connection number, flags, packet id or None, topic bytes)
        self.connections = 0  # accepted so far
        self.dropped = 0  # closed by drop_next
        self._lock = threading.Lock()
        self._conns = []
        self._drop = []  # [(client id or None, after_s)] for the next connections
        self._stop = False
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, self.port))
        self._listener.listen(64)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    # -- faults
    def drop_next(self, n, after_s, client_id=None):
        """Closes each of the next n connections (of client_id only, when
        given) after_s seconds after its CONNECT."""
        with self._lock:
            self._drop += [(client_id, after_s)] * n

    def pending_drops(self):
        """The number of drops asked for that no connection has taken yet."""
        with self._lock:
            return len(self._drop)

    def reset_all(self):
        """Ends every open connection with an RST to the client (and closes
        the broker's side): the client's next write fails."""
        with self._lock:
            conns = [c for c in self._conns if not c.closed]
        for c in conns:
            self._close(c, rst=True)

    # -- the loop
    def _close(self, c, rst):
        with self._lock:
            if c.closed:
                return
            c.closed = True
        if rst:
            try:
                c.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        for s in (c.client, c.upstream):
            try:
                s.close()
            except OSError:
                pass

    def _parse(self, c, data):
        """Collects the PUBLISH packets of the client-to-broker stream."""
        c.buf += data
        while len(c.buf) >= 2:
            mult, length, i = 1, 0, 1
            while True:
                if i >= len(c.buf):
                    return
                b = c.buf[i]
                length += (b & 0x7F) * mult
                mult *= 128
                i += 1
                if not b & 0x80:
                    break
            if len(c.buf) < i + length:
                return
            packet, c.buf = c.buf[:i + length], c.buf[i + length:]
            if packet[0] >> 4 == 1 and c.client_id is None:
                self._connected(c, packet[i:])
            if packet[0] >> 4 == 3 and self.log_publish:
                body = packet[i:]
                tlen = int.from_bytes(body[:2], "big")
                topic = body[2:2 + tlen]
                qos = (packet[0] >> 1) & 3
                pid = int.from_bytes(body[2 + tlen:4 + tlen], "big") if qos else None
                self.publishes.append((c.n, packet[0] & 0x0F, pid, topic))

    def _connected(self, c, body):
        """A CONNECT: notes its client id, and plans its drop if asked."""
        try:
            n = int.from_bytes(body[:2], "big")
            pos = 2 + n
            level = body[pos]
            pos += 4  # level, flags, keep alive
            if level >= 5:  # properties: a variable byte integer length
                mult, plen = 1, 0
                while True:
                    b = body[pos]
                    pos += 1
                    plen += (b & 0x7F) * mult
                    mult *= 128
                    if not b & 0x80:
                        break
                pos += plen
            n = int.from_bytes(body[pos:pos + 2], "big")
            c.client_id = body[pos + 2:pos + 2 + n].decode(errors="replace")
        except IndexError:
            c.client_id = ""
        with self._lock:
            for k, (cid, after_s) in enumerate(self._drop):
                if cid is None or cid == c.client_id:
                    c.drop_at = time.monotonic() + after_s
                    del self._drop[k]
                    break

    def _run(self):
        while not self._stop:
            with self._lock:
                conns = [c for c in self._conns if not c.closed]
            now = time.monotonic()
            for c in conns:
                if c.drop_at is not None and now >= c.drop_at:
                    self.dropped += 1
                    self._close(c, rst=False)
            socks = [self._listener]
            for c in conns:
                if not c.closed:
                    socks += [c.client, c.upstream]
            try:
                readable, _, _ = select.select(socks, [], [], 0.02)
            except (OSError, ValueError):
                continue  # a socket closed meanwhile
            for s in readable:
                if s is self._listener:
                    self._accept()
                    continue
                c = next((c for c in conns if s in (c.client, c.upstream)), None)
                if c is None or c.closed:
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self._close(c, rst=False)
                    continue
                other = c.upstream if s is c.client else c.client
                if s is c.client and (self.log_publish or c.client_id is None):
                    self._parse(c, data)
                try:
                    other.sendall(data)
                except OSError:
                    self._close(c, rst=False)

    def _accept(self):
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection((LOOPBACK, self.target_port), timeout=2)
        except OSError:
            client.close()  # the broker is away: so is the proxy
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        upstream.settimeout(None)
        with self._lock:
            self.connections += 1
            self._conns.append(_Conn(client, upstream, self.connections))

    def close(self):
        self._stop = True
        self._thread.join(timeout=5)
        for c in list(self._conns):
            self._close(c, rst=False)
        self._listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
