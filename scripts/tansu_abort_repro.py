#!/usr/bin/env python3
"""Minimal reproduction, against the broker alone, of the transaction fault
that Shoal's exactly-once Kafka tests must work around on tansu 0.6.0:

  records of an ABORTED transaction are still delivered to a consumer with
  isolation.level=read_committed.

It produces 5 records in a transaction that is committed and 5 in one that
is aborted (explicitly, and a second time by fencing: a new producer with
the same transactional.id), then reads the topic with read_committed.

Exit 0: the broker hides aborted records (correct). Exit 1: it leaks them
(the tansu 0.6.0 bug). Exit 2: something else went wrong.

Usage: scripts/tansu_abort_repro.py [BROKERS]   (default $SHOAL_KAFKA_BROKERS
or 127.0.0.1:9092)
"""
import os
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def main() -> int:
    brokers = (sys.argv[1] if len(sys.argv) > 1
               else os.environ.get("SHOAL_KAFKA_BROKERS", "127.0.0.1:9092"))
    topic = "abort-repro-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": brokers})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)

    p = Producer({"bootstrap.servers": brokers, "transactional.id": topic + "-a"})
    p.init_transactions(10)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=b"committed-%d" % i)
    p.commit_transaction(10)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=b"aborted-%d" % i)
    p.flush(10)
    p.abort_transaction(10)

    # A zombie's open transaction, aborted by fencing.
    z = Producer({"bootstrap.servers": brokers, "transactional.id": topic + "-b"})
    z.init_transactions(10)
    z.begin_transaction()
    for i in range(5):
        z.produce(topic, value=b"fenced-%d" % i)
    z.flush(10)
    f = Producer({"bootstrap.servers": brokers, "transactional.id": topic + "-b"})
    f.init_transactions(10)

    c = Consumer({"bootstrap.servers": brokers, "group.id": topic,
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    seen = []
    deadline = time.time() + 5
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            seen.append(m.value().decode())
    c.close()
    committed = [v for v in seen if v.startswith("committed")]
    leaked = [v for v in seen if not v.startswith("committed")]
    print(f"broker {brokers}, topic {topic}: read_committed saw {len(committed)} "
          f"committed and {len(leaked)} aborted records")
    if len(committed) != 5:
        print("unexpected: committed records missing", file=sys.stderr)
        return 2
    if leaked:
        print("BROKER FAULT: aborted transaction records are visible to read_committed: "
              + ", ".join(leaked))
        return 1
    print("ok: aborted records are hidden")
    return 0


if __name__ == "__main__":
    sys.exit(main())
