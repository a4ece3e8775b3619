"""An on-disk cache of evaluation embeddings, keyed by model pair and image file.

Why: the open-set development set (CFP, 7,000 photos) takes minutes to embed on one core, and the
decisions it informs need many protocols over the same embeddings (one, three or five enrolled images,
frontal-only probes, simulated tracks, another seed). ``lfr eval identify --cache DIR`` embeds each photo
once per detector + embedder + tight-crop policy and reuses the result; a file whose size or modification
time changed is embedded again. Only evaluation uses it: the data sets are public photos of public figures
the user passes on the command line, never live faces.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from lfr.evaluation.embedding import EmbedOutcome, EvalEmbedder, TightPolicy
from lfr.vision import FaceAnalyzer

log = logging.getLogger(__name__)

FORMAT = 1


def _stamp(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


class EmbeddingCache:
    """Loads into and saves from an :class:`EvalEmbedder`'s in-memory cache."""

    def __init__(self, directory: Path, embedder: EvalEmbedder) -> None:
        analyzer = embedder.analyzer
        # Mirrored templates get their own file; probe caches keep the key (and file) they always had.
        mirrored = embedder.template and analyzer.mirrors_templates
        key = json.dumps(
            {
                **({"mirrored_template": True} if mirrored else {}),
                "format": FORMAT,
                "detector": getattr(analyzer.detector, "model_id", "?"),
                "embedder": analyzer.embedder.model_id,
                "templates": analyzer.embedder.card.model_dump(mode="json")["templates"],
                "tight": embedder.tight,
                "flip": analyzer.settings.models.embed_flip,
                "max_side": embedder.max_side,
                "detector_settings": analyzer.settings.detector.model_dump(mode="json"),
                "quality_settings": analyzer.settings.quality.model_dump(mode="json"),
            },
            sort_keys=True,
        )
        self.path = Path(directory) / f"embeddings-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
        self.key = key
        self.embedder = embedder

    def load(self) -> int:
        """Put every still-valid cached outcome into the embedder's cache; return how many."""
        if not self.path.is_file():
            return 0
        with np.load(self.path, allow_pickle=False) as z:
            if str(z["key"]) != self.key:
                return 0
            paths, stamps, status = z["paths"], z["stamps"], z["status"]
            vectors, ok, passed, score = z["vectors"], z["has_vector"], z["passed"], z["score"]
        n = 0
        for i, p in enumerate(paths.tolist()):
            path = Path(p)
            if _stamp(path) != stamps[i]:
                continue
            vec = vectors[i].astype(np.float32) if ok[i] else None
            self.embedder.cache[path] = EmbedOutcome(
                str(status[i]),  # type: ignore[arg-type]
                vec,
                bool(passed[i]),
                float(score[i]),
            )
            n += 1
        log.info("embedding cache: %d outcomes reused from %s", n, self.path)
        return n

    def save(self) -> Path:
        items = sorted(self.embedder.cache.items(), key=lambda kv: str(kv[0]))
        dim = next((len(o.vector) for _, o in items if o.vector is not None), 1)
        vectors = np.zeros((len(items), dim), dtype=np.float32)
        for i, (_, o) in enumerate(items):
            if o.vector is not None:
                vectors[i] = o.vector
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp,
            key=np.array(self.key),
            paths=np.array([str(p) for p, _ in items]),
            stamps=np.array([_stamp(p) for p, _ in items]),
            status=np.array([o.status for _, o in items]),
            vectors=vectors,
            has_vector=np.array([o.vector is not None for _, o in items]),
            passed=np.array([o.quality_passed for _, o in items]),
            score=np.array([o.quality_score for _, o in items], dtype=np.float32),
        )
        tmp.replace(self.path)
        return self.path


def embed_cached(
    analyzer: FaceAnalyzer,
    paths: Iterable[Path],
    *,
    tight: TightPolicy = "auto",
    cache_dir: Path | None = None,
    progress: bool = False,
    template: bool = False,
) -> EvalEmbedder:
    """Every path embedded once, reusing and then updating the on-disk cache when ``cache_dir`` is given.

    ``template=True`` embeds the photos as enrolment templates (``PhotoEmbedder``), kept in a cache file
    of their own: evaluation enrols its gallery the way production enrols a watchlist photo.
    """
    emb = EvalEmbedder(analyzer, tight, template=template)
    cache = EmbeddingCache(cache_dir, emb) if cache_dir is not None else None
    if cache is not None:
        cache.load()
    emb.embed_all(paths, progress=progress)
    if cache is not None:
        cache.save()
    return emb
