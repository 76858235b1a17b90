"""Produce Protobuf card transactions to a Kafka topic the way other
programs do: confluent-kafka's ProtobufSerializer against a schema registry
(Confluent wire format: schema id and message indexes; TopicNameStrategy
subject `<topic>-value`; schemas registered on first use).

    produce.py BROKERS REGISTRY TOPIC N1 N2

writes N1 records of message `shoal.test.Txn` version 1, then N2 of version
2 (an added field `channel`), then four records no consumer can read: an
unknown schema id, a version-1 message cut short, a `shoal.test.Refund`
(another message type of the same schema), and a record framed with the id
of an Avro schema. Prints a JSON summary (schema ids; the partition and
offset of each bad record) on stdout.

The message classes are built from descriptors at run time (no protoc).
"""

import json
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

brokers, registry, topic, n1, n2 = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
F = descriptor_pb2.FieldDescriptorProto


def classes(with_channel):
    """Txn and Refund of one schema version, in a pool of their own."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="shoal/txn.proto",
        package="shoal.test",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )
    txn = fdp.message_type.add(name="Txn")
    txn.field.add(name="txn_id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    txn.field.add(name="card_id", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    txn.field.add(name="amount", number=3, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    txn.field.add(name="ts", number=4, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp",
                  label=F.LABEL_OPTIONAL)
    if with_channel:
        txn.field.add(name="channel", number=5, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    refund = fdp.message_type.add(name="Refund")
    refund.field.add(name="refund_id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(fdp)
    get = lambda n: message_factory.GetMessageClass(pool.FindMessageTypeByName(n))
    return get("shoal.test.Txn"), get("shoal.test.Refund")


client = SchemaRegistryClient({"url": registry})
ctx = SerializationContext(topic, MessageField.VALUE)
producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5})
bad = []
conf = {"use.deprecated.format": False}


def sent(err, msg, note=None):
    if err is not None:
        raise SystemExit(f"delivery failed: {err}")
    if note is not None:
        bad.append({"what": note, "partition": msg.partition(), "offset": msg.offset()})


def record(cls, i, with_channel):
    m = cls(txn_id=f"t{i}", card_id=i % 97, amount=i * 1.25)
    m.ts.seconds = 1767225600 + i
    if with_channel:
        m.channel = ["web", "pos", "app"][i % 3]
    return m


Txn1, Refund1 = classes(False)
Txn2, _ = classes(True)
v1 = ProtobufSerializer(Txn1, client, conf)
for i in range(n1):
    producer.produce(topic, key=str(i % 97), value=v1(record(Txn1, i, False), ctx), on_delivery=sent)
producer.flush()
v2 = ProtobufSerializer(Txn2, client, conf)
for i in range(n1, n1 + n2):
    producer.produce(topic, key=str(i % 97), value=v2(record(Txn2, i, True), ctx), on_delivery=sent)
producer.flush()

first = v1(record(Txn1, 0, False), ctx)
v1_id = int.from_bytes(first[1:5], "big")
v2_id = int.from_bytes(v2(record(Txn2, 0, True), ctx)[1:5], "big")
avro_id = client.register_schema(
    f"{topic}-avro-value",
    Schema(json.dumps({"type": "record", "name": "X", "fields": [{"name": "a", "type": "long"}]}), "AVRO"),
)
# The Refund type is message index 1 of version 1's schema: frame it by hand
# with that schema's id (the serializer would look up a subject of its own).
refund_body = Refund1(refund_id="r1").SerializeToString()
bad_records = [
    ("unknown id", b"\x00" + (999999).to_bytes(4, "big") + b"\x00" + record(Txn1, 1, False).SerializeToString()),
    ("truncated", first[:-3]),
    ("other type", b"\x00" + v1_id.to_bytes(4, "big") + b"\x02\x02" + refund_body),
    ("avro", b"\x00" + avro_id.to_bytes(4, "big") + b"\x02"),
]
for note, value in bad_records:
    producer.produce(topic, key="bad", value=value, on_delivery=lambda e, m, n=note: sent(e, m, n))
producer.flush()
print(json.dumps({"ids": {"v1": v1_id, "v2": v2_id, "avro": avro_id}, "bad": bad}))
