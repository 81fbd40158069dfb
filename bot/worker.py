"""`collab-bot serve`'s two helper processes, the pipe that wakes one and the socket the other
answers clicks on.

The webhook's process answers Feishu: it verifies, drops chatter and stores commands. The rest
runs in processes with interpreters of their own:
- the clicks' process answers each card callback the webhook hands over on a socket (the answer
  goes back the same way). It does nothing else, so a click is not queued behind anything: in
  one process a click took turns for the one interpreter with every chatter message being
  answered (at 3,000 a second its answer took three times its own work) and with the outbox;
- the background process handles the commands after their 200, delivers the outbox (cards
  drawn, encoded and sent: three to five times what handling costs), runs the clock's ticks and
  the Feishu syncs, at a lower CPU priority (bot.app.BACKGROUND_NICE).
On SQLite their writers queue on a file lock, the clicks' first (bot.db).

The database stays the only channel that matters: a command's inbox row is committed before its
200, an outbox row before anything is sent. The pipe only says "now" — an event id to handle, or
"the outbox has rows" — so the background process need not poll; a word lost (a restart, a full
pipe) costs a delay, never an event: it handles every pending row when it starts, sweeps the
inbox every 30 s and claims due outbox rows at least every second. A click that the clicks'
process cannot take (it is restarting) is answered in the webhook's process, as without helpers.
"""
from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)

OUTBOX = b"o"     # outbox rows were written: claim now
EVENT = b"e"      # followed by an inbox event id: handle it
PIPE_BYTES = 1 << 20  # room for ~25,000 event ids while the worker catches up (Linux default: 64 KiB)
RESTART_SECONDS = 1.0
STOP_SECONDS = 20.0


class Kicks:
    """The webhook's end of the pipe. Writes never block (a full pipe or a dead worker loses the
    word, not the event) and are safe from any thread: each word is one write of < PIPE_BUF
    bytes, which the kernel keeps whole."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self._lost = 0

    def outbox(self) -> None:
        self._write(OUTBOX + b"\n")

    def event(self, event_id: str) -> None:
        word = event_id.encode("utf-8", "replace")
        if b"\n" in word or len(word) > 512:
            return  # not a Feishu id: the inbox sweep handles the row
        self._write(EVENT + word + b"\n")

    def _write(self, word: bytes) -> None:
        try:
            os.write(self.fd, word)
        except OSError as exc:   # a full pipe (BlockingIOError), no reader any more (BrokenPipeError)
            self._lost += 1
            if self._lost == 1 or self._lost % 1000 == 0:
                log.warning("background process not reachable (%s): %d wake-ups lost so far; "
                            "their rows are handled by its sweeps", type(exc).__name__, self._lost)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


class KickReader:
    """The worker's end: splits what arrives into words, however the reads cut them."""

    def __init__(self, fd: int, *, on_outbox: Callable[[], None], on_event: Callable[[str], None],
                 on_eof: Callable[[], None]) -> None:
        self.fd, self.on_outbox, self.on_event, self.on_eof = fd, on_outbox, on_event, on_eof
        os.set_blocking(fd, False)
        self._rest = b""

    def readable(self) -> None:
        """Call when the fd is readable (loop.add_reader)."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.on_eof()  # the webhook's process is gone: stop too
            return
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        kick = False
        for line in lines:
            if line == OUTBOX:
                kick = True
            elif line.startswith(EVENT) and len(line) > 1:
                self.on_event(line[1:].decode("utf-8", "replace"))
        if kick:
            self.on_outbox()  # one claim for however many rows were announced


# ---------------------------------------------------------------- clicks over a socket
FRAME = struct.Struct(">I")
MAX_FRAME = 4 << 20   # a decrypted callback is at most max_body_bytes; answers carry one card


def frame(message: dict[str, Any]) -> bytes:
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
    return FRAME.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None once the other end is gone (or sent something unreadable)."""
    try:
        size = FRAME.unpack(await reader.readexactly(FRAME.size))[0]
        if size > MAX_FRAME:
            return None
        message = json.loads(await reader.readexactly(size))
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        return None
    return message if isinstance(message, dict) else None


Answer = tuple[int, dict[str, Any]]   # HTTP status and JSON body for Feishu


class ClickLink:
    """The webhook's end of the clicks' socket. `ask` sends a callback's payload and waits for the
    answer; None when the clicks' process cannot take it (not ready yet — it says so once it has
    started —, or gone): the caller then answers it itself. Used from the webhook's event loop only."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._writer: asyncio.StreamWriter | None = None
        self._opening: asyncio.Future[None] | None = None
        self._pending: dict[int, asyncio.Future[Answer | None]] = {}
        self._next = 0
        self.closed = False
        self.ready = False

    def open(self) -> None:
        """Start reading (the first word says the other end is ready); on the event loop."""
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._connect())

    async def ask(self, payload: dict[str, Any], timeout: float) -> Answer | None:
        if self.closed or not self.ready or self._writer is None:
            return None
        self._next += 1
        ask_id, future = self._next, asyncio.get_running_loop().create_future()
        self._pending[ask_id] = future
        try:
            self._writer.write(frame({"i": ask_id, "p": payload}))
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(ask_id, None)

    async def _connect(self) -> None:
        reader, self._writer = await asyncio.open_connection(sock=self.sock)
        self._reader_task = asyncio.ensure_future(self._read_answers(reader))

    async def _read_answers(self, reader: asyncio.StreamReader) -> None:
        try:
            while (message := await read_frame(reader)) is not None:
                if message.get("ready"):
                    self.ready = True
                    continue
                future = self._pending.get(message.get("i", -1))
                if future is not None and not future.done():
                    future.set_result((int(message["s"]), dict(message["b"])))
        except (KeyError, TypeError, ValueError):
            log.error("unreadable answer from the clicks' process; clicks are answered here")
        finally:
            self.close()

    def close(self) -> None:
        self.closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_result(None)   # taken back: the webhook answers it itself
        if self._writer is not None:
            self._writer.close()
        else:
            self.sock.close()


async def answer_clicks(sock: socket.socket, answer: Callable[[dict[str, Any]], Awaitable[Answer]]) -> None:
    """The worker's end: answer each click as it comes, several at once, until the webhook's
    process closes the socket."""
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(frame({"ready": True}))
    running: set[asyncio.Task[None]] = set()

    async def one(message: dict[str, Any]) -> None:
        try:
            status, body = await answer(message.get("p") or {})
        except Exception:   # never leave a clicker waiting: Feishu retries a 503
            log.exception("click not answered")
            status, body = 503, {"msg": "temporarily unavailable"}
        writer.write(frame({"i": message.get("i"), "s": status, "b": body}))

    while (message := await read_frame(reader)) is not None:
        task = asyncio.ensure_future(one(message))
        running.add(task)
        task.add_done_callback(running.discard)
    await asyncio.gather(*running, return_exceptions=True)
    writer.close()


def _wait_or_kill(proc: subprocess.Popen[bytes], seconds: float) -> None:
    try:
        proc.wait(seconds)
        return
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class WorkerProcess:
    """The webhook's process starts its two helpers (`collab-bot worker`) and keeps them running:
    - the clicks' process answers the card callbacks handed over on a socket. It is idle but for
      the clicks, so the kernel runs it as soon as one comes (a process that mostly sleeps goes
      first), on the other core, whatever the rest is doing;
    - the background process handles the stored commands, delivers the outbox, runs the clock.
    Both may wake the background one through the pipe. When either dies both are started again
    after RESTART_SECONDS (the new background process finishes what was left pending; clicks are
    answered here meanwhile). On shutdown the pipe and socket are closed and they finish and exit."""

    def __init__(self, argv: list[str] | None = None) -> None:
        self.argv = argv or [sys.executable, "-m", "bot.cli", "worker"]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.kicks: Kicks | None = None
        self.clicks: ClickLink | None = None
        self.starts = 0
        self._stopping = False

    def start(self) -> None:
        """On the event loop (the click link belongs to it); two forks and execs, a few ms."""
        read_end, write_end = os.pipe()
        try:
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass  # the default size: words may be lost sooner
        ours, theirs = socket.socketpair()
        try:
            background = subprocess.Popen(self.argv + ["--kick-fd", str(read_end)], pass_fds=(read_end,))
            clicks = subprocess.Popen(self.argv + ["--click-fd", str(theirs.fileno()), "--kick-fd", str(write_end)],
                                      pass_fds=(theirs.fileno(), write_end))
        finally:
            os.close(read_end)  # only the background process reads: once it is gone, writes fail
            theirs.close()
        self.procs = [background, clicks]
        old, self.kicks = self.kicks, Kicks(write_end)
        if old:
            old.close()
        if self.clicks:
            self.clicks.close()
        self.clicks = ClickLink(ours)
        self.clicks.open()
        self.starts += 1

    def outbox(self) -> None:
        if self.kicks:
            self.kicks.outbox()

    def event(self, event_id: str) -> None:
        if self.kicks:
            self.kicks.event(event_id)

    async def click(self, payload: dict[str, Any], timeout: float) -> Answer | None:
        """The clicks' process's answer to a card callback; None: answer it here."""
        link = self.clicks
        if link is None or not self.alive():
            return None
        return await link.ask(payload, timeout)

    def ready(self) -> bool:
        """Both running and the clicks' process taking clicks."""
        return self.alive() and self.clicks is not None and self.clicks.ready

    def alive(self) -> bool:
        return bool(self.procs) and all(proc.poll() is None for proc in self.procs)

    async def keep_running(self) -> None:
        while not self._stopping:
            await asyncio.sleep(RESTART_SECONDS)
            if self._stopping or self.alive():
                continue
            log.error("a background process exited (%s); starting them again",
                      ", ".join(str(proc.poll()) for proc in self.procs))
            self.close_links(stopping=False)
            await asyncio.to_thread(self._end, 5.0)
            self.start()

    def close_links(self, *, stopping: bool = True) -> None:
        """On the event loop, before `stop`: clicks still waiting are answered here."""
        self._stopping = self._stopping or stopping
        if self.clicks:
            self.clicks.close()
            self.clicks = None

    def stop(self) -> None:
        """Close the pipe and socket (their signal to finish), wait, kill what hangs."""
        self._stopping = True
        self._end(STOP_SECONDS)

    def _end(self, seconds: float) -> None:
        if self.kicks:
            self.kicks.close()
            self.kicks = None
        deadline = time.monotonic() + seconds
        for proc in self.procs:
            if proc.poll() is None:
                _wait_or_kill(proc, max(0.0, deadline - time.monotonic()))
