//! One WebSocket connection as the registry sees it: who it is, its bounded send queue, and
//! the signal that ends it.
//!
//! Changes are offered to the queue without waiting ([`Connection::offer`]): a full queue
//! means the client fell `live_queue_messages` messages behind, and the connection is failed
//! (sent an error, then closed by its writer) instead of making the writer of the change wait.
//! Initial data is sent with [`Connection::send`], which waits for room: it is the
//! subscriber's own request that waits, nobody else's.
//!
//! May import: the ground floor and the rest of `live/`. Never the shared state or anything above.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, watch};

use super::protocol::{self, Frame};
use crate::error::{Error, Result};

/// The registry's side of one connection.
#[derive(Debug)]
pub struct Connection {
    /// Unique for the life of the process (`c<number>`).
    pub id: String,
    /// The authenticated user.
    pub user_id: String,
    /// The user's credential version at authentication; a change ends the connection.
    pub auth_version: u64,
    tx: mpsc::Sender<Frame>,
    failure: watch::Sender<Option<String>>,
    closed: AtomicBool,
}

/// The writer's side of one connection: the queued messages and the failure signal.
#[derive(Debug)]
pub struct Outbox {
    rx: mpsc::Receiver<Frame>,
    failure: watch::Receiver<Option<String>>,
}

/// What the writer of a connection does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// Send this message.
    Message(String),
    /// Send this last message (an `error` or `auth_error`), then close.
    Last(String),
    /// The connection is gone: close.
    Done,
}

impl Outbox {
    /// The next thing to do; a failure goes before queued messages.
    pub async fn next(&mut self) -> Outgoing {
        loop {
            if let Some(m) = self.failure.borrow_and_update().clone() {
                return Outgoing::Last(m);
            }
            tokio::select! {
                biased;
                changed = self.failure.changed() => {
                    if changed.is_err() {
                        // The connection is gone without a failure: send what is queued.
                        return match self.rx.recv().await {
                            Some(m) => Outgoing::Message(m.into_text()),
                            None => Outgoing::Done,
                        };
                    }
                }
                m = self.rx.recv() => {
                    return match m {
                        Some(m) => Outgoing::Message(m.into_text()),
                        None => Outgoing::Done,
                    };
                }
            }
        }
    }

    /// Resolves once the connection has failed (never, if it ends otherwise): lets the writer
    /// give up a send the client does not read.
    pub fn failed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut failure = self.failure.clone();
        async move {
            if failure.wait_for(Option::is_some).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Connection {
    /// A connection of `user_id` with a queue of `capacity` messages, and its writer's side.
    pub(super) fn new(
        id: String,
        user_id: String,
        auth_version: u64,
        capacity: usize,
    ) -> (Connection, Outbox) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (failure, failure_rx) = watch::channel(None);
        (
            Connection {
                id,
                user_id,
                auth_version,
                tx,
                failure,
                closed: AtomicBool::new(false),
            },
            Outbox {
                rx,
                failure: failure_rx,
            },
        )
    }

    /// Queues `message` if there is room, without waiting. A full queue fails the connection
    /// with `LIMIT_EXCEEDED`; returns false then (and when the connection is already gone).
    pub fn offer(&self, message: impl Into<Frame>) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        match self.tx.try_send(message.into()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                crate::telemetry::client_dropped();
                self.fail(protocol::error(
                    None,
                    protocol::codes::LIMIT_EXCEEDED,
                    &format!(
                        "live_queue_messages: the client fell {} messages behind; disconnected",
                        self.tx.max_capacity()
                    ),
                ));
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues `message`, waiting for room.
    ///
    /// # Errors
    /// [`Error::Execution`] when the connection has failed or closed meanwhile.
    pub async fn send(&self, message: impl Into<Frame>) -> Result<()> {
        let message = message.into();
        let gone = || Error::Execution("the connection was closed".into());
        if self.closed.load(Ordering::Acquire) {
            return Err(gone());
        }
        let mut failure = self.failure.subscribe();
        tokio::select! {
            sent = self.tx.send(message) => sent.map_err(|_| gone()),
            _ = failure.wait_for(Option::is_some) => Err(gone()),
        }
    }

    /// Ends the connection: its writer sends `last_message` and closes. The first failure wins.
    pub fn fail(&self, last_message: String) {
        self.closed.store(true, Ordering::Release);
        self.failure.send_if_modified(|f| {
            if f.is_none() {
                *f = Some(last_message);
                true
            } else {
                false
            }
        });
    }

    /// Stops queueing without a last message (the client went away).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// True once failed or closed.
    pub fn is_failed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Number of messages the queue holds at most.
    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }
}
