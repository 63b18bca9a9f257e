//! What several benchmarks need.

use anyhow::Context;
use sqlx::Connection;

/// Makes an empty database `name` (letters, digits and underscores only: it is spliced
/// into the statement) on the PostgreSQL server of `server`, dropping an older one of the
/// same name, and returns its URL.
pub async fn fresh_database(server: &str, name: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "not a plain database name: {name}"
    );
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .with_context(|| format!("connecting to {server}"))?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&mut conn)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let (base, _) = server
        .rsplit_once('/')
        .context("a PostgreSQL URL ends with /database")?;
    Ok(format!("{base}/{name}"))
}
