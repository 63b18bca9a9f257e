-- API keys. Only a SHA-256 hash of each key's secret is kept; the secret is shown once,
-- when the key is created. Every key belongs to one tenant and has one role.
CREATE TABLE api_keys (
    -- The public part of the key (`ick_{key_id}_{secret}`): looks the key up without
    -- revealing anything about the secret.
    key_id      TEXT    PRIMARY KEY,
    tenant      TEXT    NOT NULL,
    role        TEXT    NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    name        TEXT    NOT NULL,
    secret_hash TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL,
    -- Set when revoked; revoked keys stay listed so the audit trail keeps their names.
    revoked_ms  INTEGER
);

CREATE INDEX api_keys_tenant ON api_keys (tenant);
