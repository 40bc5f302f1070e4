//! Where statements run, and how they are stopped.
//!
//! Every statement executes on the engine's own [`QueryRuntime`]. The server runs its HTTP and
//! WebSocket connections on that runtime too ([`QueryRuntime::host`]), so a request's statement
//! runs on the thread that received it: handing each statement to another runtime and its
//! answer back cost two thread wake-ups per request, about 0.12 ms of a 0.6 ms `SELECT 1`
//! (measured, docs/performance.md). Callers on other runtimes (tests, embedders) are handed
//! over as before. The query runtime's threads have large stacks (`STACK_BYTES`) as a margin
//! under the nesting-depth limit, and DataFusion's operators yield cooperatively, so the
//! healthcheck and other users' short statements interleave with a long one
//! (`tests/limits.rs` serves both while two runaway statements burn every core).
//!
//! A statement stops when its deadline passes ([`run_with_deadline`]) or when the caller drops
//! the request future (a client that went away): [`AbortOnDrop`] cancels the task. A write that
//! has reached its commit ([`StatementControl::enter_commit`]) is never cut off: it finishes and
//! reports success, so a timeout error always means "nothing changed".
//!
//! May import: the ground floor (`control`, `error`). Never `engine/` or the front ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use tokio::task::JoinHandle;

use crate::control::StatementControl;
use crate::error::{Error, Result};

/// Stack size of a query thread, in bytes: room for the deepest statement
/// `max_expression_depth` admits, in debug builds too.
pub const STACK_BYTES: usize = 64 << 20;

/// The tokio runtime statements run on. Dropping it stops its tasks without blocking (it may be
/// dropped inside another runtime, e.g. by a test).
pub struct QueryRuntime {
    /// Spawns onto the runtime (tasks spawned after [`QueryRuntime::stop`] are cancelled).
    handle: tokio::runtime::Handle,
    /// The runtime itself, until stopped.
    runtime: std::sync::Mutex<Option<tokio::runtime::Runtime>>,
    running: Arc<AtomicUsize>,
    /// Marks this runtime's threads ([`ON_RUNTIME`]).
    id: u64,
}

/// Distinguishes the query runtimes of one process (tests open many engines).
static NEXT_RUNTIME_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The id of the query runtime this thread belongs to; 0 on any other thread.
    static ON_RUNTIME: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl std::fmt::Debug for QueryRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryRuntime")
            .field("running", &self.running.load(Ordering::Relaxed))
            .finish()
    }
}

impl QueryRuntime {
    /// A multi-threaded runtime with one worker per core (at least 2).
    ///
    /// # Errors
    /// [`Error::Internal`] when the OS refuses the threads.
    pub fn new() -> Result<QueryRuntime> {
        let workers = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2)
            .max(2);
        let id = NEXT_RUNTIME_ID.fetch_add(1, Ordering::Relaxed);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .on_thread_start(move || ON_RUNTIME.with(|r| r.set(id)))
            .thread_name("kalamdb-query")
            .thread_stack_size(STACK_BYTES)
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the query runtime: {e}")))?;
        Ok(QueryRuntime {
            handle: runtime.handle().clone(),
            runtime: std::sync::Mutex::new(Some(runtime)),
            running: Arc::default(),
            id,
        })
    }

    /// Runs `work` on the query runtime; the returned future resolves to its result, and
    /// dropping it cancels `work`. Called on one of the runtime's own threads (a request the
    /// server received there), `work` runs right here; otherwise it is spawned there.
    ///
    /// # Errors
    /// [`Error::Internal`] when `work` panicked (the process survives) or the runtime is gone.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let running = RunningGuard::new(self.running.clone());
        if ON_RUNTIME.with(|r| r.get()) == self.id {
            let outcome = std::panic::AssertUnwindSafe(work).catch_unwind().await;
            drop(running);
            return outcome.unwrap_or_else(|_| Err(panicked()));
        }
        let task = AbortOnDrop(self.handle.spawn(async move {
            let _running = running;
            work.await
        }));
        match task.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => Err(panicked()),
            Err(_) => Err(Error::Internal("the statement was cancelled".into())),
        }
    }

    /// Runs `service` (a front end's serving loop) on the query runtime, so the statements of
    /// the requests it receives run where they arrive ([`QueryRuntime::run`]); not counted as
    /// a statement. Dropping the returned future stops `service`.
    ///
    /// # Errors
    /// [`Error::Internal`] when `service` panicked or the runtime is gone.
    pub async fn host<T: Send + 'static>(
        &self,
        service: impl Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        AbortOnDrop(self.handle.spawn(service))
            .await
            .map_err(|e| Error::Internal(format!("the server task ended: {e}")))
    }

    /// Statements currently running (started and not yet finished or cancelled).
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }
}

impl QueryRuntime {
    /// Stops the runtime without waiting: every task on it (statements, hosted servers, their
    /// connections) is dropped at its next yield, and later work is refused as cancelled.
    pub fn stop(&self) {
        let taken = self
            .runtime
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(rt) = taken {
            rt.shutdown_background();
        }
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        self.stop();
    }
}

fn panicked() -> Error {
    tracing::error!("a statement panicked");
    Error::Internal("the statement failed unexpectedly (a bug; see the server log)".into())
}

/// Counts a running statement for as long as it lives.
struct RunningGuard(Arc<AtomicUsize>);

impl RunningGuard {
    fn new(counter: Arc<AtomicUsize>) -> RunningGuard {
        counter.fetch_add(1, Ordering::SeqCst);
        RunningGuard(counter)
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A task handle that aborts the task when dropped (its caller went away).
pub struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = std::result::Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `statement` until `timeout_ms` milliseconds pass, then cancels it with
/// `LIMIT_EXCEEDED` — unless it has entered its commit, which then runs to completion.
///
/// # Errors
/// The statement's own error, or [`Error::LimitExceeded`] naming `statement_timeout_ms`.
pub async fn run_with_deadline<T>(
    statement: impl Future<Output = Result<T>>,
    timeout_ms: u64,
    control: &StatementControl,
) -> Result<T> {
    let statement = std::pin::pin!(statement);
    let mut statement = statement;
    let sleep = tokio::time::sleep(Duration::from_millis(timeout_ms));
    tokio::select! {
        biased;
        r = &mut statement => return r,
        () = sleep => {}
    }
    if control.committing() {
        return statement.await;
    }
    Err(Error::LimitExceeded(format!(
        "statement_timeout_ms: the statement ran longer than {timeout_ms} ms and was cancelled; \
         nothing was changed"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deadline_cancels_work_unless_it_is_committing() {
        let control = StatementControl::default();
        let never = std::future::pending::<Result<()>>();
        let e = run_with_deadline(never, 10, &control).await.unwrap_err();
        assert_eq!(e.code(), "LIMIT_EXCEEDED");
        assert!(e.message().contains("statement_timeout_ms"));

        let control = StatementControl::default();
        control.enter_commit();
        let slow = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(7)
        };
        assert_eq!(run_with_deadline(slow, 1, &control).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn on_its_own_threads_work_runs_in_place_and_panics_are_still_errors() {
        let rt = Arc::new(QueryRuntime::new().unwrap());
        let inner = rt.clone();
        let (here, ran_on, panic) = rt
            .host(async move {
                let here = std::thread::current().id();
                let ran_on = inner
                    .run(async { Ok(std::thread::current().id()) })
                    .await
                    .unwrap();
                let panic = inner.run(async { panic!("boom") as Result<()> }).await;
                (here, ran_on, panic)
            })
            .await
            .unwrap();
        assert_eq!(here, ran_on, "no hand-off to another thread");
        assert_eq!(panic.unwrap_err().code(), "INTERNAL_ERROR");
        assert_eq!(rt.running(), 0);
        // From a thread of another runtime, work is handed over.
        let there = rt
            .run(async { Ok(std::thread::current().id()) })
            .await
            .unwrap();
        assert_ne!(there, std::thread::current().id());
        // Stopped: a hosted loop ends (its holds dropped) and later work is refused.
        let held = Arc::new(());
        let hold = held.clone();
        let host = rt.clone();
        let hosted = tokio::spawn(async move {
            host.host(async move {
                let _hold = hold;
                std::future::pending::<()>().await
            })
            .await
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&held) < 2 {
            assert!(std::time::Instant::now() < deadline, "never hosted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        rt.stop();
        assert!(hosted.await.unwrap().is_err());
        while Arc::strong_count(&held) > 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the hosted task kept its hold"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(rt.run(async { Ok(()) }).await.is_err());
    }

    #[tokio::test]
    async fn dropping_the_caller_cancels_the_task_and_panics_are_errors() {
        let rt = QueryRuntime::new().unwrap();
        let e = rt
            .run(async { panic!("boom") as Result<()> })
            .await
            .unwrap_err();
        assert_eq!(e.code(), "INTERNAL_ERROR");
        let fut = rt.run(std::future::pending::<Result<()>>());
        let started = tokio::time::timeout(Duration::from_millis(20), fut).await;
        assert!(started.is_err());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while rt.running() > 0 {
            assert!(std::time::Instant::now() < deadline, "task still running");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
