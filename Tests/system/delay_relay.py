"""A small userspace relay that adds delay (the kernel here has no netem).

One relay listens on a 127.0.0.1 port for both TCP and UDP and forwards to a target
(the same port number serves the tunnel and the UDP probe). Each direction is delayed
by half of `delay_ms`, so the round trip grows by `delay_ms`. `break_connections()`
cuts every TCP connection at once, as a changing Wi-Fi or a NAT rebinding would.
"""
import asyncio
import socket
import threading
import time


class DelayRelay:
    def __init__(self, target, delay_ms):
        self.target = target
        self.delay = delay_ms / 2000.0
        self.loop = asyncio.new_event_loop()
        self.writers = set()
        self.ready = threading.Event()
        self.port = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(5):
            raise RuntimeError("relay did not start")

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self):
        # Find a port free for TCP and UDP together.
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            try:
                self.server = await asyncio.start_server(self._client, "127.0.0.1", port)
            except OSError:
                udp.close()
                continue
            self.port = port
            break
        transport, _ = await self.loop.create_datagram_endpoint(lambda: _UDPFront(self), sock=udp)
        self.udp = transport

    async def _pipe(self, reader, writer):
        queue = asyncio.Queue()

        async def send():
            while True:
                due, data = await queue.get()
                if data is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = asyncio.ensure_future(send())
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                queue.put_nowait((time.monotonic() + self.delay, data))
        except (ConnectionError, OSError):
            pass
        queue.put_nowait((0, None))
        try:
            await sender
        except (ConnectionError, OSError):
            pass

    async def _client(self, reader, writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers.update({writer, upstream_writer})
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer),
                             return_exceptions=True)
        self.writers.difference_update({writer, upstream_writer})

    def break_connections(self):
        def cut():
            for writer in list(self.writers):
                sock = writer.get_extra_info("socket")
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                except OSError:
                    pass
                writer.transport.abort()
            self.writers.clear()
        self.loop.call_soon_threadsafe(cut)

    def close(self):
        async def stop():
            self.server.close()
            self.udp.close()
            for writer in list(self.writers):
                writer.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()
        asyncio.run_coroutine_threadsafe(stop(), self.loop)
        self.thread.join(5)


class _UDPFront(asyncio.DatagramProtocol):
    """Client datagrams go to the target through one upstream socket per client."""

    def __init__(self, relay):
        self.relay = relay
        self.upstreams = {}

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, client):
        relay = self.relay
        loop = relay.loop
        if client not in self.upstreams:
            upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            upstream.setblocking(False)
            upstream.connect(relay.target)
            self.upstreams[client] = upstream

            def readable(sock=upstream, client=client):
                try:
                    reply = sock.recv(2048)
                except OSError:
                    return
                loop.call_later(relay.delay, self.transport.sendto, reply, client)
            loop.add_reader(upstream.fileno(), readable)
        upstream = self.upstreams[client]

        def forward():
            try:
                upstream.send(data)
            except OSError:
                pass
        loop.call_later(relay.delay, forward)
