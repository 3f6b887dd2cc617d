//! PHP Fibers from Rust: find the running Fiber, suspend it, resume it.
//!
//! A Fiber has its own C stack, so suspending from inside one of our
//! functions keeps our Rust frames alive until the Fiber is resumed; the
//! server loop resumes it when what it waits for has happened.

use ext_php_rs::flags::ErrorType;
use ext_php_rs::types::{ZendCallable, Zval};
use ext_php_rs::zend::ExecutorGlobals;

/// The running Fiber, or `None` on the main stack.
pub fn current() -> Option<Zval> {
    let get = ZendCallable::try_from_name("Fiber::getCurrent").ok()?;
    let z = get.try_call(vec![]).ok()?;
    z.is_object().then_some(z)
}

/// The engine refused to switch Fibers, or is unwinding the Fiber.
#[derive(Debug, Clone, Copy)]
pub struct SwitchFailed;

/// Suspends the running Fiber. `Err` means the engine refused or is
/// unwinding the Fiber (destroyed at shutdown): the caller must return at
/// once and let the pending exception propagate.
pub fn suspend() -> Result<(), SwitchFailed> {
    let s = ZendCallable::try_from_name("Fiber::suspend").map_err(|_| SwitchFailed)?;
    s.try_call(vec![]).map(|_| ()).map_err(|_| SwitchFailed)
}

/// Resumes a suspended Fiber. An exception that escapes the Fiber's
/// function must not end the server loop that resumed it: it is taken and
/// reported as a warning, and the loop goes on serving other sessions.
pub fn resume(fiber: &Zval) {
    let suspended = fiber.try_call_method("isSuspended", vec![]).ok().and_then(|z| z.bool()).unwrap_or(false);
    if !suspended {
        return;
    }
    // A method call reports success even when the callee threw: the
    // exception is left pending in the engine, so look there.
    let failed = fiber.try_call_method("resume", vec![]).is_err();
    if failed || ExecutorGlobals::has_exception() {
        report_escaped_exception();
    }
}

/// Resumes a suspended Fiber and leaves an exception that escapes it
/// pending, for the caller to propagate (`Quicpro\Loop`: a task's failure
/// is the loop's).
pub fn resume_propagating(fiber: &Zval) {
    let suspended = fiber.try_call_method("isSuspended", vec![]).ok().and_then(|z| z.bool()).unwrap_or(false);
    if suspended {
        let _ = fiber.try_call_method("resume", vec![]);
    }
}

/// Starts nothing; only used when a Fiber we resumed threw.
fn report_escaped_exception() {
    let Some(ex) = ExecutorGlobals::take_exception() else { return };
    let mut z = Zval::new();
    let mut obj = ex;
    z.set_object(&mut obj);
    let msg = z.try_call_method("getMessage", vec![]).ok().and_then(|m| m.string()).unwrap_or_default();
    let class = obj.get_class_name().unwrap_or_default();
    let file = z.try_call_method("getFile", vec![]).ok().and_then(|m| m.string()).unwrap_or_default();
    let line = z.try_call_method("getLine", vec![]).ok().and_then(|m| m.long()).unwrap_or(0);
    ext_php_rs::error::php_error(&ErrorType::Warning, &format!("quicpro: uncaught {class} in a session Fiber: {msg} ({file}:{line}); the server goes on"));
}
