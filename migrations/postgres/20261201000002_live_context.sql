-- Live context: devices report their state (status, load, battery, position, property
-- values) often. Each report is a journal row with op 'context' whose body holds only the
-- live context. It leaves the resource's version alone, so it is outside the
-- one-row-per-version guard, and older reports of a device are pruned down to a
-- configured history.
ALTER TABLE journal DROP CONSTRAINT journal_op_check;
ALTER TABLE journal ADD CONSTRAINT journal_op_check
    CHECK (op IN ('create', 'update', 'delete', 'context'));

DROP INDEX journal_resource_version;
CREATE UNIQUE INDEX journal_resource_version ON journal (tenant, resource_id, version)
    WHERE op <> 'context';
-- A device's recent context reports, newest first; also what pruning walks.
CREATE INDEX journal_context ON journal (tenant, resource_id, seq) WHERE op = 'context';

-- Messages the MQTT gateway could not accept, kept for operators to inspect.
CREATE TABLE dead_letters (
    id          BIGSERIAL PRIMARY KEY,
    -- The tenant the message was for, or the client's own tenant when the topic named
    -- one it may not write; NULL when no tenant could be read from the topic.
    tenant      TEXT,
    topic       TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    -- The payload as received, cut to a bounded size.
    payload     BYTEA   NOT NULL,
    payload_len BIGINT  NOT NULL,
    at_ms       BIGINT  NOT NULL
);
CREATE INDEX dead_letters_tenant ON dead_letters (tenant, id);
