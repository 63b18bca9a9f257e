-- Recommendations: each answer the recommender gave, kept so that feedback can refer to
-- it, subscriptions can re-evaluate it, and dashboards can read it again. They are
-- records of what was answered, not knowledge: accepted ones become cases in the journal.
CREATE TABLE recommendations (
    tenant     TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    created_ms BIGINT  NOT NULL,
    actor      TEXT    NOT NULL,
    -- The context as given (JSON) and the answer (JSON).
    context    TEXT    NOT NULL,
    result     TEXT    NOT NULL,
    -- The recommendation this one re-evaluates, for a subscription.
    supersedes TEXT,
    -- 1 while subscribed: re-evaluated when knowledge or live context changes.
    subscribed INTEGER NOT NULL DEFAULT 0 CHECK (subscribed IN (0, 1)),
    -- The objective improvement that makes a better configuration worth announcing.
    margin     DOUBLE PRECISION,
    -- The latest feedback (JSON) and the case it made, if accepted.
    feedback   TEXT,
    case_id    TEXT,
    PRIMARY KEY (tenant, id)
);

CREATE INDEX recommendations_subscribed ON recommendations (subscribed, tenant);
CREATE INDEX recommendations_created ON recommendations (tenant, created_ms);
