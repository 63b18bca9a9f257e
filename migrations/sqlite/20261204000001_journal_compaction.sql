-- Journal compaction: rows superseded before the retention window are removed, so a
-- replay costs the live state plus the window's changes, not the whole history.

-- A row whose earlier versions were compacted away carries the resource's creation
-- time, which a replay can no longer read from the create row.
ALTER TABLE journal ADD COLUMN created_ms INTEGER;

-- One row: how far compaction has gone.
CREATE TABLE journal_compaction (
    id                     INTEGER PRIMARY KEY CHECK (id = 1),
    -- Superseded rows at or before this position are gone.
    compacted_through_seq  INTEGER NOT NULL,
    -- History is complete from this time on: the version in effect at any later time
    -- is still in the journal.
    history_from_ms        INTEGER NOT NULL,
    -- The newest deletion removed. A graph (snapshot or replica) older than this may
    -- still hold a resource whose deletion it can no longer replay, so it is rebuilt.
    tombstones_through_seq INTEGER NOT NULL,
    -- Counts the removals of deletions. A replica reading the journal while one happens
    -- may have missed a deletion, and it checks this count to know.
    epoch                  INTEGER NOT NULL,
    -- When a replica last took the compaction run, so replicas do not all run it.
    claimed_ms             INTEGER NOT NULL
);
INSERT INTO journal_compaction
    (id, compacted_through_seq, history_from_ms, tombstones_through_seq, epoch, claimed_ms)
VALUES (1, 0, 0, 0, 0, 0);
