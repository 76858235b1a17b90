#!/usr/bin/env python3
"""The consumer-group loop most users start from, as a benchmark reference
for Shoal's Kafka -> filter -> Kafka pipeline (benches/src/kafka.rs runs it).

confluent-kafka: subscribe as a member of GROUP, consume JSON records from
INPUT, keep those with amount >= 50, produce them (keyed by card, JSON) to
OUTPUT, commit offsets asynchronously after each consumed batch. That is
at-least-once (no transactions), like most hand-written loops.

Stops after reading RECORDS records, flushes the producer and prints one
JSON object: records read and written, wall seconds (from start, group join
included) and CPU seconds of this process (all threads, librdkafka's too).

    python3 scripts/kafka_loop_bench.py --brokers 127.0.0.1:9092 \
        --input in --output out --group g --records 200000
"""

import argparse
import json
import resource
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--records", type=int, required=True)
    ap.add_argument("--session-timeout-ms", type=int, default=2000)
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()

    t0, c0 = time.monotonic(), cpu_seconds()
    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": args.session_timeout_ms,
            "heartbeat.interval.ms": max(100, args.session_timeout_ms // 4),
        }
    )
    producer = Producer(
        {"bootstrap.servers": args.brokers, "linger.ms": 5, "enable.idempotence": True}
    )
    consumer.subscribe([args.input])
    read = written = 0
    while read < args.records:
        if time.monotonic() - t0 > args.timeout:
            print(f"timed out after reading {read} of {args.records}", file=sys.stderr)
            sys.exit(1)
        msgs = consumer.consume(num_messages=1000, timeout=0.1)
        for m in msgs:
            if m.error():
                raise KafkaException(m.error())
            read += 1
            rec = json.loads(m.value())
            if rec["amount"] >= 50:
                while True:
                    try:
                        producer.produce(
                            args.output, key=str(rec["card"]), value=json.dumps(rec)
                        )
                        break
                    except BufferError:
                        producer.poll(0.01)
                written += 1
        producer.poll(0)
        if msgs:
            consumer.commit(asynchronous=True)
    producer.flush(30)
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as e:
        if e.args[0].code() != KafkaError._NO_OFFSET:  # nothing new to commit
            raise
    consumer.close()
    print(
        json.dumps(
            {
                "read": read,
                "written": written,
                "wall": time.monotonic() - t0,
                "cpu": cpu_seconds() - c0,
            }
        )
    )


if __name__ == "__main__":
    main()
