//! Counts of runs for operators (metrics): across organizations, so only
//! hosts expose them, never to API callers.

use crate::meta::db_error;
use crate::services::Services;
use loupe_core::Result;

/// Runs of one datasource in one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCount {
    /// The status: queued, running, succeeded, failed or cancelled.
    pub status: String,
    /// The datasource.
    pub datasource_id: String,
    /// The datasource's name.
    pub datasource_name: String,
    /// How many runs.
    pub runs: i64,
    /// Starts answered from these runs' results instead of running again.
    pub cache_hits: i64,
}

/// Runs by status and datasource, with cache hits.
pub async fn run_counts(services: &Services) -> Result<Vec<RunCount>> {
    let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT r.status, r.datasource_id, d.name, count(*), CAST(COALESCE(sum(r.cache_hits), 0) AS BIGINT) \
         FROM runs r JOIN datasources d ON d.id = r.datasource_id \
         GROUP BY r.status, r.datasource_id, d.name ORDER BY r.datasource_id, r.status",
    )
    .fetch_all(services.store().pool())
    .await
    .map_err(db_error)?;
    Ok(rows
        .into_iter()
        .map(
            |(status, datasource_id, datasource_name, runs, cache_hits)| RunCount {
                status,
                datasource_id,
                datasource_name,
                runs,
                cache_hits,
            },
        )
        .collect())
}
