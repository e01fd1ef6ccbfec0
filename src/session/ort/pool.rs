//! A pool of ONNX Runtime sessions of one model, checked out for one run at a time.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use ort::session::Session;

use crate::error::SessionError;

/// Idle sessions plus a count of every session made, behind one mutex.
///
/// The mutex guards only the check-out and check-in of a session, a `Vec` push or pop. It is
/// never held while a session runs, so runs on different threads proceed in parallel.
pub(super) struct SessionPool {
    state: Mutex<PoolState>,
    /// Signalled whenever a session is checked in or a failed creation frees a place.
    available: Condvar,
    max_sessions: usize,
}

struct PoolState {
    idle: Vec<Session>,
    /// Sessions in existence, idle or checked out, plus those being created.
    created: usize,
}

impl SessionPool {
    /// Creates a pool holding `first`, which may grow to `max_sessions` (at least 1).
    pub(super) fn new(first: Session, max_sessions: usize) -> Self {
        SessionPool {
            state: Mutex::new(PoolState { idle: vec![first], created: 1 }),
            available: Condvar::new(),
            max_sessions: max_sessions.max(1),
        }
    }

    /// Returns the maximum number of sessions.
    pub(super) fn max_sessions(&self) -> usize {
        self.max_sessions
    }

    /// Returns the number of sessions created so far, idle or in use.
    pub(super) fn sessions(&self) -> usize {
        self.lock().created
    }

    /// Checks out an idle session. When none is idle, creates one with `create` while the pool
    /// is below its maximum, or else waits for another thread to check one in.
    pub(super) fn check_out(
        &self,
        create: impl FnOnce() -> Result<Session, SessionError>,
    ) -> Result<Lease<'_>, SessionError> {
        let mut state = self.lock();
        loop {
            if let Some(session) = state.idle.pop() {
                return Ok(Lease { pool: self, session: Some(session) });
            }
            if state.created < self.max_sessions {
                // Reserve the place, then create outside the lock: creating a session takes
                // milliseconds to seconds.
                state.created += 1;
                drop(state);
                return match create() {
                    Ok(session) => Ok(Lease { pool: self, session: Some(session) }),
                    Err(error) => {
                        self.lock().created -= 1;
                        self.available.notify_one();
                        Err(error)
                    }
                };
            }
            state = self.available.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Creates sessions with `create` until the pool has its maximum.
    pub(super) fn fill(
        &self,
        mut create: impl FnMut() -> Result<Session, SessionError>,
    ) -> Result<(), SessionError> {
        while self.sessions() < self.max_sessions {
            let session = create()?;
            let mut state = self.lock();
            state.idle.push(session);
            state.created += 1;
        }
        Ok(())
    }

    fn check_in(&self, session: Session) {
        self.lock().idle.push(session);
        self.available.notify_one();
    }

    /// Locks the state. A panic elsewhere cannot leave the state half-changed (every change is
    /// one push, pop or counter update), so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A checked-out session; dropping it checks the session back in.
pub(super) struct Lease<'a> {
    pool: &'a SessionPool,
    /// Always `Some` until `drop` takes it.
    session: Option<Session>,
}

impl Deref for Lease<'_> {
    type Target = Session;

    fn deref(&self) -> &Session {
        // The option is only emptied in `drop`.
        self.session.as_ref().expect("a lease keeps its session until dropped")
    }
}

impl DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Session {
        self.session.as_mut().expect("a lease keeps its session until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.pool.check_in(session);
        }
    }
}
