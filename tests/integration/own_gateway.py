"""A fan-out gateway of the test's own: protocol v1 in a few dozen lines, misbehaving on purpose.

It shares no code with ``ingestload fanout``: one consumer by assignment, one frame per message,
no queues, no filters, whatever topics a subscriber asks for it serves its one topic. Every push
is a synchronous write (``broadcast`` to one connection), so that a subscription confirmed between
two messages starts exactly after the first, and a progress frame never overtakes a push. With
``SKIP_EVERY`` > 0 it silently skips every Nth message it would push to each subscriber whose
``id`` is ``VICTIM`` (default ``victim``) and says so on stdout, one line per skip, so that a test
knows the truth from what was injected:

    python own_gateway.py PORT BOOTSTRAP TOPIC SKIP_EVERY [VICTIM [FAULT [TRUTH]]]  # "ready" once it listens
    …
    skipped victim TOPIC PARTITION OFFSET

``FAULT`` lies to the victim in other ways (issue 18), each said as it happens — in the file
``TRUTH`` when given (a pipe nobody reads during the run would fill up and stall the gateway):

* ``shrink:M`` — after M pushes, withhold every further message (``withheld victim T P O``) while
  ``progress`` still vouches for everything, then answer ``unsubscribe`` with a ``to`` just after the
  last message it pushed: a window shrunk below what it vouched for;
* ``garble:N`` — every Nth push carries a value that is not Kafka's (``garbled victim T P O``);
* ``omit:P`` — partition P is left out of ``subscribed.from`` and of ``to``, and nothing of it is
  pushed, while ``progress`` vouches for it (``omitted victim T P``, once): the window closes cleanly.
"""

import asyncio
import sys

import orjson
from confluent_kafka import Consumer, TopicPartition
from websockets.asyncio.server import broadcast, serve


async def main(
    port: int, bootstrap: str, topic: str, skip_every: int, victim: str, fault: str, truth: str
) -> None:
    kind, _, arg = fault.partition(":")
    number = int(arg) if arg else 0
    out = open(truth, "a", buffering=1) if truth else sys.stdout  # noqa: SIM115 - open for the whole run

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "own-gateway", "enable.auto.commit": False}
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    positions = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
    }
    consumer.assign([TopicPartition(topic, p, o) for p, o in positions.items()])
    subscribers: dict[object, list] = {}  # connection → [id, messages pushed so far]
    delivered: dict[object, dict[int, int]] = {}  # victim connection → partition → next offset pushed

    def triples(ws: object = None) -> list:
        omitted = (
            number if kind == "omit" and ws is not None and subscribers.get(ws, [None])[0] == victim else None
        )
        return [[topic, p, o] for p, o in sorted(positions.items()) if p != omitted]

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
                where = f"{victim} {topic} {m.partition()} {m.offset()}"
                for ws, state in list(subscribers.items()):
                    state[1] += 1
                    if state[0] == victim:
                        if skip_every and state[1] % skip_every == 0:
                            say(f"skipped {where}")
                            continue
                        if kind == "shrink" and state[1] > number:
                            say(f"withheld {where}")
                            continue
                        if kind == "omit" and m.partition() == number:
                            continue
                        if kind == "garble" and state[1] % number == 0:
                            say(f"garbled {where}")
                            garbled = {**item, "value": {"garbled": state[1]}}
                            broadcast(
                                [ws], orjson.dumps({"type": "messages", "messages": [garbled]}), text=True
                            )
                            continue
                        delivered.setdefault(ws, {})[m.partition()] = m.offset() + 1
                    broadcast([ws], frame, text=True)
                positions[m.partition()] = m.offset() + 1  # after everyone got it: progress stays true

    async def handler(ws: object) -> None:
        async for raw in ws:
            request = orjson.loads(raw)
            if request["type"] == "subscribe":
                subscribers[ws] = [request.get("id"), 0]
                start = triples(ws)
                if kind == "omit" and request.get("id") == victim:
                    say(f"omitted {victim} {topic} {number}")
                delivered[ws] = {p: o for _, p, o in start}
                await ws.send(
                    orjson.dumps({"type": "subscribed", "subscription": str(id(ws)), "from": start})
                )
            elif request["type"] == "progress":
                await ws.send(orjson.dumps({"type": "progress", "positions": triples()}))
            elif request["type"] == "unsubscribe":
                to = triples(ws)
                if kind == "shrink" and subscribers[ws][0] == victim:
                    # The lie: the window ends just after the last message pushed, below what the
                    # progress frames vouched for.
                    to = [[topic, p, delivered[ws].get(p, o)] for _, p, o in to]
                del subscribers[ws]
                end = {
                    "type": "unsubscribed",
                    "subscription": str(id(ws)),
                    "reason": "requested",
                    "to": to,
                }
                await ws.send(orjson.dumps({**end, "dropped": 0}))
        subscribers.pop(ws, None)

    async with serve(handler, "127.0.0.1", port):
        print("ready", flush=True)
        await pump()


if __name__ == "__main__":
    victim = sys.argv[5] if len(sys.argv) > 5 else "victim"
    fault = sys.argv[6] if len(sys.argv) > 6 else ""
    truth = sys.argv[7] if len(sys.argv) > 7 else ""
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), victim, fault, truth))
