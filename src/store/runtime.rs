//! The async runtime of an object store, hidden behind synchronous calls: decode threads and
//! FUSE threads call [`Runtime::run`], which drives a request to completion and returns its
//! result, or gives up at a deadline so that no caller ever hangs.

use std::future::Future;
use std::io;
use std::time::Duration;

/// A multi-threaded tokio runtime owned by one store.
#[derive(Debug)]
pub struct Runtime {
    runtime: Option<tokio::runtime::Runtime>,
    deadline: Duration,
}

impl Runtime {
    /// A runtime of `threads` workers; every [`Self::run`] ends within `deadline`.
    pub fn new(threads: usize, deadline: Duration) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("zarrfs-io")
            .enable_all()
            .build()?;
        Ok(Runtime {
            runtime: Some(runtime),
            deadline,
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime.as_ref().expect("running").handle()
    }

    /// Runs `future` to completion from a synchronous thread (never from a runtime thread);
    /// fails with a timeout once the deadline has passed.
    pub fn run<T>(&self, future: impl Future<Output = io::Result<T>>) -> io::Result<T> {
        let deadline = self.deadline;
        self.handle().block_on(async move {
            tokio::time::timeout(deadline, future)
                .await
                .unwrap_or_else(|_| Err(timed_out(deadline)))
        })
    }

    /// Starts `future` on the runtime's workers and returns at once; the task ends with a
    /// timeout at the deadline.
    pub fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = io::Result<T>> + Send + 'static,
    ) -> tokio::task::JoinHandle<io::Result<T>> {
        let deadline = self.deadline;
        self.handle().spawn(async move {
            tokio::time::timeout(deadline, future)
                .await
                .unwrap_or_else(|_| Err(timed_out(deadline)))
        })
    }
}

/// The error of a request that did not finish within `deadline`.
pub fn timed_out(deadline: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no answer within {deadline:?}"),
    )
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Worker threads are stopped before the store goes (a daemon forks after its checks).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}
