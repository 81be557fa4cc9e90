//! Locks that outlive a panic. A thread that panics while holding one of the
//! engine's locks leaves it poisoned; every holder here keeps the data
//! consistent between statements, and a view, counter or checkpoint that
//! stopped working for good would be worse than reading what that thread
//! left. So a poisoned lock is taken as it is, in one place.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn read<T: ?Sized>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

pub fn write<T: ?Sized>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
