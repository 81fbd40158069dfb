"""The pipe and the socket between `collab-bot serve`'s processes (bot/worker.py), on real file
descriptors: words survive any cut of the reads, a full or orphaned pipe never blocks or raises in
the webhook, clicks are matched to their answers however they come back, and clicks on a link
that is not ready or has gone are left to the webhook to answer."""
from __future__ import annotations

import asyncio
import fcntl
import os
import socket

import pytest

from bot.worker import FRAME, ClickLink, KickReader, Kicks, answer_clicks, frame, read_frame


def _reader(fd: int) -> tuple[KickReader, dict]:
    seen: dict = {"outbox": 0, "events": [], "eof": 0}
    reader = KickReader(fd, on_outbox=lambda: seen.__setitem__("outbox", seen["outbox"] + 1),
                        on_event=seen["events"].append, on_eof=lambda: seen.__setitem__("eof", seen["eof"] + 1))
    return reader, seen


def test_words_cut_anywhere_arrive_whole_and_outbox_wakeups_are_one_per_read():
    r, w = os.pipe()
    reader, seen = _reader(r)
    data = b"eev_1\no\no\neev_\xe4\xb8\xad\xe6\x96\x87\no\nx-unknown\neev_2"
    for cut in (3, 9, 12, 17, len(data)):   # cut inside an id, inside a UTF-8 character
        os.write(w, data[:cut])
        data = data[cut:]
        reader.readable()
    assert seen["events"] == ["ev_1", "ev_中文"]      # ev_2 has no newline yet
    assert seen["outbox"] == 2                       # two reads that held "o" words
    os.write(w, b"\n")
    reader.readable()
    assert seen["events"][-1] == "ev_2"
    os.close(w)
    reader.readable()
    assert seen["eof"] == 1
    os.close(r)


def test_the_webhook_never_blocks_on_a_full_pipe_nor_fails_on_a_gone_reader(caplog):
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
    kicks = Kicks(w)
    for i in range(2000):                  # far more than the pipe holds: the rest is lost, counted
        kicks.event(f"ev_{i:05d}")
    assert kicks._lost > 0
    os.close(r)
    kicks.outbox()                         # EPIPE: no reader any more
    kicks.event("ev_after")
    assert any("wake-ups lost" in rec.getMessage() for rec in caplog.records)
    kicks.close()


def test_an_id_that_is_not_one_word_is_not_written():
    r, w = os.pipe()
    kicks = Kicks(w)
    kicks.event("ev\nfake")
    kicks.event("x" * 600)
    kicks.event("ev_ok")
    os.set_blocking(r, False)
    assert os.read(r, 4096) == b"eev_ok\n"
    kicks.close()
    os.close(r)


async def _pair(answer):
    ours, theirs = socket.socketpair()
    server = asyncio.ensure_future(answer_clicks(theirs, answer))
    link = ClickLink(ours)
    link.open()
    for _ in range(200):
        if link.ready:
            break
        await asyncio.sleep(0.005)
    return link, server


async def test_concurrent_clicks_get_their_own_answers_in_whatever_order_they_finish():
    async def answer(payload):
        await asyncio.sleep(payload["delay"])
        return 200, {"toast": {"content": payload["who"]}}

    link, server = await _pair(answer)
    assert link.ready
    asks = [link.ask({"who": f"第{i}位", "delay": (5 - i) * 0.01}, 2) for i in range(5)]
    answers = await asyncio.gather(*asks)
    assert answers == [(200, {"toast": {"content": f"第{i}位"}}) for i in range(5)]
    link.close()
    await asyncio.wait_for(server, 2)   # the worker's end stops once the webhook's end closes


async def test_clicks_waiting_when_the_other_end_goes_are_handed_back():
    gate = asyncio.Event()

    async def answer(payload):
        await gate.wait()
        return 200, {}

    ours, theirs = socket.socketpair()
    server = asyncio.ensure_future(answer_clicks(theirs, answer))
    link = ClickLink(ours)
    link.open()
    while not link.ready:
        await asyncio.sleep(0.005)
    waiting = asyncio.ensure_future(link.ask({"n": 1}, 5))
    await asyncio.sleep(0.05)
    server.cancel()           # the clicks' process dies with a click in hand
    theirs.close()
    assert await asyncio.wait_for(waiting, 2) is None
    assert await link.ask({"n": 2}, 5) is None
    assert link.closed


async def test_a_link_not_ready_yet_takes_no_click_and_a_silent_one_times_out():
    ours, theirs = socket.socketpair()
    link = ClickLink(ours)
    link.open()
    assert await link.ask({"n": 1}, 1) is None      # the other end has not said it is ready
    theirs.sendall(frame({"ready": True}))
    while not link.ready:
        await asyncio.sleep(0.005)
    with pytest.raises(TimeoutError):
        await link.ask({"n": 2}, 0.1)               # ready, but never answers
    link.close()
    theirs.close()


async def test_an_oversized_or_unreadable_frame_ends_the_link():
    for bad in (FRAME.pack(100 << 20), FRAME.pack(3) + b"{{{"):
        a, b = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=a)
        b.sendall(bad)
        assert await read_frame(reader) is None
        writer.close()
        b.close()


async def test_a_click_whose_handling_fails_is_answered_503_and_a_garbled_answer_ends_the_link():
    async def answer(payload):
        raise RuntimeError("handler bug")

    link, server = await _pair(answer)
    assert await link.ask({"n": 1}, 2) == (503, {"msg": "temporarily unavailable"})
    link.close()
    await asyncio.wait_for(server, 2)

    ours, theirs = socket.socketpair()
    link = ClickLink(ours)
    link.open()
    theirs.sendall(frame({"ready": True}))
    while not link.ready:
        await asyncio.sleep(0.005)
    waiting = asyncio.ensure_future(link.ask({"n": 1}, 2))
    await asyncio.sleep(0.02)
    theirs.sendall(frame({"i": 1, "s": "not a status"}))   # no body, a status that is no number
    assert await asyncio.wait_for(waiting, 2) is None      # handed back, not left to time out
    assert link.closed
    theirs.close()
