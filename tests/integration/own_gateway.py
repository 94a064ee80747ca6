"""A fan-out gateway of the test's own: protocol v1 in a few dozen lines, misbehaving on purpose.

It shares no code with ``ingestload fanout``: one consumer by assignment, one frame per message,
no queues, no filters, whatever topics a subscriber asks for it serves its one topic. Every push
is a synchronous write (``broadcast`` to one connection), so that a subscription confirmed between
two messages starts exactly after the first, and a progress frame never overtakes a push. With
``SKIP_EVERY`` > 0 it silently skips every Nth message it would push to each subscriber whose
``id`` is ``VICTIM`` (default ``victim``) and says so on stdout, one line per skip, so that a test
knows the truth from what was injected:

    python own_gateway.py PORT BOOTSTRAP TOPIC SKIP_EVERY [VICTIM]   # prints "ready" once it listens
    …
    skipped victim TOPIC PARTITION OFFSET
"""

import asyncio
import sys

import orjson
from confluent_kafka import Consumer, TopicPartition
from websockets.asyncio.server import broadcast, serve


async def main(port: int, bootstrap: str, topic: str, skip_every: int, victim: str) -> None:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "own-gateway", "enable.auto.commit": False}
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    positions = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
    }
    consumer.assign([TopicPartition(topic, p, o) for p, o in positions.items()])
    subscribers: dict[object, list] = {}  # connection → [id, messages pushed so far]

    def triples() -> list:
        return [[topic, p, o] for p, o in sorted(positions.items())]

    async def pump() -> None:
        loop = asyncio.get_running_loop()
        while True:
            for m in await loop.run_in_executor(None, consumer.consume, 500, 0.05):
                if m.error():
                    continue
                envelope = dict(m.headers() or []).get("ingestload")
                item = {
                    "topic": topic,
                    "partition": m.partition(),
                    "offset": m.offset(),
                    "timestamp": m.timestamp()[1],
                    "envelope": envelope.hex() if envelope else None,
                    "value": orjson.loads(m.value()),
                }
                frame = orjson.dumps({"type": "messages", "messages": [item]})
                for ws, state in list(subscribers.items()):
                    state[1] += 1
                    if skip_every and state[0] == victim and state[1] % skip_every == 0:
                        print(f"skipped {victim} {topic} {m.partition()} {m.offset()}", flush=True)
                        continue
                    broadcast([ws], frame, text=True)
                positions[m.partition()] = m.offset() + 1  # after everyone got it: progress stays true

    async def handler(ws: object) -> None:
        async for raw in ws:
            request = orjson.loads(raw)
            if request["type"] == "subscribe":
                subscribers[ws] = [request.get("id"), 0]
                await ws.send(
                    orjson.dumps({"type": "subscribed", "subscription": str(id(ws)), "from": triples()})
                )
            elif request["type"] == "progress":
                await ws.send(orjson.dumps({"type": "progress", "positions": triples()}))
            elif request["type"] == "unsubscribe":
                del subscribers[ws]
                end = {
                    "type": "unsubscribed",
                    "subscription": str(id(ws)),
                    "reason": "requested",
                    "to": triples(),
                }
                await ws.send(orjson.dumps({**end, "dropped": 0}))
        subscribers.pop(ws, None)

    async with serve(handler, "127.0.0.1", port):
        print("ready", flush=True)
        await pump()


if __name__ == "__main__":
    victim = sys.argv[5] if len(sys.argv) > 5 else "victim"
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), victim))
