"""Read every record of a topic with confluent-kafka's ProtobufDeserializer
(the Confluent framing: schema id and message indexes) as `shoal.alerts.Alert`
until nothing new arrives for 3 s; print one JSON object on stdout: the
records, and each schema id seen with what the registry holds under it.

    consume.py BROKERS REGISTRY TOPIC

The message class is built from a descriptor at run time (no protoc); it
matches pipelines/schemas/alerts.proto.
"""

import json
import sys
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.json_format import MessageToDict

brokers, registry, topic = sys.argv[1:4]
F = descriptor_pb2.FieldDescriptorProto
fdp = descriptor_pb2.FileDescriptorProto(
    name="alerts.proto", package="shoal.alerts", syntax="proto3",
    dependency=["google/protobuf/timestamp.proto"],
)
alert = fdp.message_type.add(name="Alert")
alert.field.add(name="txn_id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
alert.field.add(name="card_id", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
alert.field.add(name="amount", number=3, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
alert.field.add(name="ts", number=4, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp",
                label=F.LABEL_OPTIONAL)
alert.field.add(name="channel", number=5, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
pool = descriptor_pool.DescriptorPool()
pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
pool.Add(fdp)
Alert = message_factory.GetMessageClass(pool.FindMessageTypeByName("shoal.alerts.Alert"))

deserialize = ProtobufDeserializer(Alert, {"use.deprecated.format": False})
client = SchemaRegistryClient({"url": registry})
ctx = SerializationContext(topic, MessageField.VALUE)
c = Consumer({
    "bootstrap.servers": brokers,
    "group.id": f"proto-check-{uuid.uuid4()}",
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "isolation.level": "read_committed",
})
c.subscribe([topic])
out, ids, last = [], set(), time.time()
while time.time() - last < 3 or not out and time.time() - last < 60:
    m = c.poll(0.2)
    if m is None:
        continue
    if m.error():
        raise SystemExit(f"consume: {m.error()}")
    last = time.time()
    ids.add(int.from_bytes(m.value()[1:5], "big"))
    v = deserialize(m.value(), ctx)
    out.append(MessageToDict(v, preserving_proto_field_name=True, always_print_fields_with_no_presence=True))
c.close()
schemas = {str(i): (lambda s: {"type": s.schema_type, "text": s.schema_str})(client.get_schema(i)) for i in ids}
print(json.dumps({"records": out, "schemas": schemas}))
