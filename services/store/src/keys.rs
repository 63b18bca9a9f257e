//! API key records in the journal database. Only hashes of secrets are stored; making
//! and checking secrets is the app layer's business.

use sqlx::Row;

use crate::error::StoreError;
use crate::journal::{Journal, on_pool};

/// One API key as stored (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyRecord {
    pub key_id: String,
    pub tenant: String,
    pub role: String,
    pub name: String,
    #[serde(skip)]
    pub secret_hash: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

struct KeySql {
    insert: &'static str,
    by_id: &'static str,
    list: &'static str,
    list_all: &'static str,
    revoke: &'static str,
    count: &'static str,
}

#[cfg(test)]
const COLUMNS: &str = "key_id, tenant, role, name, secret_hash, created_ms, revoked_ms";

const SQLITE: KeySql = KeySql {
    insert: "INSERT INTO api_keys (key_id, tenant, role, name, secret_hash, created_ms) \
             VALUES (?, ?, ?, ?, ?, ?)",
    by_id: "SELECT key_id, tenant, role, name, secret_hash, created_ms, revoked_ms \
            FROM api_keys WHERE key_id = ?",
    list: "SELECT key_id, tenant, role, name, secret_hash, created_ms, revoked_ms \
           FROM api_keys WHERE tenant = ? ORDER BY created_ms, key_id",
    list_all: "SELECT key_id, tenant, role, name, secret_hash, created_ms, revoked_ms \
               FROM api_keys ORDER BY tenant, created_ms, key_id",
    revoke: "UPDATE api_keys SET revoked_ms = ? \
             WHERE key_id = ? AND tenant = ? AND revoked_ms IS NULL",
    count: "SELECT COUNT(*) FROM api_keys",
};

const POSTGRES: KeySql = KeySql {
    insert: "INSERT INTO api_keys (key_id, tenant, role, name, secret_hash, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
    by_id: "SELECT key_id, tenant, role, name, secret_hash, created_ms, revoked_ms \
            FROM api_keys WHERE key_id = $1",
    list: "SELECT key_id, tenant, role, name, secret_hash, created_ms, revoked_ms \
           FROM api_keys WHERE tenant = $1 ORDER BY created_ms, key_id",
    list_all: "SELECT key_id, tenant, role, name, secret_hash, created_ms, revoked_ms \
               FROM api_keys ORDER BY tenant, created_ms, key_id",
    revoke: "UPDATE api_keys SET revoked_ms = $1 \
             WHERE key_id = $2 AND tenant = $3 AND revoked_ms IS NULL",
    count: "SELECT COUNT(*) FROM api_keys",
};

fn record<R: Row>(row: &R) -> Result<KeyRecord, StoreError>
where
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    Ok(KeyRecord {
        key_id: row.try_get("key_id")?,
        tenant: row.try_get("tenant")?,
        role: row.try_get("role")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        created_ms: row.try_get("created_ms")?,
        revoked_ms: row.try_get("revoked_ms")?,
    })
}

impl Journal {
    pub(crate) async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        on_pool!(self, pool, sql, {
            sqlx::query(sql.insert)
                .bind(&key.key_id)
                .bind(&key.tenant)
                .bind(&key.role)
                .bind(&key.name)
                .bind(&key.secret_hash)
                .bind(key.created_ms)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    pub(crate) async fn key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        on_pool!(self, pool, sql, {
            let row = sqlx::query(sql.by_id)
                .bind(key_id)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(record).transpose()
        })
    }

    /// One tenant's keys, or every key.
    pub(crate) async fn keys(&self, tenant: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        on_pool!(self, pool, sql, {
            let rows = match tenant {
                Some(t) => sqlx::query(sql.list).bind(t).fetch_all(pool).await?,
                None => sqlx::query(sql.list_all).fetch_all(pool).await?,
            };
            rows.iter().map(record).collect()
        })
    }

    /// Revokes a tenant's key; false when there is no such live key.
    pub(crate) async fn revoke_key(
        &self,
        tenant: &str,
        key_id: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        on_pool!(self, pool, sql, {
            let done = sqlx::query(sql.revoke)
                .bind(at_ms)
                .bind(key_id)
                .bind(tenant)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    pub(crate) async fn key_count(&self) -> Result<i64, StoreError> {
        on_pool!(self, pool, sql, {
            Ok(sqlx::query(sql.count).fetch_one(pool).await?.try_get(0)?)
        })
    }
}

// The column list is spelled out in each statement (sqlx wants `&'static str`); this
// keeps them honest.
#[cfg(test)]
mod tests {
    #[test]
    fn every_select_reads_the_same_columns() {
        for sql in [super::SQLITE, super::POSTGRES] {
            for select in [sql.by_id, sql.list, sql.list_all] {
                assert!(select.contains(super::COLUMNS), "{select}");
            }
        }
    }
}
