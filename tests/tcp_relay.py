"""A TCP relay between a client process and the real S3 server, to stop traffic at a chosen
point: "mid-upload" and "mid-download" become events a test waits for, not sleeps.

It forwards bytes unchanged (nothing of S3 is imitated: the server on the far side is the real
one). ``freeze_after(direction, nbytes)`` holds every connection still once one connection
has carried ``nbytes`` in that direction (``up``: client to server, ``down``: server to
client) and sets ``frozen``; ``cut()`` then closes every connection, as a dead host would.

    relay = TcpRelay("127.0.0.1", s3_port).start()
    relay.freeze_after("up", 300_000)          # a PUT body of > 300 kB is in flight
    assert relay.frozen.wait(60)
    service.kill(); relay.cut()
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Literal

CHUNK = 65536
Direction = Literal["up", "down"]


class TcpRelay:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.frozen = threading.Event()
        self._threshold: tuple[Direction, int] | None = None
        self._cut = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpRelay:
        threading.Thread(target=self._accept, daemon=True, name="relay-accept").start()
        return self

    def freeze_after(self, direction: Direction, nbytes: int) -> None:
        self._threshold = (direction, nbytes)

    def cut(self) -> None:
        """Close every connection (and refuse nothing new: later ones pass through)."""
        self._cut.set()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._threshold = None
        self.frozen.clear()
        self._cut.clear()

    def close(self) -> None:
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst, direction in ((client, upstream, "up"), (upstream, client, "down")):
                threading.Thread(target=self._pump, args=(src, dst, direction), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: Direction) -> None:
        carried = 0
        try:
            while True:
                data = src.recv(CHUNK)
                if not data:
                    break
                threshold = self._threshold
                if threshold and threshold[0] == direction and carried + len(data) >= threshold[1]:
                    dst.sendall(data[: max(threshold[1] - carried, 0)])
                    self.frozen.set()
                if self.frozen.is_set():
                    self._cut.wait()  # hold still until the test cuts the line
                    return
                dst.sendall(data)
                carried += len(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
