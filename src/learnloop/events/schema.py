"""Service tables: API keys, idempotency keys, archive and relay positions, the NOTIFY trigger.

Positions in the outbox are ``(txid, id)`` pairs, never a bare ``id``: identity values are
handed out when a row is inserted, not when its transaction commits, so id 10 can become
visible after id 11. Every consumer (archive, relay, live stream) only reads events whose
``txid`` is below ``pg_snapshot_xmin(pg_current_snapshot())``: those transactions are over,
so nothing can appear later *behind* the position. See :mod:`learnloop.events.cursor`.

``archive_state`` and ``relay_state`` are process state of the whole installation (like
``migrations``), not tenant data: one archiver and one relay serve every tenant.
"""

from ..store.migrations import Migration, MigrationSet

M001_SERVICE = """
CREATE TABLE learnloop.api_keys (
    tenant_id    uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    scopes       text[] NOT NULL CHECK (scopes <@ ARRAY['ingest', 'read', 'admin']::text[]
                                        AND cardinality(scopes) > 0),
    salt         bytea NOT NULL,
    hash         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_used_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE learnloop.api_keys IS
    'HTTP API keys. The secret is never stored: only HMAC-SHA256(salt, secret).';
COMMENT ON COLUMN learnloop.api_keys.scopes IS 'ingest (write), read, admin (keys; implies the others).';
-- The key itself carries its id, so authentication finds the row before knowing the tenant.
CREATE UNIQUE INDEX api_keys_id_idx ON learnloop.api_keys (id);

CREATE TABLE learnloop.idempotency_keys (
    tenant_id     uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    request_hash  text NOT NULL,
    status_code   integer,
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
COMMENT ON TABLE learnloop.idempotency_keys IS
    'Idempotency-Key header of HTTP writes: written in the same transaction as the write, '
    'so a retried request replays the stored response instead of writing twice.';
CREATE INDEX idempotency_created_idx ON learnloop.idempotency_keys (created_at);

-- Consumers scan by transaction id; per tenant (stream) and across tenants (archive, relay).
CREATE INDEX events_tenant_txid_idx ON learnloop.events (tenant_id, txid, id);
CREATE INDEX events_txid_idx ON learnloop.events (txid, id);

CREATE TABLE learnloop.archive_state (
    name         text PRIMARY KEY DEFAULT 'default',
    watermark    xid8 NOT NULL DEFAULT '0'::xid8,
    archived     bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE learnloop.archive_state IS
    'Every event with txid < watermark is in the Parquet archive (installation state).';

CREATE TABLE learnloop.archive_batches (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state_name   text NOT NULL REFERENCES learnloop.archive_state (name),
    from_xid     xid8 NOT NULL,
    to_xid       xid8 NOT NULL,
    status       text NOT NULL DEFAULT 'writing' CHECK (status IN ('writing', 'done')),
    events       bigint,
    files        integer,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
COMMENT ON TABLE learnloop.archive_batches IS
    'Archive passes. A batch is recorded before its files are written; a crashed batch is '
    'redone with the same bounds and file names, so re-running never duplicates.';

CREATE TABLE learnloop.relay_state (
    name         text PRIMARY KEY,
    last_txid    xid8 NOT NULL DEFAULT '0'::xid8,
    last_id      bigint NOT NULL DEFAULT 0,
    published    bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE learnloop.relay_state IS
    'Broker relay position: events up to (last_txid, last_id) were confirmed by the broker.';

-- One notification per inserting statement and tenant (not per row: bulk imports write
-- thousands). Listeners re-read the outbox; the payload is only a wake-up call.
CREATE FUNCTION learnloop.notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t uuid;
BEGIN
    FOR t IN SELECT DISTINCT tenant_id FROM new_events LOOP
        PERFORM pg_notify('learnloop_events', t::text);
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER events_notify AFTER INSERT ON learnloop.events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION learnloop.notify_events();
"""

M002_EVENT_HORIZON = """
-- The xid below which every transaction that could write to THIS database's outbox has
-- finished. pg_snapshot_xmin() alone is cluster-wide: a long transaction in another
-- database of the same server would hold every consumer here back. We drop from the
-- snapshot's in-progress list only the xids positively known to run in another database
-- (a transaction never changes database); an xid we cannot place is kept, which can only
-- delay a consumer, never make it skip an event.
CREATE FUNCTION learnloop.event_horizon() RETURNS xid8 LANGUAGE sql STABLE AS $$
    WITH snap AS (SELECT pg_current_snapshot() AS s),
    elsewhere AS (
        SELECT backend_xid::text::bigint AS x FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()
    )
    SELECT coalesce(min(x), pg_snapshot_xmax((SELECT s FROM snap)))
    FROM pg_snapshot_xip((SELECT s FROM snap)) AS x
    WHERE (x::text::bigint % 4294967296) NOT IN (SELECT x FROM elsewhere)
$$;
COMMENT ON FUNCTION learnloop.event_horizon() IS
    'Outbox events with txid below this are final (committed or aborted) for this database.';
"""

M003_LISTENER_GATED_NOTIFY = """
-- NOTIFY costs every committing writer a global queue lock: about a tenth of single-log
-- throughput, paid even when nobody streams. Live readers now register here (with a
-- heartbeat) and the trigger fires only while some reader is registered. Readers poll as
-- well, so a notification that is skipped only delays them, never loses an event.
CREATE TABLE learnloop.stream_listeners (
    tenant_id  uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    listener   uuid NOT NULL,
    seen_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, listener)
);
COMMENT ON TABLE learnloop.stream_listeners IS
    'Live event readers (WebSocket hubs, library subscribers) with a heartbeat; writers notify only while one is fresh.';

CREATE FUNCTION learnloop.has_stream_listeners() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM learnloop.stream_listeners WHERE seen_at > now() - interval '60 seconds')
$$;

DROP TRIGGER events_notify ON learnloop.events;
CREATE TRIGGER events_notify AFTER INSERT ON learnloop.events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT WHEN (learnloop.has_stream_listeners())
    EXECUTE FUNCTION learnloop.notify_events();
"""

M004_SEQUENCE_GATE = """
-- The gate above ran an SQL function (a query on stream_listeners) for every statement that
-- wrote events: ~28 us of server time on each single log, about a tenth of its statement. The
-- same fact, "some reader heartbeated within the last 60 s", now lives in a sequence that
-- readers set (non-transactionally) and writers read without running a query.
CREATE SEQUENCE learnloop.stream_listeners_until MINVALUE 0 START 0;
COMMENT ON SEQUENCE learnloop.stream_listeners_until IS
    'Unix time (s) until which a live event reader is known to listen (its last heartbeat + 60 s); '
    'writers NOTIFY only before then. Kept by learnloop.sync_stream_listeners().';

CREATE FUNCTION learnloop.sync_stream_listeners() RETURNS bigint LANGUAGE sql AS $$
    SELECT setval('learnloop.stream_listeners_until',
                  coalesce((SELECT floor(date_part('epoch', max(seen_at)))::bigint + 60
                            FROM learnloop.stream_listeners), 0))
$$;
COMMENT ON FUNCTION learnloop.sync_stream_listeners() IS
    'Recompute learnloop.stream_listeners_until from stream_listeners (after a reader registers, heartbeats or leaves).';
SELECT learnloop.sync_stream_listeners();

DROP TRIGGER events_notify ON learnloop.events;
CREATE TRIGGER events_notify AFTER INSERT ON learnloop.events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT
    WHEN (pg_sequence_last_value('learnloop.stream_listeners_until'::regclass) > date_part('epoch', now()))
    EXECUTE FUNCTION learnloop.notify_events();
DROP FUNCTION learnloop.has_stream_listeners();
"""

M005_CLIENT_NOTIFY = """
-- On a Citus cluster (learnloop distribute) the events_notify trigger is dropped: it would
-- fire on the workers, where no listener is, and read a sequence that lives only on the
-- coordinator. There the writing client calls this, on the coordinator, after it wrote
-- events: the same gate and the same payload as the trigger. Unused on one server.
CREATE FUNCTION learnloop.notify_written(t uuid) RETURNS void LANGUAGE sql AS $$
    SELECT pg_notify('learnloop_events', t::text)
    WHERE pg_sequence_last_value('learnloop.stream_listeners_until'::regclass) > date_part('epoch', now())
$$;
COMMENT ON FUNCTION learnloop.notify_written(uuid) IS
    'Wake live readers of tenant t where no trigger does (a Citus cluster): called by the writing client.';
"""

MIGRATIONS = MigrationSet("service", [
    Migration("m001_keys_archive_relay_notify", M001_SERVICE),
    Migration("m002_event_horizon", M002_EVENT_HORIZON),
    Migration("m003_listener_gated_notify", M003_LISTENER_GATED_NOTIFY),
    Migration("m004_sequence_gated_notify", M004_SEQUENCE_GATE),
    Migration("m005_client_notify", M005_CLIENT_NOTIFY),
])
