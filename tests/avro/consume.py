"""Read every record of a topic with confluent-kafka's AvroDeserializer
(schemas from the registry, by the id in each record) until nothing new
arrives for 3 s; print them as one JSON array on stdout.

    consume.py BROKERS REGISTRY TOPIC
"""

import json
import sys
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

brokers, registry, topic = sys.argv[1:4]
deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry}))
ctx = SerializationContext(topic, MessageField.VALUE)
c = Consumer({
    "bootstrap.servers": brokers,
    "group.id": f"avro-check-{uuid.uuid4()}",
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "isolation.level": "read_committed",
})
c.subscribe([topic])
out, last = [], time.time()
while time.time() - last < 3 or not out and time.time() - last < 60:
    m = c.poll(0.2)
    if m is None:
        continue
    if m.error():
        raise SystemExit(f"consume: {m.error()}")
    last = time.time()
    v = deserialize(m.value(), ctx)
    out.append({k: (x.isoformat() if hasattr(x, "isoformat") else x) for k, x in v.items()})
c.close()
print(json.dumps(out))
