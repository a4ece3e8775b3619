"""AES-256-GCM for face crops, under short-lived data keys held only in Redis.

Privacy rule 1 by construction: a crop is on Kafka only as ciphertext under a key that Redis forgets after
``crypto.key_ttl_s``. Readers cache a key no longer than its remaining Redis TTL, so once the TTL passes no
process anywhere can decrypt the crop, even from broker logs or backups. The associated data binds the
ciphertext to its crop, camera and deployment, so a chip cannot be replayed under another identity.

Probe crops kept with alerts (privacy rule 6) are sealed under a key per deployment, itself stored in Redis
only wrapped under the master alert key: purging a deployment destroys its key and with it every copy of its
probes, on the hits topic included.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from prometheus_client import Counter
from redis.exceptions import RedisError

from lfr.core.config import Settings
from lfr.core.ids import new_id
from lfr.core.redis_client import key as rkey
from lfr.core.redis_client import make_keystore_redis
from lfr.v1.common_pb2 import EncryptedBlob

NONCE_BYTES = 12
KEYSTORE_ERRORS = Counter(
    "lfr_keystore_errors_total", "Crop key store calls that failed (the key store unreachable)", ["operation"]
)
KEY_CHECK_S = 1.0  # how often an encrypting keyring checks that the key store still holds its key


class KeyExpired(Exception):
    """The data key is gone: the crop is deleted by design and must be counted, not retried."""


class DecryptFailed(Exception):
    """Ciphertext, nonce or associated data do not match: tampered or misrouted; dead-letter it."""


def crop_aad(crop_id: str, camera_id: str, deployment_id: str) -> bytes:
    return f"lfr.crop|{crop_id}|{camera_id}|{deployment_id}".encode()


def seal(
    key_id: str, key: bytes, plaintext: bytes, aad: bytes, content_type: str = "image/jpeg"
) -> EncryptedBlob:
    nonce = os.urandom(NONCE_BYTES)
    ct = AESGCM(key).encrypt(nonce, plaintext, aad)
    return EncryptedBlob(key_id=key_id, nonce=nonce, ciphertext=ct, content_type=content_type)


def open_blob(key: bytes, blob: EncryptedBlob, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(blob.nonce, blob.ciphertext, aad)
    except (InvalidTag, ValueError) as exc:
        raise DecryptFailed(f"blob under key {blob.key_id} failed authentication") from exc


@dataclass
class _CachedKey:
    key: bytes
    expires_at: float


class CropKeyring:
    """Creates, rotates and looks up crop data keys in the key store.

    The key store is a memory-only Redis of its own (``redis.keystore_url``; the local stack starts one),
    never the persistent Redis that holds alerts and deployments: no AOF file, snapshot, backup or replica on
    disk may ever hold a crop key. Losing the key store only makes in-flight crops unreadable, which the
    embedder counts as expired. Pass ``redis`` only to share one key-store client between keyrings.
    """

    def __init__(self, settings: Settings, redis: aioredis.Redis | None = None) -> None:
        self.settings = settings
        self._owns_client = redis is None
        self.redis = make_keystore_redis(settings) if redis is None else redis
        self._current: tuple[str, bytes, float] | None = None
        self._checked_at = 0.0
        self._cache: dict[str, _CachedKey] = {}

    def _redis_key(self, key_id: str) -> str:
        return rkey(self.settings, "cropkey", key_id)

    async def current(self) -> tuple[str, bytes]:
        try:
            return await self._current_key()
        except (RedisError, OSError):
            KEYSTORE_ERRORS.labels("current").inc()
            raise

    async def _current_key(self) -> tuple[str, bytes]:
        """The key to encrypt with now; a new one every ``key_rotation_s``, or as soon as the store lost it.

        The key store keeps nothing on disk, so a restart of it empties it. Checking once a second that the
        current key is still there bounds what such a restart costs to the crops in flight plus at most a
        second of new ones (otherwise every crop until the next rotation would be sealed under a lost key).
        """
        now = time.monotonic()
        if self._current is not None and now - self._checked_at >= KEY_CHECK_S:
            self._checked_at = now
            if not await self.redis.exists(self._redis_key(self._current[0])):
                self._current = None
        if self._current is None or now - self._current[2] >= self.settings.crypto.key_rotation_s:
            key_id, key = new_id(), AESGCM.generate_key(bit_length=256)
            await self.redis.set(self._redis_key(key_id), key, ex=self.settings.crypto.key_ttl_s, nx=True)
            self._current = (key_id, key, now)
            self._checked_at = now
        return self._current[0], self._current[1]

    async def encrypt(self, plaintext: bytes, aad: bytes) -> EncryptedBlob:
        key_id, key = await self.current()
        return seal(key_id, key, plaintext, aad)

    async def lookup(self, key_id: str) -> bytes:
        try:
            return await self._lookup(key_id)
        except (RedisError, OSError):
            KEYSTORE_ERRORS.labels("lookup").inc()
            raise

    async def _lookup(self, key_id: str) -> bytes:
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached and cached.expires_at > now:
            return cached.key
        self._cache.pop(key_id, None)
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self._redis_key(key_id))
        pipe.pttl(self._redis_key(key_id))
        value, pttl = await pipe.execute()
        if value is None or pttl is None or pttl <= 0:
            raise KeyExpired(f"crop key {key_id} has expired")
        self._cache[key_id] = _CachedKey(bytes(value), now + pttl / 1000.0)
        if len(self._cache) > 1024:
            for k in [k for k, v in self._cache.items() if v.expires_at <= now]:
                del self._cache[k]
        return bytes(value)

    async def decrypt(self, blob: EncryptedBlob, aad: bytes) -> bytes:
        return open_blob(await self.lookup(blob.key_id), blob, aad)

    async def aclose(self) -> None:
        """Close the key-store client if this keyring opened it."""
        if self._owns_client:
            await self.redis.aclose()


class AlertMasterKey:
    """The master alert key (a Secret in production): it only wraps the per-deployment alert keys.

    Probes are never sealed under it directly, so destroying one deployment's key shreds that deployment's
    probes without touching any other. The local stack generates one into the data dir once.
    """

    def __init__(self, settings: Settings) -> None:
        c = settings.crypto
        if c.alert_key is not None:
            raw = base64.b64decode(c.alert_key.get_secret_value())
        else:
            path = settings.data_dir / "secrets" / "alert.key"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(base64.b64encode(AESGCM.generate_key(bit_length=256)))
                os.chmod(tmp, 0o600)
                try:
                    os.link(tmp, path)  # first writer wins when several services start at once
                except FileExistsError:
                    pass
                tmp.unlink(missing_ok=True)
            raw = base64.b64decode(path.read_bytes())
        if len(raw) != 32:
            raise ValueError("crypto.alert_key must be 32 bytes, base64-encoded")
        self.key_id = c.alert_key_id
        self._key = raw
        self._retired: dict[str, bytes] = {}
        for key_id, secret in c.previous_alert_keys.items():
            old = base64.b64decode(secret.get_secret_value())
            if len(old) != 32:
                raise ValueError(f"crypto.previous_alert_keys[{key_id}] must be 32 bytes, base64-encoded")
            self._retired[key_id] = old

    def seal(self, plaintext: bytes, aad: bytes) -> EncryptedBlob:
        return seal(self.key_id, self._key, plaintext, aad, content_type="application/octet-stream")

    def open(self, blob: EncryptedBlob, aad: bytes) -> bytes:
        """Open a blob wrapped under the current master key or a retired one still within retention."""
        key = self._key if blob.key_id == self.key_id else self._retired.get(blob.key_id)
        if key is None:
            raise DecryptFailed(f"sealed under unknown or retired master key {blob.key_id}")
        return open_blob(key, blob, aad)


def _wrap_aad(deployment_id: str, data_key_id: str) -> bytes:
    return f"lfr.alertkey|{deployment_id}|{data_key_id}".encode()


@dataclass
class _DeploymentKey:
    key_id: str
    key: bytes
    fetched_at: float
    expires_at: float


class DeploymentAlertKeys:
    """Each deployment's alert-retention key: probe crops in hits and alerts are sealed under it.

    A probe travels on ``lfr.hits.v1``, whose records (and the broker's backups) outlive any purge that
    deletes records. So every deployment gets its own random AES-256 key, held only in Redis and only wrapped
    under the master key, with a TTL that follows the alert retention (refreshed while hits keep coming).
    ``lfr deployment stop --purge`` destroys it: from then on no probe of that deployment can be opened
    anywhere (crypto-shredding), and a key created for stray later hits has a new id that old probes do not
    carry. Processes cache a key for at most ``cache_s``: the only window in which a destroyed key still
    opens anything.
    """

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        master: AlertMasterKey | None = None,
        cache_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.master = master or AlertMasterKey(settings)
        self.cache_s = cache_s
        self.ttl_s = (settings.alerting.retention_days + 1) * 24 * 3600
        self._cache: dict[str, _DeploymentKey] = {}

    def redis_key(self, deployment_id: str) -> str:
        return rkey(self.settings, "alertkey", deployment_id)

    async def seal(self, deployment_id: str, plaintext: bytes, aad: bytes) -> EncryptedBlob:
        """Seal under the deployment's key, creating it on first use and keeping it alive for retention."""
        now = time.monotonic()
        cached = self._cache.get(deployment_id)
        if cached is None or now - cached.fetched_at >= self.cache_s:
            cached = await self._create_or_load(deployment_id, now)
        return seal(cached.key_id, cached.key, plaintext, aad)

    async def open(self, deployment_id: str, blob: EncryptedBlob, aad: bytes) -> bytes:
        """Raises KeyExpired once the deployment's key is destroyed or expired: the probe is deleted."""
        now = time.monotonic()
        cached = self._cache.get(deployment_id)
        if cached is None or cached.expires_at <= now or cached.key_id != blob.key_id:
            cached = await self._load(deployment_id, now)
            if cached is None or cached.key_id != blob.key_id:
                raise KeyExpired(f"the alert key {blob.key_id} of deployment {deployment_id} is destroyed")
        return open_blob(cached.key, blob, aad)

    async def destroy(self, deployment_id: str) -> bool:
        """Delete the deployment's key; returns whether one existed."""
        self._cache.pop(deployment_id, None)
        return bool(await self.redis.delete(self.redis_key(deployment_id)))

    async def _create_or_load(self, deployment_id: str, now: float) -> _DeploymentKey:
        key_id = f"alert-{new_id()}"
        key = AESGCM.generate_key(bit_length=256)
        wrapped = self.master.seal(key, _wrap_aad(deployment_id, key_id))
        record = json.dumps(
            {
                "key_id": key_id,
                "master_key_id": wrapped.key_id,
                "nonce": base64.b64encode(wrapped.nonce).decode(),
                "wrapped": base64.b64encode(wrapped.ciphertext).decode(),
            }
        )
        rk = self.redis_key(deployment_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(rk, record, ex=self.ttl_s, nx=True)  # several embedders may race: the first key wins
        pipe.expire(rk, self.ttl_s)  # every seal pushes the end of retention out
        await pipe.execute()
        loaded = await self._load(deployment_id, now)
        if loaded is None:  # destroyed between the two calls: seal under a key nobody can open later
            raise KeyExpired(f"the alert key of deployment {deployment_id} was destroyed while sealing")
        return loaded

    async def _load(self, deployment_id: str, now: float) -> _DeploymentKey | None:
        raw = await self.redis.get(self.redis_key(deployment_id))
        if raw is None:
            self._cache.pop(deployment_id, None)
            return None
        rec = json.loads(raw)
        wrapped = EncryptedBlob(
            key_id=rec["master_key_id"],
            nonce=base64.b64decode(rec["nonce"]),
            ciphertext=base64.b64decode(rec["wrapped"]),
        )
        aad = _wrap_aad(deployment_id, rec["key_id"])
        key = self.master.open(wrapped, aad)
        if wrapped.key_id != self.master.key_id:
            # Master key rotated: re-wrap so the retired master can leave previous_alert_keys.
            again = self.master.seal(key, aad)
            rec.update(
                master_key_id=again.key_id,
                nonce=base64.b64encode(again.nonce).decode(),
                wrapped=base64.b64encode(again.ciphertext).decode(),
            )
            await self.redis.set(self.redis_key(deployment_id), json.dumps(rec), xx=True, keepttl=True)
        entry = _DeploymentKey(rec["key_id"], key, now, now + self.cache_s)
        self._cache[deployment_id] = entry
        return entry


def probe_aad(hit_or_crop_id: str, deployment_id: str) -> bytes:
    return f"lfr.probe|{hit_or_crop_id}|{deployment_id}".encode()
