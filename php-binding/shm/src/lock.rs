//! The cross-process lock: a robust, process-shared pthread mutex.
//!
//! `PTHREAD_PROCESS_SHARED` lets forks of the creator use the mutex through
//! the shared mapping; `PTHREAD_MUTEX_ROBUST` makes the kernel release it
//! when its holder dies (the holder's robust-futex list is walked at exit),
//! and the next locker gets `EOWNERDEAD` instead of blocking for ever. That
//! locker owns the mutex, marks it consistent and must treat whatever the
//! dead holder was changing as suspect: the caller rebuilds the index from
//! checksummed slots (see `table::rebuild`).
//!
//! Waiting is bounded (`pthread_mutex_timedlock`): a holder that is alive
//! but stopped (SIGSTOP, a debugger) or a scribbled-over mutex word makes
//! callers give up after the timeout and treat the operation as a miss,
//! instead of freezing a PHP worker's event loop.

use std::time::Duration;

/// How a successful lock was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    Clean,
    /// The previous holder died with the mutex held.
    Recovered,
}

/// Why the lock was not obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockError {
    TimedOut,
    /// Any other pthread error (e.g. `ENOTRECOVERABLE`, `EINVAL` from a
    /// corrupted mutex).
    Failed(i32),
}

/// Initialises a mutex in fresh shared memory.
///
/// # Safety
/// `m` must point to writable, suitably aligned memory that no process is
/// using as a mutex yet.
pub(crate) unsafe fn init(m: *mut libc::pthread_mutex_t) -> Result<(), i32> {
    // SAFETY: attr is a local the pthread calls initialise and destroy;
    // `m` is valid per the caller's contract.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = core::mem::zeroed();
        let r = libc::pthread_mutexattr_init(&mut attr);
        if r != 0 {
            return Err(r);
        }
        let mut r = libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
        if r == 0 {
            r = libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
        }
        if r == 0 {
            r = libc::pthread_mutex_init(m, &attr);
        }
        libc::pthread_mutexattr_destroy(&mut attr);
        if r != 0 {
            return Err(r);
        }
    }
    Ok(())
}

/// Locks `m`, waiting at most `timeout`.
///
/// # Safety
/// `m` must point to a mutex initialised by [`init`] in memory that stays
/// mapped while the returned guard lives.
pub(crate) unsafe fn lock(m: *mut libc::pthread_mutex_t, timeout: Duration) -> Result<(Guard, Acquired), LockError> {
    let deadline = deadline_after(timeout);
    // SAFETY: per the caller's contract.
    let r = unsafe { libc::pthread_mutex_timedlock(m, &deadline) };
    match r {
        0 => Ok((Guard { m }, Acquired::Clean)),
        libc::EOWNERDEAD => {
            // We own it now; make it usable again before anything else. If
            // we died before this call the next locker would get EOWNERDEAD
            // again, so recovery cannot be lost.
            // SAFETY: we hold the mutex.
            let c = unsafe { libc::pthread_mutex_consistent(m) };
            let g = Guard { m };
            if c != 0 {
                return Err(LockError::Failed(c));
            }
            Ok((g, Acquired::Recovered))
        }
        libc::ETIMEDOUT => Err(LockError::TimedOut),
        e => Err(LockError::Failed(e)),
    }
}

/// `pthread_mutex_timedlock` takes an absolute CLOCK_REALTIME time (the
/// `libc` crate does not bind glibc's `pthread_mutex_clocklock`), so a wall
/// clock step during a wait shortens or lengthens that one wait.
fn deadline_after(timeout: Duration) -> libc::timespec {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    let total_ns = now.tv_nsec as u64 + u64::from(timeout.subsec_nanos());
    let secs = (now.tv_sec as u64).saturating_add(timeout.as_secs()).saturating_add(total_ns / 1_000_000_000);
    libc::timespec { tv_sec: secs.min(i64::MAX as u64) as libc::time_t, tv_nsec: (total_ns % 1_000_000_000) as libc::c_long }
}

/// Unlocks on drop.
#[derive(Debug)]
pub(crate) struct Guard {
    m: *mut libc::pthread_mutex_t,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: the guard exists only while this thread holds the mutex.
        unsafe { libc::pthread_mutex_unlock(self.m) };
    }
}
