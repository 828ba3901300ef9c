//! SQL across the three signals, with DataFusion.
//!
//! ```text
//!  SQL text ─► statement check (SELECT / WITH / EXPLAIN only)
//!          ─► SessionContext per query (memory pool of query.memory_limit, no spilling)
//!               tables logs, spans, metrics ─► storage read API with pushdown
//!               function match(body, 'words')
//!          ─► stream until the row limit (+1 to detect truncation), under query.timeout,
//!             on a runtime of its own (ingest acknowledgements do not wait behind queries)
//! ```
//!
//! This module owns the session, the table providers (`table`), filter pushdown
//! (`pushdown`), the public table schemas ([`schema`]) and the `match` function
//! ([`udf`]). The HTTP adapter is `api::sql`. Column contract: `docs/sql.md`.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;
use futures::StreamExt;
use proto::TenantId;

use crate::{Error, QueryContext, Result};

mod pushdown;
pub mod schema;
mod table;
pub mod udf;

pub use schema::TableKind;
pub use table::SignalTable;

/// Rows a query returns unless the request asks for fewer.
pub const DEFAULT_ROW_LIMIT: usize = 10_000;

/// The answer to one SQL query.
#[derive(Debug)]
pub struct SqlOutput {
    /// Columns of the result.
    pub schema: SchemaRef,
    /// At most `limit` rows.
    pub batches: Vec<RecordBatch>,
    /// True when the query had more rows than the limit.
    pub truncated: bool,
}

impl SqlOutput {
    /// Rows returned.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Checks that `sql` is one read-only statement (SELECT, WITH … SELECT, EXPLAIN).
pub fn check_statement(sql: &str) -> Result<()> {
    let statements = DFParser::parse_sql(sql)
        .map_err(|e| Error::BadRequest(format!("sql parser error: {e}")))?;
    if statements.len() != 1 {
        return Err(Error::BadRequest(format!(
            "expected exactly one statement, got {}",
            statements.len()
        )));
    }
    let allowed = match &statements[0] {
        DfStatement::Statement(statement) => match statement.as_ref() {
            Statement::Query(_) => true,
            Statement::Explain { statement, .. } => {
                matches!(statement.as_ref(), Statement::Query(_))
            }
            _ => false,
        },
        DfStatement::Explain(explain) => match explain.statement.as_ref() {
            DfStatement::Statement(inner) => matches!(inner.as_ref(), Statement::Query(_)),
            _ => false,
        },
        _ => false,
    };
    if !allowed {
        return Err(Error::BadRequest(
            "only SELECT, WITH and EXPLAIN statements are allowed".into(),
        ));
    }
    Ok(())
}

/// Builds the session of one query: the three tables of `tenant`, the `match`
/// function, and a memory pool of `query.memory_limit` with spilling disabled.
pub fn session(context: &QueryContext, tenant: &TenantId) -> Result<SessionContext> {
    let limit = usize::try_from(context.config().memory_limit.bytes()).unwrap_or(usize::MAX);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(GreedyMemoryPool::new(limit)))
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()?;
    let config = SessionConfig::new()
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get().min(8)))
        .with_information_schema(false);
    let session = SessionContext::new_with_config_rt(config, runtime);
    for kind in TableKind::ALL {
        session.register_table(
            kind.name(),
            Arc::new(SignalTable::new(kind, context.clone(), tenant.clone())),
        )?;
    }
    session.register_udf(ScalarUDF::from(udf::MatchFunction::new()));
    Ok(session)
}

/// Runs one query for `tenant`, returning at most `limit` rows, within `query.timeout`.
pub async fn execute(
    context: &QueryContext,
    tenant: &TenantId,
    sql: &str,
    limit: usize,
) -> Result<SqlOutput> {
    check_statement(sql)?;
    context.storage()?;
    let timeout: Duration = context.config().timeout.get();
    let task =
        AbortOnDrop(runtime()?.spawn(run(context.clone(), tenant.clone(), sql.to_string(), limit)));
    match tokio::time::timeout(timeout, task.wait()).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout(timeout)),
    }
}

/// The runtime SQL queries execute on, apart from the one serving requests and
/// acknowledging writes, so a heavy query does not delay ingest.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: LazyLock<Option<tokio::runtime::Runtime>> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get().min(8)))
            .thread_name("sightline-sql")
            .enable_all()
            .build()
            .inspect_err(|error| tracing::error!(%error, "cannot start the sql runtime"))
            .ok()
    });
    RUNTIME
        .as_ref()
        .ok_or_else(|| Error::Internal("the sql runtime did not start".into()))
}

/// Cancels the query task when the request goes away (timeout, client gone).
struct AbortOnDrop(tokio::task::JoinHandle<Result<SqlOutput>>);

impl AbortOnDrop {
    async fn wait(mut self) -> Result<SqlOutput> {
        (&mut self.0)
            .await
            .map_err(|e| Error::Internal(format!("sql task failed: {e}")))?
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run(
    context: QueryContext,
    tenant: TenantId,
    sql: String,
    limit: usize,
) -> Result<SqlOutput> {
    let (context, tenant, sql) = (&context, &tenant, sql.as_str());
    let session = session(context, tenant)?;
    let read_only = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = session.sql_with_options(sql, read_only).await?;
    let plan = frame.create_physical_plan().await?;
    let schema = plan.schema();
    let mut stream = datafusion::physical_plan::execute_stream(plan, session.task_ctx())?;
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let mut truncated = false;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if rows + batch.num_rows() > limit {
            let keep = limit - rows;
            if keep > 0 {
                batches.push(batch.slice(0, keep));
            }
            truncated = true;
            break;
        }
        rows += batch.num_rows();
        batches.push(batch);
    }
    Ok(SqlOutput {
        schema,
        batches,
        truncated,
    })
}
