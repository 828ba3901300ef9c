//! The PromQL engine: parse with `promql-parser`, evaluate over the storage engine as
//! Prometheus 3.x does.
//!
//! The interface below is what the HTTP API (`api::prometheus`) calls; the evaluator
//! behind it is being written.

use proto::TenantId;
use storage::series::Labels;

use crate::{Error, QueryContext, Result};

/// A query's result value, as the Prometheus HTTP API types it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `scalar`: one number at the evaluation time.
    Scalar { t_ms: i64, v: f64 },
    /// `string`: a string literal at the evaluation time.
    String { t_ms: i64, v: String },
    /// `vector`: one sample per series at the evaluation time.
    Vector(Vec<InstantSample>),
    /// `matrix`: several samples per series (range queries, range selectors).
    Matrix(Vec<RangeSeries>),
}

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    pub t_ms: i64,
    pub v: f64,
}

/// One series of a matrix, points in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// A value plus the annotations Prometheus returns beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    pub value: Value,
    /// `warnings` of the response envelope (e.g. "PromQL warning: …").
    pub warnings: Vec<String>,
    /// `infos` of the response envelope (e.g. "PromQL info: …").
    pub infos: Vec<String>,
}

/// Evaluates PromQL over one storage engine, bounded by the `[query]` configuration
/// (timeout, `max_samples`, lookback delta).
#[derive(Debug, Clone)]
pub struct Engine {
    context: QueryContext,
}

impl Engine {
    /// Builds an engine reading through `context`.
    pub fn new(context: QueryContext) -> Self {
        Engine { context }
    }

    /// Evaluates `query` at one instant (Unix milliseconds).
    /// Parse errors are [`Error::BadRequest`] (`bad_data`), evaluation errors
    /// [`Error::Execution`], limits [`Error::TooLarge`], the timeout [`Error::Timeout`].
    pub async fn instant(&self, tenant: &TenantId, query: &str, time_ms: i64) -> Result<Evaluated> {
        let _ = (&self.context, tenant, query, time_ms);
        Err(Error::Execution(
            "the PromQL evaluator is not built yet".into(),
        ))
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms` inclusive; the
    /// result is always a matrix (or a scalar/string error as Prometheus gives).
    pub async fn range(
        &self,
        tenant: &TenantId,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Evaluated> {
        let _ = (&self.context, tenant, query, start_ms, end_ms, step_ms);
        Err(Error::Execution(
            "the PromQL evaluator is not built yet".into(),
        ))
    }
}
