//! `Quicpro\Loop`: the scheduler of client Fibers. `Loop::run($fn)` runs
//! `$fn` in a Fiber, `Loop::all([$fiberOrCallable, ...])` runs several;
//! inside them `quicpro_connect`, `quicpro_await`, `quicpro_poll` and the
//! `ClientSession` methods suspend the Fiber while they wait, and the loop
//! drives the process's client endpoint (`client.rs`) and resumes a Fiber
//! when its session has news or its deadline passes. Outside a loop Fiber
//! (a Fiber of someone else's scheduler, or the main stack) the same calls
//! block as before.
//!
//! Per turn the loop resumes only the Fibers whose sessions got events
//! (the endpoint's ready list), whose deadline passed, or that yielded:
//! its work follows events, not the number of Fibers or sessions.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendHashTable, Zval};
use ext_php_rs::zend::ClassEntry;

use crate::client::{with_hub, SessionKey};
use crate::errors::{ErrorKind, QpError, QpResult};
use crate::fiber;

/// How long one turn may wait when nothing has a deadline.
const IDLE_TURN: Duration = Duration::from_millis(100);

/// A suspended Fiber and what wakes it.
struct Waiter {
    fiber: Zval,
    key: Option<SessionKey>,
}

#[derive(Default)]
struct LoopState {
    /// Object handles of the Fibers this loop started (only they may be
    /// suspended by our calls: nobody else would resume them).
    fibers: HashSet<u32>,
    waiters: HashMap<u64, Waiter>,
    by_key: HashMap<SessionKey, Vec<u64>>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Waiters resumed on the next turn whatever happens (`poll(0)`).
    next_turn: Vec<u64>,
    next_id: u64,
}

thread_local! {
    static LOOP: RefCell<Option<Box<LoopState>>> = const { RefCell::new(None) };
}

fn handle_of(z: &Zval) -> Option<u32> {
    z.object().map(|o| o.handle)
}

/// Whether a loop is running in this process.
pub fn running() -> bool {
    LOOP.with(|l| l.borrow().is_some())
}

/// Whether the running code is in a Fiber of the running loop.
pub fn in_loop_fiber() -> bool {
    let Some(current) = fiber::current().as_ref().and_then(handle_of) else { return false };
    LOOP.with(|l| l.borrow().as_ref().is_some_and(|s| s.fibers.contains(&current)))
}

/// Suspends the running loop Fiber until session `key` has news (any
/// session's news for `None`... only the deadline then), `deadline` passes
/// (`None`: no deadline), or, for a deadline already due, the next turn.
pub fn suspend_on(key: Option<SessionKey>, deadline: Option<Instant>) -> QpResult<()> {
    let Some(current) = fiber::current() else {
        return Err(QpError::new(ErrorKind::Client, "not in a Quicpro\\Loop Fiber"));
    };
    LOOP.with(|l| {
        let mut l = l.borrow_mut();
        let Some(s) = l.as_mut() else { return };
        s.next_id += 1;
        let id = s.next_id;
        s.waiters.insert(id, Waiter { fiber: current.shallow_clone(), key });
        if let Some(k) = key {
            s.by_key.entry(k).or_default().push(id);
        }
        match deadline {
            Some(d) if d <= Instant::now() => s.next_turn.push(id),
            Some(d) => s.deadlines.push(Reverse((d, id))),
            None => {}
        }
    });
    fiber::suspend().map_err(|_| QpError::new(ErrorKind::Client, "the Fiber could not be suspended"))
}

/// Resumes waiter `id` if it still waits.
fn wake(id: u64) {
    let fiber = LOOP.with(|l| {
        let mut l = l.borrow_mut();
        let s = l.as_mut()?;
        let w = s.waiters.remove(&id)?;
        if let Some(k) = w.key {
            if let Some(v) = s.by_key.get_mut(&k) {
                v.retain(|x| *x != id);
                if v.is_empty() {
                    s.by_key.remove(&k);
                }
            }
        }
        Some(w.fiber)
    });
    if let Some(f) = fiber {
        fiber::resume_propagating(&f);
    }
}

/// Runs the Fibers until all have ended. `Ok(false)`: an exception one of
/// them threw is pending, and the loop stops so it propagates.
fn drive(fibers: &[Zval]) -> QpResult<bool> {
    for f in fibers {
        let started = f.try_call_method("isStarted", vec![]).ok().and_then(|z| z.bool()).unwrap_or(true);
        if !started {
            let failed = f.try_call_method("start", vec![]).is_err();
            if ext_php_rs::zend::ExecutorGlobals::has_exception() {
                return Ok(false);
            }
            if failed {
                return Err(QpError::new(ErrorKind::Client, "a Fiber failed to start"));
            }
        }
    }
    let alive = |fibers: &[Zval]| fibers.iter().any(|f| !f.try_call_method("isTerminated", vec![]).ok().and_then(|z| z.bool()).unwrap_or(true));
    while alive(fibers) {
        // Waiters that yielded, and those whose deadline passed.
        let now = Instant::now();
        let mut due: Vec<u64> = LOOP.with(|l| {
            let mut l = l.borrow_mut();
            let Some(s) = l.as_mut() else { return Vec::new() };
            let mut due = std::mem::take(&mut s.next_turn);
            while let Some(Reverse((d, id))) = s.deadlines.peek().copied() {
                if d > now {
                    break;
                }
                s.deadlines.pop();
                due.push(id);
            }
            due
        });
        if due.is_empty() {
            // Nothing runnable: wait for the network or the next deadline.
            let next = LOOP.with(|l| l.borrow().as_ref().and_then(|s| s.deadlines.peek().map(|Reverse((d, _))| *d)));
            let wait = with_hub(|h| {
                let t = [next, h.next_timeout()].into_iter().flatten().min();
                t.map_or(IDLE_TURN, |t| t.saturating_duration_since(now).min(IDLE_TURN))
            });
            with_hub(|h| h.step(wait))?;
        } else {
            with_hub(|h| h.step(Duration::ZERO))?;
        }
        // Sessions with news wake their waiters.
        for key in with_hub(|h| h.take_dirty()) {
            let ids = LOOP.with(|l| l.borrow_mut().as_mut().and_then(|s| s.by_key.remove(&key)).unwrap_or_default());
            due.extend(ids);
        }
        for id in due {
            wake(id);
            if ext_php_rs::zend::ExecutorGlobals::has_exception() {
                return Ok(false);
            }
        }
        if ext_php_rs::zend::ExecutorGlobals::has_exception() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Makes a `Fiber` of `callable` (a Fiber is taken as it is).
fn as_fiber(task: &Zval) -> QpResult<Zval> {
    if task.object().and_then(|o| o.get_class_name().ok()).as_deref() == Some("Fiber") {
        return Ok(task.shallow_clone());
    }
    if !task.is_callable() {
        return Err(QpError::new(ErrorKind::Client, "Quicpro\\Loop takes callables or Fibers"));
    }
    let ce = ClassEntry::try_find("Fiber").ok_or_else(|| QpError::new(ErrorKind::Client, "PHP has no Fiber class"))?;
    let mut obj = ce.new();
    let mut z = Zval::new();
    z.set_object(&mut obj);
    z.try_call_method("__construct", vec![task]).map_err(|_| QpError::new(ErrorKind::Client, "cannot create a Fiber"))?;
    Ok(z)
}

/// Runs `fibers` under a loop of this process (one at a time).
fn run_loop(fibers: Vec<Zval>) -> QpResult<Vec<Zval>> {
    let busy = LOOP.with(|l| l.borrow().is_some());
    if busy {
        return Err(QpError::new(ErrorKind::Client, "Quicpro\\Loop is already running"));
    }
    let handles: HashSet<u32> = fibers.iter().filter_map(handle_of).collect();
    LOOP.with(|l| *l.borrow_mut() = Some(Box::new(LoopState { fibers: handles, ..LoopState::default() })));
    let r = drive(&fibers);
    LOOP.with(|l| *l.borrow_mut() = None);
    if !r? {
        // A Fiber's exception is pending: it propagates from run()/all().
        return Ok(Vec::new());
    }
    Ok(fibers.iter().map(|f| f.try_call_method("getReturn", vec![]).unwrap_or_default()).collect())
}

/// `Quicpro\Loop`.
#[php_class]
#[php(name = "Quicpro\\Loop")]
#[derive(Debug, Default)]
pub struct Loop;

#[php_impl]
impl Loop {
    /// Runs `$task` (a callable or a Fiber) in a Fiber under the loop and
    /// returns what it returned.
    pub fn run(task: &Zval) -> PhpResult<Zval> {
        let f = as_fiber(task)?;
        Ok(run_loop(vec![f])?.pop().unwrap_or_default())
    }

    /// Runs every task (callables or Fibers) concurrently under the loop;
    /// returns their results with the array's keys.
    pub fn all(tasks: &ZendHashTable) -> PhpResult<Zval> {
        let mut keys = Vec::new();
        let mut fibers = Vec::new();
        for (k, v) in tasks.iter() {
            keys.push(k);
            fibers.push(as_fiber(v)?);
        }
        let results = run_loop(fibers)?;
        let mut out = ZendHashTable::new();
        for (k, r) in keys.into_iter().zip(results) {
            let _ = out.insert(k, r);
        }
        let mut z = Zval::new();
        z.set_hashtable(out);
        Ok(z)
    }

    /// Whether the running code is in a Fiber of a running loop.
    pub fn in_loop() -> bool {
        in_loop_fiber()
    }
}
