"""A replica of seed 003's Kafka → WebSocket service, for bench/fanout.py to measure ours against.

Seed 003 (a 2018 blog post, in Chinese) serves live trajectory views with Tornado: every
WebSocket that opens starts its *own* kafka-python ``KafkaConsumer`` (no group,
``auto_offset_reset='earliest'``, ``consumer_timeout_ms=1000``, subscribed to the topic) and its
own ``KafkaProducer``, and each consumer hands every record to the class method
``WebSocketHandler.write_message_to_all``, which writes it to every open socket. Kept as the
seed has it: a consumer and a producer per socket (the producer idles here: the bench's load
comes from one producer, the same for both sides), one frame per message, no queue bound,
nothing counted, no filter.

Changed only where the seed cannot run as written: its consumer is a ``multiprocessing.Process``
whose copy of ``open_sockets`` is not the server's, and Tornado must not be written to from
another thread — so each consumer is a thread that passes records to the IOLoop with
``add_callback`` (the seed's own ``Consumer(threading.Thread)`` class, made thread-safe); and
a record is written as the same JSON as the reference gateway's (one message per frame,
``{"type": "messages", "messages": [{topic, partition, offset, timestamp, envelope, value}]}``)
so that one probe reads both.

``--mode all`` is the seed's ``write_message_to_all`` from every socket's consumer (so with N
sockets each message reaches every socket N times); ``--mode own`` is the obvious repair —
each consumer writes to its own socket only.

    python bench/seed003_gateway.py --port 8888 --bootstrap 127.0.0.1:9092 --topic trails --mode own
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from typing import Any, ClassVar

import tornado.ioloop
import tornado.web
import tornado.websocket

from ingestload.fanout import protocol
from kafka import KafkaConsumer, KafkaProducer


class Consumer(threading.Thread):
    """One socket's consumer, as the seed's ``NewConsumer`` (a thread, so it can reach the IOLoop)."""

    daemon = True

    def __init__(self, handler: WebSocketHandler) -> None:
        super().__init__()
        self.handler = handler
        self.stop_event = threading.Event()

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        consumer = KafkaConsumer(
            bootstrap_servers=OPTIONS.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=1000
        )
        consumer.subscribe([OPTIONS.topic])
        loop = LOOP
        while not self.stop_event.is_set():
            for message in consumer:
                envelope = dict(message.headers or ()).get("ingestload")
                frame = protocol.messages(
                    [
                        protocol.message_fragment(
                            message.topic,
                            message.partition,
                            message.offset,
                            message.timestamp,
                            envelope,
                            message.value,
                            True,
                        )
                    ]
                )
                if OPTIONS.mode == "all":
                    loop.add_callback(WebSocketHandler.write_message_to_all, frame)
                else:
                    loop.add_callback(self.handler.write_own, frame)
                if self.stop_event.is_set():
                    break
        consumer.close()


class WebSocketHandler(tornado.websocket.WebSocketHandler):
    open_sockets: ClassVar[set[WebSocketHandler]] = set()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._consumer = Consumer(self)
        self._producer = KafkaProducer(bootstrap_servers=OPTIONS.bootstrap)
        super().__init__(*args, **kwargs)

    def open(self, *args: Any) -> None:
        self._consumer.start()
        self.set_nodelay(True)
        type(self).open_sockets.add(self)

    def on_message(self, message: Any) -> None:
        pass

    @classmethod
    def write_message_to_all(cls, message: bytes) -> None:
        removable = set()
        for ws in cls.open_sockets:
            if not ws.ws_connection or not ws.ws_connection.stream.socket:
                removable.add(ws)
            else:
                ws.write_message(message)
        for ws in removable:
            cls.open_sockets.remove(ws)

    def write_own(self, message: bytes) -> None:
        if self.ws_connection and self.ws_connection.stream.socket:
            self.write_message(message)

    def on_close(self) -> None:
        self._consumer.stop()
        self._producer.close()
        type(self).open_sockets.discard(self)


OPTIONS = argparse.Namespace()
LOOP: Any = None


async def main() -> None:
    global LOOP
    LOOP = tornado.ioloop.IOLoop.current()
    tornado.web.Application([(r"/.*", WebSocketHandler)]).listen(OPTIONS.port, "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--mode", choices=("all", "own"), default="own")
    parser.parse_args(namespace=OPTIONS)
    asyncio.run(main())
