"""The fast paths of query embedding, with the real model and database.

* A few texts go through the model's forward directly (no ``encode`` batching machinery):
  the vectors must be the ones ``encode`` gives, alone or padded in a small batch.
* A cache miss of a few texts is written with one INSERT whose commit skips the WAL flush
  wait; the setting must not outlive the statement, and inside a caller's transaction the
  row must follow the caller's commit or rollback.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import learnloop
from learnloop.embeddings import embed_with_cache
from learnloop.embeddings import local as local_mod
from learnloop.embeddings.base import content_hash
from learnloop.embeddings.local import LocalProvider


@pytest.fixture(scope="module")
def local() -> LocalProvider:
    return LocalProvider()


@pytest.fixture(scope="module")
def single(db_url: str) -> Iterator[Any]:
    ll = learnloop.connect(db_url, pool_min=1, pool_max=1)
    yield ll
    ll.close()


TEXTS = ["physical entity", "a small boat used for fishing along the northern coast",
         "the act of going somewhere", "build a web API in Python", "Ünïcödé and emoji 🙂 text",
         "x " * 400]  # the last one is longer than the model's 256-token window


def test_small_batches_give_the_vectors_encode_gives(local: LocalProvider) -> None:
    model = local._load()
    reference = model.encode(TEXTS, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                             show_progress_bar=False)
    assert len(TEXTS) <= local_mod.SMALL_BATCH
    together = local.embed(TEXTS)  # the direct forward, padded to the longest text
    alone = np.vstack([local.embed([t]) for t in TEXTS])
    assert together.dtype == np.float32 and together.shape == (len(TEXTS), 384)
    assert np.abs(together - reference).max() < 1e-5
    assert np.abs(alone - reference).max() < 1e-5
    assert np.allclose(np.linalg.norm(alone, axis=1), 1.0, atol=1e-5)
    # More than SMALL_BATCH texts still go through encode, and agree.
    many = local.embed(TEXTS * 2)
    assert np.abs(many - np.vstack([reference, reference])).max() < 1e-5


def _cached(conn: Any, tenant: Any, model: str, text: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM learnloop.embedding_cache WHERE tenant_id = %s AND model = %s AND content_hash = %s",
        (tenant, model, content_hash(text))).fetchone() is not None


def test_small_cache_write_leaves_the_session_as_it_was(single: Any, local: LocalProvider) -> None:
    tenant = single.scope.tenant_id
    with single.db.connection() as conn:
        before = conn.execute("SHOW synchronous_commit").fetchone()["synchronous_commit"]
        vec = embed_with_cache(conn, tenant, local, ["a memo written on its own"])
        assert conn.execute("SHOW synchronous_commit").fetchone()["synchronous_commit"] == before
        assert _cached(conn, tenant, local.model_id, "a memo written on its own")
        again = embed_with_cache(conn, tenant, local, ["a memo written on its own"])
    assert np.array_equal(vec, again)


def test_small_cache_write_follows_the_callers_transaction(single: Any, local: LocalProvider) -> None:
    tenant = single.scope.tenant_id
    with single.db.connection() as conn:
        before = conn.execute("SHOW synchronous_commit").fetchone()["synchronous_commit"]

        class Rollback(Exception):
            pass

        with pytest.raises(Rollback), conn.transaction():
            embed_with_cache(conn, tenant, local, ["rolled back with its caller"])
            assert _cached(conn, tenant, local.model_id, "rolled back with its caller")
            assert conn.execute("SHOW synchronous_commit").fetchone()["synchronous_commit"] == before
            raise Rollback
        assert not _cached(conn, tenant, local.model_id, "rolled back with its caller")
        with conn.transaction():
            embed_with_cache(conn, tenant, local, ["committed with its caller"])
        assert _cached(conn, tenant, local.model_id, "committed with its caller")
