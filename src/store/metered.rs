//! Counts what an object store sends: every HTTP request, and those sent again after a
//! transient failure (object_store retries 5xx, throttling, timeouts and dropped connections
//! itself, with back-off), by wrapping its HTTP client.

use async_trait::async_trait;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::ClientOptions;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Request counters of one store, shown in `.zarrfs/stats`.
#[derive(Debug, Default)]
pub struct Counters {
    /// HTTP requests sent, retries included.
    pub requests: AtomicU64,
    /// Requests sent again after a transient failure.
    pub retries: AtomicU64,
    /// Object bytes received.
    pub bytes_fetched: AtomicU64,
    /// Object bytes sent.
    pub bytes_put: AtomicU64,
    /// Operations that failed for good (EIO to whoever needed them).
    pub failures: AtomicU64,
    /// Conditional writes refused because the object changed since it was read.
    pub conflicts: AtomicU64,
    /// Reads served by the local disk cache without a request.
    pub disk_cache_hits: AtomicU64,
    /// Disk-cache entries confirmed current by the server (304 Not Modified).
    pub disk_cache_revalidated: AtomicU64,
    /// Lookups answered by the cache of absent keys.
    pub negative_hits: AtomicU64,
    /// Parts of objects served by reads started ahead of their readers.
    pub parts_read_ahead: AtomicU64,
}

impl Counters {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// `name value` rows for the stats file.
    pub fn rows(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("store_requests", get(&self.requests)),
            ("store_retries", get(&self.retries)),
            ("store_bytes_fetched", get(&self.bytes_fetched)),
            ("store_bytes_put", get(&self.bytes_put)),
            ("store_failures", get(&self.failures)),
            ("store_conflicts", get(&self.conflicts)),
            ("disk_cache_hits", get(&self.disk_cache_hits)),
            ("disk_cache_revalidated", get(&self.disk_cache_revalidated)),
            ("negative_cache_hits", get(&self.negative_hits)),
            ("parts_read_ahead", get(&self.parts_read_ahead)),
        ]
    }
}

/// Builds object_store's usual HTTP client, wrapped in a [`Metered`] service.
#[derive(Debug)]
pub struct MeteredConnector(pub Arc<Counters>);

impl HttpConnector for MeteredConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(Metered {
            inner: ReqwestConnector::default().connect(options)?,
            counters: self.0.clone(),
            failed: Mutex::new(HashMap::new()),
        }))
    }
}

/// An HTTP client that counts requests, and tells retries by the requests that failed
/// transiently and are sent again (same method, URL and range).
#[derive(Debug)]
struct Metered {
    inner: HttpClient,
    counters: Arc<Counters>,
    /// Requests whose last attempt failed transiently, with how many such attempts wait.
    failed: Mutex<HashMap<String, usize>>,
}

/// What identifies a request across its retries.
fn signature(request: &HttpRequest) -> String {
    let range = request
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    format!("{} {} {range}", request.method(), request.uri())
}

/// Whether a response status is one object_store retries.
fn transient(status: http::StatusCode) -> bool {
    status.is_server_error()
        || status == http::StatusCode::TOO_MANY_REQUESTS
        || status == http::StatusCode::REQUEST_TIMEOUT
}

#[async_trait]
impl HttpService for Metered {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        Counters::add(&self.counters.requests, 1);
        let signature = signature(&request);
        {
            let mut failed = self.failed.lock();
            if let Some(waiting) = failed.get_mut(&signature) {
                Counters::add(&self.counters.retries, 1);
                *waiting -= 1;
                if *waiting == 0 {
                    failed.remove(&signature);
                }
            }
        }
        let result = self.inner.execute(request).await;
        let failed_transiently = match &result {
            Ok(response) => transient(response.status()),
            Err(_) => true,
        };
        if failed_transiently {
            let mut failed = self.failed.lock();
            if failed.len() < 4096 {
                *failed.entry(signature).or_default() += 1;
            }
        }
        result
    }
}
