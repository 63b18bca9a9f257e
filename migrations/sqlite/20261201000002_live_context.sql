-- Live context: devices report their state (status, load, battery, position, property
-- values) often. Each report is a journal row with op 'context' whose body holds only the
-- live context. It leaves the resource's version alone, so it is outside the
-- one-row-per-version guard, and older reports of a device are pruned down to a
-- configured history.
--
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt.
CREATE TABLE journal_new (
    seq         INTEGER PRIMARY KEY,
    tenant      TEXT    NOT NULL,
    resource_id TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    -- For a context row: the version of the description it was reported against.
    version     INTEGER NOT NULL CHECK (version >= 1),
    op          TEXT    NOT NULL CHECK (op IN ('create', 'update', 'delete', 'context')),
    actor       TEXT    NOT NULL,
    source      TEXT    NOT NULL CHECK (source IN ('http', 'mqtt', 'cli')),
    at_ms       INTEGER NOT NULL,
    -- The full new description in the native JSON form (the live context alone for a
    -- context row); NULL for a delete.
    body        TEXT
);
INSERT INTO journal_new SELECT * FROM journal;
DROP TABLE journal;
ALTER TABLE journal_new RENAME TO journal;

CREATE UNIQUE INDEX journal_resource_version ON journal (tenant, resource_id, version)
    WHERE op <> 'context';
-- A device's recent context reports, newest first; also what pruning walks.
CREATE INDEX journal_context ON journal (tenant, resource_id, seq) WHERE op = 'context';

-- Messages the MQTT gateway could not accept, kept for operators to inspect.
CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The tenant the message was for, or the client's own tenant when the topic named
    -- one it may not write; NULL when no tenant could be read from the topic.
    tenant      TEXT,
    topic       TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    -- The payload as received, cut to a bounded size.
    payload     BLOB    NOT NULL,
    payload_len INTEGER NOT NULL,
    at_ms       INTEGER NOT NULL
);
CREATE INDEX dead_letters_tenant ON dead_letters (tenant, id);
