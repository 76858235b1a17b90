"""Produce Avro card transactions to a Kafka topic the way other programs
do: confluent-kafka's AvroSerializer against a schema registry (Confluent
wire format, TopicNameStrategy subject `<topic>-value`, schemas registered
on first use).

    produce.py BROKERS REGISTRY TOPIC N1 N2 [FIRST [clean]]

writes N1 records with schema version 1 (numbered from FIRST, default 0),
then N2 with version 2 (an added field `channel` with a default), then —
unless `clean` is given — three records no consumer can decode:
an unknown schema id, a version-1 record cut short, and a record framed
with the id of a Protobuf schema. Prints a JSON summary (schema ids; the
partition and offset of each bad record) on stdout.
"""

import json
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

brokers, registry, topic, n1, n2 = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
first = int(sys.argv[6]) if len(sys.argv) > 6 else 0
clean = len(sys.argv) > 7 and sys.argv[7] == "clean"

V1 = {
    "type": "record",
    "name": "Txn",
    "namespace": "shoal.test",
    "fields": [
        {"name": "txn_id", "type": "string"},
        {"name": "card_id", "type": "long"},
        {"name": "amount", "type": "double"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
V2 = dict(V1, fields=V1["fields"] + [{"name": "channel", "type": "string", "default": "web"}])

client = SchemaRegistryClient({"url": registry})
ctx = SerializationContext(topic, MessageField.VALUE)
producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5})
bad = []


def sent(err, msg, note=None):
    if err is not None:
        raise SystemExit(f"delivery failed: {err}")
    if note is not None:
        bad.append({"what": note, "partition": msg.partition(), "offset": msg.offset()})


def record(i, with_channel):
    r = {"txn_id": f"t{i}", "card_id": i % 97, "amount": i * 1.25, "ts": 1767225600000 + i * 1000}
    if with_channel:
        r["channel"] = ["web", "pos", "app"][i % 3]
    return r


v1 = AvroSerializer(client, json.dumps(V1))
for i in range(first, first + n1):
    producer.produce(topic, key=str(i % 97), value=v1(record(i, False), ctx), on_delivery=sent)
producer.flush(30)
v2 = AvroSerializer(client, json.dumps(V2))
for i in range(first + n1, first + n1 + n2):
    producer.produce(topic, key=str(i % 97), value=v2(record(i, True), ctx), on_delivery=sent)
producer.flush(30)

ids = {"v1": client.lookup_schema(f"{topic}-value", Schema(json.dumps(V1), "AVRO")).schema_id}
if n2 > 0:
    ids["v2"] = client.lookup_schema(f"{topic}-value", Schema(json.dumps(V2), "AVRO")).schema_id
if clean:
    print(json.dumps({"ids": ids, "bad": bad}))
    sys.exit(0)
body = v1(record(0, False), ctx)
unknown = b"\x00" + (999999).to_bytes(4, "big") + body[5:]
producer.produce(topic, key="0", value=unknown, on_delivery=lambda e, m: sent(e, m, "unknown id"))
producer.produce(topic, key="0", value=body[:-3], on_delivery=lambda e, m: sent(e, m, "truncated"))
proto = 'syntax = "proto3"; package shoal.test; message Login { string user = 1; int64 at = 2; }'
ids["protobuf"] = client.register_schema(f"{topic}-login-value", Schema(proto, "PROTOBUF"))
# Confluent's Protobuf framing: magic, id, message indexes (0: the first), body.
login = b"\x00" + ids["protobuf"].to_bytes(4, "big") + b"\x00" + b"\x0a\x03bob\x10\x07"
producer.produce(topic, key="0", value=login, on_delivery=lambda e, m: sent(e, m, "protobuf"))
producer.flush(30)
print(json.dumps({"ids": ids, "bad": bad}))
