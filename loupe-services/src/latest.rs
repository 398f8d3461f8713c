//! The latest stored result of a saved query for a set of parameter
//! values: what a spreadsheet's import URL (Google Sheets `IMPORTDATA`,
//! Excel Power Query) reads again and again.
//!
//! The values go through the admission of a run that only reads
//! ([`RunService::admit_to_read`]): view access to the query's datasource
//! is enough, the values are bound and checked as for a run, and the
//! caller's row-level restrictions are part of the cache key. The newest
//! succeeded run with that key and a stored result is the answer, so a
//! restricted caller only ever gets results computed under their own
//! restrictions. This module never queues or runs anything: a result
//! exists because someone ran the query with these values, or a schedule
//! did.

use std::sync::Arc;

use loupe_core::{ParameterValues, Result, ResultId};

use super::actor::Actor;
use super::runs::{self, Run, RunService};
use crate::meta::{col, db_error, fetch_one};
use crate::services::Shared;

/// The newest stored result of a saved query for some parameter values.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestResult {
    /// The run that stored it.
    pub run: Run,
    /// Where it is stored.
    pub result: ResultId,
    /// The query's name, to name a download after.
    pub query_name: String,
}

/// Latest results of saved queries.
#[derive(Debug, Clone)]
pub struct LatestResultService {
    shared: Arc<Shared>,
    runs: RunService,
}

impl LatestResultService {
    pub(crate) fn new(shared: Arc<Shared>, runs: RunService) -> Self {
        Self { shared, runs }
    }

    /// The newest succeeded run of saved query `query_id` with `values`
    /// (defaults fill the rest) whose result is stored and which the actor
    /// may read, or `None` when there is none yet.
    ///
    /// # Errors
    /// As a run's admission that only reads: the query not found (or not
    /// visible), values that do not fit its parameters (field errors
    /// `parameters.<name>`), a value for a parameter the caller's grant
    /// locks. `access.scope` when the actor's API key is scoped to another
    /// query.
    pub async fn find(
        &self,
        actor: &Actor,
        query_id: &str,
        values: &ParameterValues,
    ) -> Result<Option<LatestResult>> {
        actor.require_key_query(query_id)?;
        let admitted = self.runs.admit_to_read(actor, query_id, values).await?;
        let key = admitted.cache_key()?;
        // Runs that share the key share the datasource, the statement, its
        // values and the restrictions' context: every one of them is one
        // the actor may see. Ties on `finished_at` go to the later id (ids
        // are time-ordered).
        let newest = sqlx::query(
            "SELECT * FROM runs WHERE cache_key = $1 AND org_id = $2 AND status = 'succeeded' \
             AND result_location IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT 1",
        )
        .bind(key)
        .bind(actor.org_id.clone())
        .fetch_optional(self.shared.store.pool())
        .await
        .map_err(db_error)?;
        let Some(row) = newest else {
            return Ok(None);
        };
        let run = runs::run(&row)?;
        let location = run.result_location.as_deref().unwrap_or_default();
        let result = ResultId::parse(location)?;
        let named = fetch_one(
            &self.shared.store,
            "SELECT name FROM queries WHERE id = $1",
            "query",
            query_id,
        )
        .await?;
        Ok(Some(LatestResult {
            run,
            result,
            query_name: col(&named, "name")?,
        }))
    }
}
