"""Redis work written once, run from a thread or on the event loop.

What the message path does in Redis (a contact's lookup, a session's compare-and-set) is
written as a generator that yields the commands of one round trip (`Ops`: a list of
("command", *args)) and is sent back their results, exceptions among them, as a pipeline
with raise_on_error=False returns them. It never touches a connection itself, so the same
code runs under `drive` (redis-py, blocking: the worker, the CLI, Telegram, a thread of
`tala serve`) and under `drive_async` (redis.asyncio on `tala serve`'s event loop, where an
SMS costs no hand-over to a thread: bot/server.py).

`async_twin` opens the redis.asyncio client that talks to the same server as a blocking one.
"""

from __future__ import annotations

import asyncio
from typing import Any, Generator

import redis
import redis.asyncio
from redis.asyncio import connection as aconnection

Op = tuple  # ("get", key), ("evalsha", sha, 3, *keys, *args), ...
Ops = list[Op]
Steps = Generator[Ops, list, Any]


def run(client: redis.Redis, ops: Ops, *, pipeline: bool = True) -> list:
    """One round trip on a blocking client: the results in order, a command's error as its
    result (a lost connection raises)."""
    if len(ops) == 1 or not pipeline:
        out = []
        for name, *args in ops:
            try:
                out.append(getattr(client, name)(*args))
            except redis.ResponseError as e:
                out.append(e)
        return out
    pipe = client.pipeline(transaction=False)
    for name, *args in ops:
        getattr(pipe, name)(*args)
    return pipe.execute(raise_on_error=False)


async def run_async(client: redis.asyncio.Redis, ops: Ops) -> list:
    """`run` on the event loop."""
    if len(ops) == 1:
        name, *args = ops[0]
        try:
            return [await getattr(client, name)(*args)]
        except redis.ResponseError as e:
            return [e]
    pipe = client.pipeline(transaction=False)
    for name, *args in ops:
        getattr(pipe, name)(*args)
    return await pipe.execute(raise_on_error=False)


def drive(steps: Steps, client: redis.Redis, *, pipeline: bool = True) -> Any:
    """Run `steps` to its end on a blocking client; what it returned."""
    try:
        ops = next(steps)
        while True:
            ops = steps.send(run(client, ops, pipeline=pipeline))
    except StopIteration as done:
        return done.value


async def drive_async(steps: Steps, client: redis.asyncio.Redis) -> Any:
    try:
        ops = next(steps)
        while True:
            ops = steps.send(await run_async(client, ops))
    except StopIteration as done:
        return done.value


def raise_errors(results: list) -> list:
    """The results of a round trip, or the first command's error raised."""
    for r in results:
        if isinstance(r, Exception):
            raise r
    return results


# What of a blocking pool's settings a redis.asyncio connection takes as it is.
_SHARED = ("db", "username", "password", "socket_timeout", "socket_connect_timeout",
           "socket_keepalive", "client_name", "health_check_interval", "host", "port",
           "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_data",
           "ssl_check_hostname", "ssl_min_version", "ssl_ciphers")


POOL_WAIT = 5  # seconds a message waits for a free connection before it is answered 503


class _TurnPool(redis.asyncio.ConnectionPool):
    """A pool where a burst of messages waits its turn for a connection rather than failing
    (up to POOL_WAIT s, then redis.ConnectionError: 503), as redis.asyncio's
    BlockingConnectionPool does, for less: a semaphore, where that pool takes a condition, a
    lock and a timeout around every command (5 % of the loop's time in bench.wrk)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._turns = asyncio.Semaphore(self.max_connections)

    async def get_connection(self, *_: Any, **__: Any) -> aconnection.AbstractConnection:
        if self._turns.locked():
            try:
                await asyncio.wait_for(self._turns.acquire(), POOL_WAIT)
            except TimeoutError:
                raise redis.ConnectionError("No connection available.") from None
        else:
            await self._turns.acquire()
        try:
            # No await between the check and the taking: nothing else on the loop runs there.
            connection = self.get_available_connection()
        except BaseException:
            self._turns.release()
            raise
        try:
            await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def release(self, connection: aconnection.AbstractConnection) -> None:
        try:
            await super().release(connection)
        finally:
            self._turns.release()


class _FollowingSocket(aconnection.UnixDomainSocketConnection):
    """A Unix-socket connection that connects to wherever the blocking client's pool points
    now: the embedded Redis, started again, listens on a new socket (storage/embedded.py)."""

    def __init__(self, *, follow, **kwargs):
        self._follow = follow
        super().__init__(**kwargs)

    async def _connect(self):
        self.path = self._follow()
        return await super()._connect()


def async_twin(client: Any, max_connections: int = 32) -> redis.asyncio.Redis | None:
    """A redis.asyncio client for the server `client` (redis-py, blocking) talks to; None
    where there is none to make simply (a Sentinel's or a Cluster's client): the caller keeps
    to the blocking client in a thread there."""
    pool = getattr(client, "connection_pool", None)
    if type(pool) is not redis.ConnectionPool:  # a Cluster's has none, a Sentinel's its own
        return None
    kwargs = pool.connection_kwargs
    shared = {k: kwargs[k] for k in _SHARED if k in kwargs and kwargs[k] is not None}
    cls = pool.connection_class
    if issubclass(cls, redis.UnixDomainSocketConnection):
        shared.pop("host", None), shared.pop("port", None)
        shared.update(connection_class=_FollowingSocket,
                      follow=lambda: pool.connection_kwargs["path"])
    elif issubclass(cls, redis.SSLConnection):
        shared["connection_class"] = aconnection.SSLConnection
    elif cls is not redis.Connection:
        return None
    apool = _TurnPool(max_connections=max_connections, **shared)
    # Its own pool, closed with it (`aclose`): the embedded Redis shuts itself down at exit
    # only when no other client is connected to it.
    return redis.asyncio.Redis.from_pool(apool)
