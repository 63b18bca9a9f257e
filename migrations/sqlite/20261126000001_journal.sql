-- The journal: every accepted change, in commit order. It is the source of truth; the
-- knowledge graph is rebuilt from it (plus a snapshot) on start.
CREATE TABLE journal (
    -- Position in the journal, handed out under the journal_head row lock so that
    -- positions commit in order and a tailer never skips one.
    seq         INTEGER PRIMARY KEY,
    tenant      TEXT    NOT NULL,
    resource_id TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    -- 1 for the first version; a delete is a version too, and re-creating continues the count.
    version     INTEGER NOT NULL CHECK (version >= 1),
    op          TEXT    NOT NULL CHECK (op IN ('create', 'update', 'delete')),
    actor       TEXT    NOT NULL,
    source      TEXT    NOT NULL CHECK (source IN ('http', 'mqtt', 'cli')),
    at_ms       INTEGER NOT NULL,
    -- The full new description in the native JSON form; NULL for a delete.
    body        TEXT
);

-- History of one resource, and the guard against two writers making the same version.
CREATE UNIQUE INDEX journal_resource_version ON journal (tenant, resource_id, version);

-- The current version of every resource ever written: the optimistic-concurrency check
-- reads it inside the writing transaction.
CREATE TABLE resources (
    tenant      TEXT    NOT NULL,
    resource_id TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    deleted     INTEGER NOT NULL DEFAULT 0,
    created_ms  INTEGER NOT NULL,
    updated_seq INTEGER NOT NULL,
    PRIMARY KEY (tenant, resource_id)
);

-- One row: the last handed-out journal position. Writers update it first, which takes
-- the write lock for the whole transaction.
CREATE TABLE journal_head (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO journal_head (id, seq) VALUES (1, 0);

-- Identity of this journal, so a snapshot taken from another database is never loaded.
CREATE TABLE journal_meta (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    journal_id TEXT NOT NULL
);
INSERT INTO journal_meta (id, journal_id) VALUES (1, lower(hex(randomblob(16))));
