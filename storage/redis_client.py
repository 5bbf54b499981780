"""Connecting to Redis: one server, Sentinel or a Cluster, or the embedded default.

`connect` takes the usual redis:// / rediss:// / unix:// URLs, and for more than one Redis:

    redis+sentinel://[:PASSWORD@]HOST:26379[,HOST:26379...]/SERVICE[/DB]   (Sentinel)
    redis+cluster://[:PASSWORD@]HOST:PORT[,HOST:PORT...]                   (Redis Cluster)

(`rediss+sentinel://`, `rediss+cluster://` for TLS.)
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import redis
from redis.cluster import ClusterNode, RedisCluster


def connect(url: str | None, data_dir: Path) -> redis.Redis | RedisCluster:
    """The Redis at `url`, or with none an embedded server whose data stays in the data dir.

    The embedded server writes every change to an append-only file, so a killed process (or a
    killed server) comes back to the session where it was."""
    if url:
        scheme = url.split("://", 1)[0].lower()
        if scheme in ("redis+cluster", "rediss+cluster"):
            return _cluster(url)
        if scheme in ("redis+sentinel", "rediss+sentinel"):
            return _sentinel(url)
        return redis.Redis.from_url(url)
    from storage.embedded import open_embedded  # only needed for the embedded default

    return open_embedded(data_dir)


class _ClusterPools:
    def __init__(self, client: RedisCluster):
        self._client = client

    def disconnect(self) -> None:
        self._client.disconnect_connection_pools()


class ClusterClient(RedisCluster):
    """redis-py's RedisCluster, with `connection_pool.disconnect()` like redis.Redis has (what
    the app calls on shutdown), so the rest of tala needs no cluster special case."""

    @property
    def connection_pool(self) -> _ClusterPools:
        return _ClusterPools(self)


def _hosts(url: str, default_port: int) -> tuple[str, list[tuple[str, int]], str, str, str]:
    """(scheme without +..., [(host, port)...], user info, path, query) of a multi-host URL."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    nodes = []
    for h in hosts.split(","):
        if h.strip():
            one = urlsplit("//" + h.strip())
            nodes.append((one.hostname, one.port or default_port))
    if not nodes:
        raise ValueError(f"{parts.scheme}:// needs at least one host:port")
    return parts.scheme.split("+")[0], nodes, userinfo, parts.path, parts.query


def _cluster(url: str) -> ClusterClient:
    """redis+cluster://[:PASSWORD@]HOST:PORT[,HOST:PORT...]: the hosts are where the client
    starts to discover the cluster (any one that answers is enough)."""
    scheme, nodes, userinfo, path, query = _hosts(url, 6379)
    if path.strip("/") not in ("", "0"):
        raise ValueError("A Redis Cluster has only database 0: drop the /N from REDIS_URL.")
    (host, port), rest = nodes[0], nodes[1:]
    netloc = (userinfo + "@" if userinfo else "") + f"{host}:{port}"
    if ":" in host:
        netloc = (userinfo + "@" if userinfo else "") + f"[{host}]:{port}"
    first = urlunsplit((scheme, netloc, "", query, ""))
    return ClusterClient.from_url(first, startup_nodes=[ClusterNode(h, p) for h, p in rest])


def _sentinel(url: str) -> redis.Redis:
    """redis+sentinel://[[USER]:PASSWORD@]HOST:26379[,HOST:26379...]/SERVICE[/DB]
    [?sentinel_password=...]: the master Sentinel names SERVICE; after a failover the client
    finds the new master by itself. The password is the master's."""
    from redis.sentinel import Sentinel

    scheme, nodes, userinfo, path, query = _hosts(url, 26379)
    names = [p for p in path.split("/") if p]
    if not names or len(names) > 2:
        raise ValueError("Write the Sentinel URL as redis+sentinel://HOST:26379/SERVICE[/DB], "
                         "e.g. redis+sentinel://10.0.0.5:26379,10.0.0.6:26379/tala/0")
    service, db = unquote(names[0]), int(names[1]) if len(names) == 2 else 0
    user, _, password = userinfo.partition(":")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    tls = {"ssl": True} if scheme == "rediss" else {}
    sentinel_kwargs = {"socket_timeout": 5, **tls}
    if options.get("sentinel_password"):
        sentinel_kwargs["password"] = options["sentinel_password"]
    sentinel = Sentinel(nodes, sentinel_kwargs=sentinel_kwargs, **tls)
    return sentinel.master_for(service, db=db, username=unquote(user) or None,
                               password=unquote(password) or None)
