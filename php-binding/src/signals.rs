//! SIGINT/SIGTERM: a flag the server loops poll, so a worker sends GOAWAY,
//! lets in-flight requests finish and exits cleanly (Ctrl-C in the demo).
//!
//! Installed only where the script has not set its own handler with
//! `pcntl_signal`, which keeps working as before.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the handlers once per process (after fork, each worker that
/// makes a `Server` installs its own).
pub fn install() {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction with a zeroed struct is the documented way to
        // query; the handler only stores to atomics (async-signal-safe).
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            // PHP's own deferring handler (zend_signal) sits on SIGINT and
            // SIGTERM in every process; what matters is whether the script
            // asked for something with pcntl_signal().
            if user_handler(sig) {
                continue;
            }
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            // No SA_RESTART: a blocking wait returns EINTR and sees the flag.
            sa.sa_flags = 0;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Whether `pcntl_signal()` set a handler (or SIG_IGN) for `sig`.
fn user_handler(sig: libc::c_int) -> bool {
    let Ok(get) = ext_php_rs::types::ZendCallable::try_from_name("pcntl_signal_get_handler") else {
        return false; // no pcntl: nobody else can have asked
    };
    match get.try_call(vec![&i64::from(sig)]) {
        // SIG_DFL is 0: untouched by the script.
        Ok(z) => z.long() != Some(0),
        Err(_) => false,
    }
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

pub fn signal() -> i32 {
    SIGNAL.load(Ordering::SeqCst)
}
