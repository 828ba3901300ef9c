//! The state every read API shares: the storage engine, the bounds, the tenant rule.

use std::fmt;
use std::sync::{Arc, OnceLock};

use axum::http::HeaderMap;
use proto::{ErrorCode, TenantId};
use storage::Storage;

use crate::{Config, Error, Result};

/// Decides which tenant a request reads, from its headers (tenant header, bearer
/// token). The root package supplies it so that reads and writes follow one rule.
pub type TenantResolver =
    Arc<dyn Fn(&HeaderMap) -> std::result::Result<TenantId, (ErrorCode, String)> + Send + Sync>;

/// Shared state of every read route. Cheap to clone.
#[derive(Clone)]
pub struct QueryContext {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    storage: OnceLock<Arc<Storage>>,
    tenant: TenantResolver,
}

impl fmt::Debug for QueryContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryContext")
            .field("config", &self.inner.config)
            .field("ready", &self.inner.storage.get().is_some())
            .finish_non_exhaustive()
    }
}

impl QueryContext {
    /// Builds the context of a server whose storage has not opened yet.
    pub fn new(config: Config, tenant: TenantResolver) -> Self {
        QueryContext {
            inner: Arc::new(Inner {
                config,
                storage: OnceLock::new(),
                tenant,
            }),
        }
    }

    /// Builds a context over an open engine, every request reading `tenant`
    /// (tests, benchmarks, the demo).
    pub fn with_storage(config: Config, storage: Arc<Storage>, tenant: TenantId) -> Self {
        let context = QueryContext::new(config, Arc::new(move |_: &HeaderMap| Ok(tenant.clone())));
        context.set_storage(storage);
        context
    }

    /// Hands over the opened storage engine. Only the first call has an effect.
    pub fn set_storage(&self, storage: Arc<Storage>) {
        let _ = self.inner.storage.set(storage);
    }

    /// Returns the storage engine, or [`Error::NotReady`] while it is opening.
    pub fn storage(&self) -> Result<&Arc<Storage>> {
        self.inner
            .storage
            .get()
            .ok_or(Error::NotReady("wal replay in progress"))
    }

    /// Returns the query bounds.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Returns the tenant a request reads.
    pub fn tenant(&self, headers: &HeaderMap) -> Result<TenantId> {
        (self.inner.tenant)(headers).map_err(|(code, message)| Error::Access { code, message })
    }
}
