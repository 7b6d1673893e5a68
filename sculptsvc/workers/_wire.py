"""What travels between the pool and a worker: length-prefixed pickles and encoded errors.

Frame: 8-byte big-endian payload length, then a pickle (protocol 5). The parent reads and
writes frames through :class:`Channel` (never blocking its loop); the worker uses plain
blocking sockets.

Errors cross the process boundary as a :class:`RemoteError` record rather than as the raw
exception, so that an exception whose class cannot be pickled or imported still arrives
with its class name, message and traceback. :func:`rebuild_error` turns the record back into
the exception the caller sees:

- a :class:`~sculptsvc.errors.SculptError` subclass -> the same class, message and detail;
- anything else -> :class:`~sculptsvc.errors.ProcessingFailed` naming the original class.
"""

from __future__ import annotations

import asyncio
import collections
import importlib
import io
import pickle
import socket
import struct
import traceback
from dataclasses import dataclass, field
from typing import Any

from sculptsvc.errors import SculptError, qualified_name, unknown_error

HEADER = struct.Struct("!Q")
PICKLE_PROTOCOL = 5


class RemoteTraceback(Exception):
    """Chained as ``__cause__`` of a rebuilt error so logs show where the worker failed."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


@dataclass(frozen=True)
class RemoteError:
    """An exception raised in a worker, in a form that always pickles."""

    module: str
    qualname: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)
    traceback: str = ""
    pickled: bytes | None = None
    """``pickle.dumps(exc)`` when it round-trips in the worker; the faithful path."""
    typed: bool = False
    """True when the exception was a ``SculptError`` (an outcome the job chose to report)."""

    @property
    def type_name(self) -> str:
        return qualified_name(self.module, self.qualname)


def _picklable_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """Keep detail values that pickle; replace the rest by their ``repr``."""
    safe: dict[str, Any] = {}
    for key, value in detail.items():
        try:
            pickle.dumps(value, protocol=PICKLE_PROTOCOL)
            safe[key] = value
        except Exception:
            safe[key] = repr(value)
    return safe


def encode_error(exc: BaseException) -> RemoteError:
    """Describe ``exc`` (raised in the worker) so the parent can rebuild it."""
    cls = type(exc)
    text = "".join(traceback.format_exception(exc))
    if isinstance(exc, SculptError):
        message, detail = exc.message, _picklable_detail(exc.detail)
    else:
        message, detail = str(exc), {}
    pickled: bytes | None = None
    try:
        candidate = pickle.dumps(exc, protocol=PICKLE_PROTOCOL)
        pickle.loads(candidate)  # a class whose __init__ breaks unpickling is caught here
        pickled = candidate
    except Exception:
        pickled = None
    return RemoteError(
        cls.__module__,
        cls.__qualname__,
        message,
        detail,
        text,
        pickled,
        typed=isinstance(exc, SculptError),
    )


def _import_class(module: str, qualname: str) -> type | None:
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception:
        return None
    return obj if isinstance(obj, type) else None


def rebuild_error(remote: RemoteError) -> SculptError:
    """The exception the caller sees for a job (or init) that raised ``remote`` in a worker."""
    rebuilt: SculptError | None = None
    if remote.pickled is not None:
        try:
            candidate = pickle.loads(remote.pickled)
        except Exception:
            candidate = None
        if isinstance(candidate, SculptError):
            rebuilt = candidate
    if rebuilt is None:
        cls = _import_class(remote.module, remote.qualname)
        if cls is not None and issubclass(cls, SculptError):
            # Bypass a subclass __init__ with a different signature; restore the base fields.
            rebuilt = cls.__new__(cls)
            SculptError.__init__(rebuilt, remote.message, **remote.detail)
    if rebuilt is None:
        rebuilt = unknown_error(remote.type_name, remote.message)
    rebuilt.__cause__ = RemoteTraceback(remote.traceback)
    return rebuilt


# --- framing: parent side (asyncio) ----------------------------------------------------------


def frame(message: object) -> tuple[bytes, memoryview]:
    """(header, payload) of one message, written one after the other (no joined copy).

    Pickled into a ``BytesIO``: the pickler hands large ``bytes`` to it whole, where
    ``pickle.dumps`` grows its own buffer by copies (a 4.8 MB order result: 0.2 ms against
    3.7 ms on the 2-core machine)."""
    out = io.BytesIO()
    pickle.Pickler(out, protocol=PICKLE_PROTOCOL).dump(message)
    return HEADER.pack(out.tell()), out.getbuffer()


class Channel(asyncio.BufferedProtocol):
    """The parent's end of a worker's socket: whole messages in and out.

    The transport receives each part of a frame straight into the buffer that part ends up
    in. asyncio's ``StreamReader`` copies every chunk into its own buffer and out again: a
    4.8 MB order result took 6 ms to read that way and about 1 ms this way (2-core machine).
    """

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._frames: collections.deque[bytearray] = collections.deque()
        self._arrived: asyncio.Future[None] | None = None
        self._lost: BaseException | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        # the part of a frame being received (header or payload) and how much of it is in
        self._target = bytearray(HEADER.size)
        self._in_header = True
        self._filled = 0

    @classmethod
    async def connect(cls, sock: socket.socket) -> Channel:
        _, channel = await asyncio.get_running_loop().create_unix_connection(cls, sock=sock)
        return channel

    # -- asyncio.BufferedProtocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._target)[self._filled :]

    def buffer_updated(self, nbytes: int) -> None:
        self._filled += nbytes
        while self._filled == len(self._target):
            self._next_part()

    def _next_part(self) -> None:
        if self._in_header:
            (size,) = HEADER.unpack(self._target)
            self._target, self._in_header = bytearray(size), False
        else:
            self._frames.append(self._target)
            self._wake()
            self._target, self._in_header = bytearray(HEADER.size), True
        self._filled = 0

    def eof_received(self) -> bool:
        return False  # the worker closed its end: close ours

    def connection_lost(self, exc: BaseException | None) -> None:
        self._lost = exc or asyncio.IncompleteReadError(b"", None)
        self._writable.set()
        self._wake()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def _wake(self) -> None:
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)

    # -- messages -------------------------------------------------------------------------

    async def read(self) -> Any:
        """Next message; raises ``asyncio.IncompleteReadError`` when the worker has gone."""
        while not self._frames:
            if self._lost is not None:
                raise self._lost
            self._arrived = asyncio.get_running_loop().create_future()
            try:
                await self._arrived
            finally:
                self._arrived = None
        return pickle.loads(self._frames.popleft())

    async def write(self, message: object) -> None:
        if self._lost is not None or self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("the worker's socket is closed")
        header, payload = frame(message)
        self._transport.write(header)
        self._transport.write(payload)
        await self._writable.wait()
        if self._lost is not None:
            raise ConnectionResetError("the worker's socket closed while writing")

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


# --- framing: worker side (blocking) ---------------------------------------------------------


def _recv_exact(sock: socket.socket, size: int) -> bytearray | None:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            return None
        got += n
    return buf


def recv_message(sock: socket.socket) -> Any:
    """Next message from the pool, or ``None`` when the pool closed its end (stop)."""
    header = _recv_exact(sock, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    payload = _recv_exact(sock, size)
    if payload is None:
        return None
    return pickle.loads(payload)


def send_message(sock: socket.socket, message: object) -> None:
    header, payload = frame(message)
    sock.sendall(header)
    sock.sendall(payload)
