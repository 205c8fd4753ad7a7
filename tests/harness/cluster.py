"""Helpers for the scale-out tests (tests/scaleout/): several fleet-hub
processes in cluster mode sharing one PostgreSQL database and one broker.

    pg, db = fleet.fresh_pg_database()
    a = cluster_hub(broker, pg, db, "hub-a")      # waits for /v1/health 200:
    b = cluster_hub(broker, pg, db, "hub-b")      # ready = holds its fair share
    owners(a)                                      # {partition: (owner, epoch, lease_until_ms)}
    partition_of("V1", 16)                         # FNV-1a 32 mod 16, as the hub
"""
import time

from fleet import Hub, wait_for

PARTITIONS = 16


def fnv1a32(text):
    """The 32-bit FNV-1a hash of text's UTF-8 bytes (common/src/partition.c)."""
    h = 2166136261
    for byte in text.encode():
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h


def partition_of(device, partitions=PARTITIONS):
    return fnv1a32(device) % partitions


def devices_in(partitions_wanted, per_partition_set, prefix, partitions=PARTITIONS):
    """Returns per_partition_set device ids named prefix<N> whose partitions
    lie in partitions_wanted (a set), the first found."""
    out, n = [], 0
    while len(out) < per_partition_set:
        n += 1
        dev = f"{prefix}{n}"
        if partition_of(dev, partitions) in partitions_wanted:
            out.append(dev)
    return out


def partitioned(partitions=PARTITIONS):
    """An Agent's config on the partitioned topic family (rev 1.2) of a fleet
    of that many partitions."""
    return {"mqtt": {"topic_family": "partitioned", "partitions": partitions}}


LEGACY = {"mqtt": {"topic_family": "legacy"}}  # an Agent's config on the topics of 1.0/1.1


def cluster_hub(broker, pg, database, hub_id, partitions=PARTITIONS, lease_ms=3000,
                settle_ms=1000, start=True, config=None, **settings):
    """A Hub in cluster mode on database of pg (a tests/harness/pg.py
    PgCluster), named hub_id (also its MQTT client id); hub.sql() reads the
    shared database."""
    sections = {"store": {"backend": "postgresql", "url": pg.url(database)},
                "cluster": {"enabled": "true", "partitions": partitions, "hub_id": hub_id,
                            "lease_ms": lease_ms, "settle_ms": settle_ms},
                "mqtt": {"client_id": hub_id}}
    for section, keys in (config or {}).items():
        sections.setdefault(section, {}).update(keys)
    hub = Hub(broker, start=False, config=sections, **settings)
    hub.pg, hub.pg_database, hub.hub_id = pg, database, hub_id
    if start:
        hub._start_or_close(True)
    return hub


def owners(hub):
    """{partition: (owner, epoch, lease_until_ms)} from the shared database."""
    return {p: (o, e, u) for p, o, e, u in
            hub.sql("SELECT part, owner, epoch, lease_until_ms FROM partitions ORDER BY part")}


def held_by(hub, hub_id):
    """The partitions whose lease hub_id holds now."""
    now = int(time.time() * 1000)
    return sorted(p for p, (o, _, u) in owners(hub).items() if o == hub_id and u > now)


def wait_balanced(hub, hub_ids, partitions=PARTITIONS, timeout=20):
    """Waits until every partition is held by one of hub_ids, each holding its
    fair share; returns {hub_id: [partitions]}."""
    def balanced():
        held = {h: held_by(hub, h) for h in hub_ids}
        n = len(hub_ids)
        fair = all(len(v) in (partitions // n, -(-partitions // n)) for v in held.values())
        return held if fair and sum(len(v) for v in held.values()) == partitions else None
    return wait_for(balanced, timeout, f"partitions balanced over {hub_ids}")
