#!/usr/bin/env python3
"""A shaped link between two TCP ports on 127.0.0.1, for the benchmarks.

    linkemu.py LISTEN_PORT TARGET_PORT RATE_MBIT DELAY_MS

Each direction of each connection is a queue: a byte leaves no earlier
than DELAY_MS after it arrived, and the link sends at most RATE_MBIT
(shared by every connection, per direction, as one wire would). This
stands in for `tc qdisc ... netem delay 20ms rate 10mbit` where the
kernel has no netem (sch_netem is a module this machine's kernel lacks).
Prints "linkemu: ready" when it accepts connections.
"""
import asyncio
import sys
import time

LISTEN, TARGET = int(sys.argv[1]), int(sys.argv[2])
RATE = float(sys.argv[3]) * 1e6 / 8          # bytes per second
DELAY = float(sys.argv[4]) / 1000.0
CHUNK = 16384


class Wire:
    """One direction of the link: a token bucket shared by all connections."""

    def __init__(self):
        self.free_at = time.monotonic()

    def reserve(self, n):
        now = time.monotonic()
        start = max(now, self.free_at)
        self.free_at = start + n / RATE
        return self.free_at


UP, DOWN = Wire(), Wire()


async def pump(reader, writer, wire):
    q = asyncio.Queue()

    async def sender():
        while True:
            item = await q.get()
            if item is None:
                break
            due, data = item
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            writer.write(data)
            await writer.drain()
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass

    task = asyncio.ensure_future(sender())
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            arrive = time.monotonic()
            # on the wire after the bytes ahead of it, then DELAY in flight
            done = wire.reserve(len(data))
            await q.put((max(done, arrive) + DELAY, data))
            # back-pressure: do not read far ahead of the wire
            while q.qsize() > 64:
                await asyncio.sleep(0.001)
    except (ConnectionError, OSError):
        pass
    await q.put(None)
    await task


async def handle(creader, cwriter):
    try:
        sreader, swriter = await asyncio.open_connection("127.0.0.1", TARGET)
    except OSError:
        cwriter.close()
        return
    await asyncio.gather(pump(creader, swriter, UP), pump(sreader, cwriter, DOWN))
    for w in (cwriter, swriter):
        try:
            w.close()
        except OSError:
            pass


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN)
    print("linkemu: ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
