//! Recommendation records in the journal database: what was answered, to which context,
//! whether it is subscribed to, and the feedback it got.

use sqlx::Row;

use crate::KnowledgeStore;
use crate::error::StoreError;
use crate::journal::{Journal, on_pool};

/// One recommendation as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RecommendationRecord {
    pub tenant: String,
    pub id: String,
    pub created_ms: i64,
    pub actor: String,
    /// The context, as JSON text.
    pub context: String,
    /// The answer, as JSON text.
    pub result: String,
    pub supersedes: Option<String>,
    pub subscribed: bool,
    pub margin: Option<f64>,
    /// The latest feedback, as JSON text.
    pub feedback: Option<String>,
    pub case_id: Option<String>,
}

struct RecSql {
    insert: &'static str,
    by_id: &'static str,
    list: &'static str,
    subscribed: &'static str,
    claim: &'static str,
    set_subscription: &'static str,
    set_feedback: &'static str,
}

const SQLITE: RecSql = RecSql {
    insert: "INSERT INTO recommendations (tenant, id, created_ms, actor, context, result, supersedes, subscribed, margin) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    by_id: "SELECT tenant, id, created_ms, actor, context, result, supersedes, subscribed, margin, feedback, case_id \
            FROM recommendations WHERE tenant = ? AND id = ?",
    list: "SELECT tenant, id, created_ms, actor, context, result, supersedes, subscribed, margin, feedback, case_id \
           FROM recommendations WHERE tenant = ? AND created_ms < ? ORDER BY created_ms DESC, id DESC LIMIT ?",
    subscribed: "SELECT tenant, id, created_ms, actor, context, result, supersedes, subscribed, margin, feedback, case_id \
                 FROM recommendations WHERE subscribed = 1 AND tenant = ? ORDER BY created_ms, id",
    claim: "UPDATE recommendations SET lease_owner = ?, lease_until_ms = ? \
            WHERE tenant = ? AND id = ? AND subscribed = 1 \
            AND (lease_owner IS NULL OR lease_owner = ? OR lease_until_ms < ?)",
    set_subscription: "UPDATE recommendations SET subscribed = ?, margin = ? WHERE tenant = ? AND id = ?",
    set_feedback: "UPDATE recommendations SET feedback = ?, case_id = COALESCE(?, case_id) WHERE tenant = ? AND id = ?",
};

const POSTGRES: RecSql = RecSql {
    insert: "INSERT INTO recommendations (tenant, id, created_ms, actor, context, result, supersedes, subscribed, margin) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    by_id: "SELECT tenant, id, created_ms, actor, context, result, supersedes, subscribed, margin, feedback, case_id \
            FROM recommendations WHERE tenant = $1 AND id = $2",
    list: "SELECT tenant, id, created_ms, actor, context, result, supersedes, subscribed, margin, feedback, case_id \
           FROM recommendations WHERE tenant = $1 AND created_ms < $2 ORDER BY created_ms DESC, id DESC LIMIT $3",
    subscribed: "SELECT tenant, id, created_ms, actor, context, result, supersedes, subscribed, margin, feedback, case_id \
                 FROM recommendations WHERE subscribed = 1 AND tenant = $1 ORDER BY created_ms, id",
    claim: "UPDATE recommendations SET lease_owner = $1, lease_until_ms = $2 \
            WHERE tenant = $3 AND id = $4 AND subscribed = 1 \
            AND (lease_owner IS NULL OR lease_owner = $5 OR lease_until_ms < $6)",
    set_subscription: "UPDATE recommendations SET subscribed = $1, margin = $2 WHERE tenant = $3 AND id = $4",
    set_feedback: "UPDATE recommendations SET feedback = $1, case_id = COALESCE($2, case_id) WHERE tenant = $3 AND id = $4",
};

fn record<R: Row>(row: &R) -> Result<RecommendationRecord, StoreError>
where
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i32: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<f64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    Ok(RecommendationRecord {
        tenant: row.try_get("tenant")?,
        id: row.try_get("id")?,
        created_ms: row.try_get("created_ms")?,
        actor: row.try_get("actor")?,
        context: row.try_get("context")?,
        result: row.try_get("result")?,
        supersedes: row.try_get("supersedes")?,
        subscribed: row.try_get::<i32, _>("subscribed")? != 0,
        margin: row.try_get("margin")?,
        feedback: row.try_get("feedback")?,
        case_id: row.try_get("case_id")?,
    })
}

impl Journal {
    async fn insert_recommendation(&self, r: &RecommendationRecord) -> Result<(), StoreError> {
        on_pool!(self, pool, _sql, {
            let sql = pick(self);
            sqlx::query(sql.insert)
                .bind(&r.tenant)
                .bind(&r.id)
                .bind(r.created_ms)
                .bind(&r.actor)
                .bind(&r.context)
                .bind(&r.result)
                .bind(r.supersedes.as_deref())
                .bind(i32::from(r.subscribed))
                .bind(r.margin)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    async fn recommendation(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<RecommendationRecord>, StoreError> {
        on_pool!(self, pool, _sql, {
            let row = sqlx::query(pick(self).by_id)
                .bind(tenant)
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(record).transpose()
        })
    }

    async fn recommendations(
        &self,
        tenant: &str,
        before_ms: i64,
        limit: i64,
    ) -> Result<Vec<RecommendationRecord>, StoreError> {
        on_pool!(self, pool, _sql, {
            let rows = sqlx::query(pick(self).list)
                .bind(tenant)
                .bind(before_ms)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter().map(record).collect()
        })
    }

    async fn subscribed_recommendations(
        &self,
        tenant: &str,
    ) -> Result<Vec<RecommendationRecord>, StoreError> {
        on_pool!(self, pool, _sql, {
            let rows = sqlx::query(pick(self).subscribed)
                .bind(tenant)
                .fetch_all(pool)
                .await?;
            rows.iter().map(record).collect()
        })
    }

    async fn claim_subscription(
        &self,
        tenant: &str,
        id: &str,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        on_pool!(self, pool, _sql, {
            let done = sqlx::query(pick(self).claim)
                .bind(owner)
                .bind(now_ms + lease_ms)
                .bind(tenant)
                .bind(id)
                .bind(owner)
                .bind(now_ms)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    async fn set_subscription(
        &self,
        tenant: &str,
        id: &str,
        subscribed: bool,
        margin: Option<f64>,
    ) -> Result<bool, StoreError> {
        on_pool!(self, pool, _sql, {
            let done = sqlx::query(pick(self).set_subscription)
                .bind(i32::from(subscribed))
                .bind(margin)
                .bind(tenant)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    async fn set_feedback(
        &self,
        tenant: &str,
        id: &str,
        feedback: &str,
        case_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        on_pool!(self, pool, _sql, {
            let done = sqlx::query(pick(self).set_feedback)
                .bind(feedback)
                .bind(case_id)
                .bind(tenant)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }
}

fn pick(journal: &Journal) -> &'static RecSql {
    match journal {
        Journal::Sqlite(_) => &SQLITE,
        Journal::Postgres(_) => &POSTGRES,
    }
}

impl KnowledgeStore {
    /// Stores a recommendation.
    pub async fn insert_recommendation(
        &self,
        record: &RecommendationRecord,
    ) -> Result<(), StoreError> {
        self.inner.journal.insert_recommendation(record).await
    }

    /// A tenant's recommendation by id.
    pub async fn recommendation(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<RecommendationRecord>, StoreError> {
        self.inner.journal.recommendation(tenant, id).await
    }

    /// A tenant's recommendations created before `before_ms`, newest first.
    pub async fn recommendations(
        &self,
        tenant: &str,
        before_ms: i64,
        limit: i64,
    ) -> Result<Vec<RecommendationRecord>, StoreError> {
        self.inner
            .journal
            .recommendations(tenant, before_ms, limit)
            .await
    }

    /// A tenant's subscribed recommendations, oldest first.
    pub async fn subscribed_recommendations(
        &self,
        tenant: &str,
    ) -> Result<Vec<RecommendationRecord>, StoreError> {
        self.inner.journal.subscribed_recommendations(tenant).await
    }

    /// Takes (or renews) the lease on a subscription for `owner` until `now_ms + lease_ms`;
    /// false when another owner holds a lease that has not run out, or the
    /// recommendation is not subscribed. One statement, so two replicas racing for one
    /// lease cannot both win.
    pub async fn claim_subscription(
        &self,
        tenant: &str,
        id: &str,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        self.inner
            .journal
            .claim_subscription(tenant, id, owner, now_ms, lease_ms)
            .await
    }

    /// Subscribes to a recommendation or ends the subscription; false when unknown.
    pub async fn set_subscription(
        &self,
        tenant: &str,
        id: &str,
        subscribed: bool,
        margin: Option<f64>,
    ) -> Result<bool, StoreError> {
        self.inner
            .journal
            .set_subscription(tenant, id, subscribed, margin)
            .await
    }

    /// Records the latest feedback on a recommendation (and the case it made); false
    /// when unknown.
    pub async fn set_feedback(
        &self,
        tenant: &str,
        id: &str,
        feedback: &str,
        case_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.inner
            .journal
            .set_feedback(tenant, id, feedback, case_id)
            .await
    }
}
