"""Parquet archive: exactly once (late commits included), path safety, crash safety,
compaction, retention, DuckDB analytics over archive + live rows."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import learnloop
from learnloop.errors import InvalidInput
from learnloop.events import archive as ar


def _archived_ids(root: Path) -> list[int]:
    ids: list[int] = []
    for f in sorted(root.rglob("*.parquet")):
        ids.extend(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return ids


def _outbox_ids(ll: learnloop.Client) -> list[int]:
    with ll.db.connection() as conn:
        return [r["id"] for r in conn.execute("SELECT id FROM learnloop.events ORDER BY id").fetchall()]


def test_archive_exactly_once_with_a_late_commit(fresh_client: learnloop.Client, tmp_path: Path) -> None:
    ll = fresh_client
    for i in range(5):
        ll.log(kind="chat", prompt=f"q{i}", user_ref="ana")
    # A transaction takes an event id early and commits after a later one was archived.
    late = psycopg.connect(ll.db.url, autocommit=False)
    late.execute(
        "INSERT INTO learnloop.events (tenant_id, entity_type, entity_id, event_type)"
        " VALUES (%s, 'test', 'late', 'test.late')", (ll.scope.tenant_id,))
    late_id = late.execute("SELECT max(id) FROM learnloop.events").fetchone()[0]
    after = ll.log(kind="chat", prompt="after the late one")
    assert after is not None

    first = ll.events.archive(root=str(tmp_path))
    got = _archived_ids(tmp_path)
    assert late_id not in got, "an uncommitted event must not be archived"
    # Events of transactions that committed after the late one started wait too: safe, not lost.
    assert first["events"] == len(got) >= 5

    late.commit()
    late.close()
    ll.events.archive(root=str(tmp_path))
    ll.events.archive(root=str(tmp_path))  # re-running adds nothing
    got = _archived_ids(tmp_path)
    assert sorted(got) == _outbox_ids(ll), "every committed event exactly once"
    assert len(got) == len(set(got))


def test_aborted_transaction_events_never_archived(fresh_client: learnloop.Client, tmp_path: Path) -> None:
    ll = fresh_client
    ll.log(kind="chat", prompt="kept")
    with psycopg.connect(ll.db.url) as c:
        c.execute("INSERT INTO learnloop.events (tenant_id, entity_type, entity_id, event_type)"
                  " VALUES (%s, 'test', 'x', 'test.aborted')", (ll.scope.tenant_id,))
        c.rollback()
    ll.events.archive(root=str(tmp_path))
    ll.log(kind="chat", prompt="next")
    ll.events.archive(root=str(tmp_path))
    assert sorted(_archived_ids(tmp_path)) == _outbox_ids(ll)


def test_crashed_batch_is_redone_without_duplicates(fresh_client: learnloop.Client, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ll = fresh_client
    other = ll.scoped(tenant="tenant-b")
    for i in range(4):
        ll.log(kind="chat", prompt=f"a{i}")
        other.log(kind="chat", prompt=f"b{i}")
    archiver = ar.Archiver(ll.db, tmp_path)
    real = ar.ArchiveRoot.write_whole
    calls = {"n": 0}

    def dying(self, rel_dir, name, table, metadata=None):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:  # the first file is in place, the second dies mid-write
            d = self.path(rel_dir)
            Path(d).mkdir(parents=True, exist_ok=True)
            with open(f"{d}/.{name}.crash.tmp", "wb") as f:
                f.write(b"PAR1 half a file")
            raise KeyboardInterrupt("killed")
        return real(self, rel_dir, name, table, metadata)

    monkeypatch.setattr(ar.ArchiveRoot, "write_whole", dying)
    with pytest.raises(KeyboardInterrupt):
        archiver.run()
    monkeypatch.setattr(ar.ArchiveRoot, "write_whole", real)
    assert len(list(tmp_path.rglob("*.parquet"))) == 1
    assert list(tmp_path.rglob("*.tmp")), "the killed write left its temp file"
    res = archiver.run()
    assert res.redone == 1 and res.temps_removed == 1
    assert not list(tmp_path.rglob("*.tmp"))
    assert sorted(_archived_ids(tmp_path)) == _outbox_ids(ll)
    for f in tmp_path.rglob("*.parquet"):
        pq.read_table(f)  # every file is whole


def test_partitions_and_schema(fresh_client: learnloop.Client, tmp_path: Path) -> None:
    ll = fresh_client.scoped(tenant="../../etc/ä ü/%2e%2e")
    g = ll.log(kind="image", prompt="p", user_ref="u1")
    ll.feedback(g.id, sentiment="NEGATIVE", tags=["TOO_DARK"])
    ll.events.archive(root=str(tmp_path))
    files = list(tmp_path.rglob("*.parquet"))
    assert files and all(tmp_path in f.resolve().parents for f in files)
    tenant_dirs = {p.name for p in tmp_path.iterdir() if p.is_dir()}
    enc = [d for d in tenant_dirs if d.startswith("tenant=%2E")]
    assert len(enc) == 1 and ar.decode_value(enc[0][len("tenant="):]) == "../../etc/ä ü/%2e%2e"
    t = pq.read_table(files[0])
    assert t.schema.equals(ar.SCHEMA, check_metadata=False)
    row = [r for r in t.to_pylist() if r["event_type"] == "feedback.added"][0]
    assert row["tenant"] == "../../etc/ä ü/%2e%2e"
    assert json.loads(row["payload"])["tags"] == ["TOO_DARK"]
    parts = files[0].relative_to(tmp_path).parts
    day = row["created_at"]
    assert parts[1:4] == (f"year={day.year:04d}", f"month={day.month:02d}", f"day={day.day:02d}")


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=60))
def test_partition_values_round_trip_and_stay_inside(value: str) -> None:
    enc = ar.encode_value(value)
    assert ar.decode_value(enc) == value
    assert "/" not in enc and "." not in enc and "\\" not in enc and enc not in ("", "..")
    root = ar.ArchiveRoot(None, "/archive", "/archive")  # type: ignore[arg-type]
    assert root.path(f"tenant={enc}/year=2026").startswith("/archive/tenant=")


def test_overlong_tenant_name_falls_back_to_its_id() -> None:
    name = "ñ" * 200
    d = ar.tenant_dir(name, "0192f000-0000-7000-8000-000000000000")
    assert d == "tenant=~0192f000-0000-7000-8000-000000000000" and len(d) < 255


def test_root_path_refuses_traversal(tmp_path: Path) -> None:
    root = ar.ArchiveRoot.open(tmp_path)
    for bad in ("../x", "a/../../b", "a//b", "./a"):
        with pytest.raises(InvalidInput):
            root.path(bad)


def test_uri_root_and_compaction(fresh_client: learnloop.Client, tmp_path: Path) -> None:
    ll = fresh_client
    uri = f"file://{tmp_path}/arch"
    for i in range(5):
        ll.log(kind="chat", prompt=f"q{i}", user_ref="ana")
        ll.events.archive(root=uri)
    before = sorted(_archived_ids(tmp_path / "arch"))
    assert len(list((tmp_path / "arch").rglob("part-*.parquet"))) >= 4
    res = ar.Archiver(ll.db, uri).run(compact=True)
    assert res.compacted >= 4
    assert sorted(_archived_ids(tmp_path / "arch")) == before
    assert list((tmp_path / "arch").rglob("compact-*.parquet"))


def test_crashed_compaction_is_repaired(fresh_client: learnloop.Client, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ll = fresh_client
    for i in range(4):
        ll.log(kind="chat", prompt=f"q{i}")
        ll.events.archive(root=str(tmp_path))
    expected = sorted(_archived_ids(tmp_path))
    # Killed after the compacted file was renamed into place, before its sources were deleted.
    monkeypatch.setattr(ar, "_quietly", lambda fn, *args: None)
    ar.Archiver(ll.db, tmp_path).run(compact=True)
    monkeypatch.undo()
    assert len(_archived_ids(tmp_path)) > len(expected)  # duplicates on disk for now
    ar.Archiver(ll.db, tmp_path).run()
    assert sorted(_archived_ids(tmp_path)) == expected


def test_retention_prunes_only_archived_rows(fresh_client: learnloop.Client, tmp_path: Path) -> None:
    ll = fresh_client
    ll.log(kind="chat", prompt="old")
    ll.events.archive(root=str(tmp_path))
    ll.log(kind="chat", prompt="new, not archived")
    n_before = len(_outbox_ids(ll))
    deleted = ll.events.prune(older_than_days=0, root=str(tmp_path))
    assert deleted == len(_archived_ids(tmp_path)) and deleted >= 1
    assert len(_outbox_ids(ll)) == n_before - deleted
    # The analytics view still sees everything: archive for pruned rows, live for the rest.
    counts = {r["event_type"]: r["events"] for r in ll.events.by_type_and_day(root=str(tmp_path))}
    assert counts["generation.logged"] == 2


def test_duckdb_analytics_over_archive_and_live(fresh_client: learnloop.Client, tmp_path: Path) -> None:
    ll = fresh_client
    for user, n in (("ana", 3), ("ben", 1)):
        for i in range(n):
            g = ll.log(kind="chat", prompt=f"{user}{i}", user_ref=user)
    ll.feedback(g.id, thumbs="up", author_ref="ben")
    ll.events.archive(root=str(tmp_path))
    ll.log(kind="chat", prompt="live only", user_ref="ana")  # not archived yet
    ll.scoped(tenant="someone-else").log(kind="chat", prompt="x", user_ref="ana")

    rows = ll.events.by_type_and_day(days=1, root=str(tmp_path))
    counts = {r["event_type"]: r["events"] for r in rows}
    assert counts == {"generation.logged": 5, "feedback.added": 1}
    act = {r["user"]: r for r in ll.events.activity(days=7, root=str(tmp_path))}
    assert act["ana"]["events"] == 4 and act["ben"]["events"] == 2
    assert act["ana"]["active_days"] == 1
    out = ll.events.sql("SELECT count(*) AS n, count(DISTINCT tenant) AS t FROM events", root=str(tmp_path))
    assert out["columns"] == ["n", "t"] and out["rows"] == [[6, 1]]


def test_user_sql_cannot_read_files_or_break(fresh_client: learnloop.Client, tmp_path: Path) -> None:
    ll = fresh_client
    ll.log(kind="chat", prompt="x")
    with pytest.raises(InvalidInput, match="failed"):
        ll.events.sql("SELECT * FROM read_csv('/etc/passwd')", root=str(tmp_path))
    with pytest.raises(InvalidInput, match="failed"):
        ll.events.sql("SELEC nonsense", root=str(tmp_path))
    with pytest.raises(InvalidInput, match="empty"):
        ll.events.sql("  ", root=str(tmp_path))


def test_prune_keeps_what_the_slowest_relay_has_not_published(fresh_client: learnloop.Client, tmp_path: Path) -> None:
    """Prune reads the relays' positions first and deletes only up to the slowest one (on
    Citus it cannot join the coordinator's relay_state with the distributed outbox)."""
    ll = fresh_client
    for i in range(4):
        ll.log(kind="chat", prompt=f"event {i}")
    ll.events.archive(root=str(tmp_path))
    with ll.db.connection() as conn:
        rows = conn.execute("SELECT id, txid::text AS txid FROM learnloop.events WHERE tenant_id = %s"
                            " ORDER BY txid, id", (ll.scope.tenant_id,)).fetchall()
        assert len(rows) >= 4
        slow, fast = rows[1], rows[-1]
        conn.execute("INSERT INTO learnloop.relay_state (name, last_txid, last_id) VALUES"
                     " ('slow', %s::xid8, %s), ('fast', %s::xid8, %s)",
                     (slow["txid"], slow["id"], fast["txid"], fast["id"]))
    try:
        deleted = ll.events.prune(older_than_days=0, root=str(tmp_path))
        assert deleted == 2  # the events up to and including the slow relay's position
        assert _outbox_ids(ll) == sorted(r["id"] for r in rows[2:])
    finally:
        with ll.db.connection() as conn:
            conn.execute("DELETE FROM learnloop.relay_state WHERE name IN ('slow', 'fast')")
