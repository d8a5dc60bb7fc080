"""Coroutines and sync functions py_loop_SUITE calls on a context."""
import asyncio
import time

import erlang


async def nap(seconds):
    """Sleeps on the context's loop; returns how long it took."""
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    return time.monotonic() - t0


async def callback(name, *args):
    """Awaits erlang.async_call(name, *args); returns (result, seconds)."""
    t0 = time.monotonic()
    result = await erlang.async_call(name, *args)
    return (result, time.monotonic() - t0)


async def callbacks_together(name, n, arg):
    """n concurrent async_calls of name(arg) with gather; (results, seconds)."""
    t0 = time.monotonic()
    results = await asyncio.gather(*(erlang.async_call(name, arg) for _ in range(n)))
    return (results, time.monotonic() - t0)


async def callback_error(name):
    """The exception an async_call raises, as (type name, str)."""
    try:
        await erlang.async_call(name)
    except Exception as e:
        return (type(e).__name__, str(e))
    return None


async def callback_cancelled(name, ms):
    """An async_call cancelled by wait_for's timeout: the coroutine goes on."""
    try:
        await asyncio.wait_for(erlang.async_call(name, ms), 0.05)
    except asyncio.TimeoutError:
        return "timed_out"
    return "finished"


def run_gather(n, seconds):
    """erlang.run from sync code: n tasks sleeping `seconds` with gather."""
    async def task(i):
        await asyncio.sleep(seconds)
        return i * 2

    async def main():
        t0 = time.monotonic()
        results = await asyncio.gather(*(task(i) for i in range(n)))
        return (results, time.monotonic() - t0)

    return erlang.run(main())


def run_callback(name, arg):
    """erlang.run from sync code around an async_call whose Erlang function calls
    back into this context (its call chain is served by the loop)."""
    async def main():
        return await erlang.async_call(name, arg)

    return erlang.run(main())


def run_standard_api():
    """create_task, call_later, wait_for, timers and a future on a new loop."""
    async def main():
        loop = asyncio.get_running_loop()
        fired = []
        loop.call_later(0.02, fired.append, "later")
        fut = loop.create_future()
        loop.call_soon(fut.set_result, "soon")
        task = asyncio.create_task(asyncio.sleep(0.01, "task"))
        got = [await fut, await task, await asyncio.wait_for(asyncio.sleep(0.01, "wait_for"), 1)]
        await asyncio.sleep(0.05)
        try:
            await asyncio.wait_for(asyncio.sleep(5), 0.02)
        except asyncio.TimeoutError:
            got.append("timeout")
        return got + fired + [type(loop).__name__]

    return erlang.run(main())


def run_in_coroutine_refused():
    async def inner():
        return 1

    async def outer():
        try:
            erlang.run(inner())
        except RuntimeError:
            return "refused"
        return "ran"

    return erlang.run(outer())


def policy_asyncio_run():
    """asyncio.run under erlang.install(): the loop is an ErlangEventLoop, and
    async_call works in it."""
    erlang.install()
    try:
        async def main():
            return (type(asyncio.get_running_loop()).__name__,
                    await erlang.async_call("double", 21))
        return asyncio.run(main())
    finally:
        asyncio.set_event_loop_policy(None)


def sync_sleep(seconds):
    t0 = time.monotonic()
    erlang.sleep(seconds)
    return time.monotonic() - t0


async def async_sleep(seconds):
    t0 = time.monotonic()
    await erlang.sleep(seconds)
    return time.monotonic() - t0


_spawned = []


def spawn_background(seconds, value):
    """erlang.spawn_task from sync code: the task finishes after the answer."""
    async def later():
        await asyncio.sleep(seconds)
        _spawned.append(value)

    erlang.spawn_task(later())
    return list(_spawned)


def spawned():
    return list(_spawned)


def plain_asyncio_run(name, n, arg):
    """asyncio.run (no erlang.install()) of n gathered async_calls from sync code."""
    async def main():
        return await asyncio.gather(*(erlang.async_call(name, arg) for _ in range(n)))

    t0 = time.monotonic()
    results = asyncio.run(main())
    return (results, time.monotonic() - t0)
