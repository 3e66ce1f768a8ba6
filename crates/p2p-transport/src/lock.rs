//! The one way this crate takes a `std::sync::Mutex`.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, poisoned or not. Nothing in this crate panics while holding
/// a lock, and every guarded value is sound between two statements, so a
/// poisoned lock (a panic elsewhere in the holder's task) is still safe to use.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
