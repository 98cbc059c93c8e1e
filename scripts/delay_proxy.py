#!/usr/bin/env python3
"""A TCP proxy on loopback that delays every request: bytes from the client wait DELAY
before they are passed on (responses flow back at once), so each HTTP request costs one
more round trip of DELAY, as against a distant object store.

    delay_proxy.py LISTEN_PORT TARGET_PORT DELAY_MS

Only 127.0.0.1 is listened on and connected to. Runs until killed.
"""

import asyncio
import sys


async def pipe(reader, writer, delay):
    try:
        while data := await reader.read(1 << 16):
            if delay:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main(listen, target, delay):
    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            pipe(client_reader, server_writer, delay),
            pipe(server_reader, client_writer, 0),
        )

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    listen_port, target_port, delay_ms = map(int, sys.argv[1:4])
    asyncio.run(main(listen_port, target_port, delay_ms / 1000))
