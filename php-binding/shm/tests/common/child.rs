//! Forked child processes for the cross-process tests: killed by PID in a
//! Drop guard, every wait bounded by a deadline.
#![allow(dead_code)]

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// A forked child; SIGKILLed and reaped on drop unless already reaped.
#[derive(Debug)]
pub struct Child {
    pub pid: libc::pid_t,
    reaped: bool,
}

/// Forks; the child runs `f` and exits with its return value (101 if it
/// panicked), never returning into the caller's code.
///
/// Call only while this process has a single thread (harness = false).
pub fn fork(f: impl FnOnce() -> i32) -> Child {
    // SAFETY: the test binaries that call this run without other threads.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: leave without running the parent's atexit handlers or
        // returning into the test runner.
        unsafe { libc::_exit(code) };
    }
    Child { pid, reaped: false }
}

impl Child {
    /// Waits for the exit code; panics (the guard then kills it) if the
    /// child does not exit before `deadline`.
    pub fn wait(&mut self, deadline: Duration) -> i32 {
        let end = Instant::now() + deadline;
        loop {
            let mut status = 0;
            // SAFETY: plain waitpid on our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == self.pid {
                self.reaped = true;
                if libc::WIFEXITED(status) {
                    return libc::WEXITSTATUS(status);
                }
                return -libc::WTERMSIG(status);
            }
            assert!(r == 0, "waitpid failed: {}", std::io::Error::last_os_error());
            assert!(Instant::now() < end, "child {} did not exit within {:?}", self.pid, deadline);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if !self.reaped {
            // SAFETY: signalling and reaping our own child.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                let mut status = 0;
                libc::waitpid(self.pid, &mut status, 0);
            }
            self.reaped = true;
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Counters in their own shared anonymous mapping, for children to report
/// through.
pub struct SharedCounters {
    base: *mut AtomicU64,
    n: usize,
}

impl SharedCounters {
    pub fn new(n: usize) -> Self {
        let len = n * 8;
        // SAFETY: fresh anonymous shared mapping, zero-filled.
        let p = unsafe { libc::mmap(core::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0) };
        assert!(p != libc::MAP_FAILED);
        SharedCounters { base: p.cast(), n }
    }

    pub fn get(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.n);
        // SAFETY: i < n, zero-initialised memory is a valid AtomicU64.
        unsafe { &*self.base.add(i) }
    }
}

impl Drop for SharedCounters {
    fn drop(&mut self) {
        // SAFETY: exactly what mmap returned.
        unsafe { libc::munmap(self.base.cast(), self.n * 8) };
    }
}

/// Spins (yielding) until `cond` holds; panics after `deadline`.
pub fn wait_until(deadline: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// Runs named test functions in order, reporting like libtest.
pub fn run_tests(tests: &[(&str, fn())]) {
    // Accept libtest's command line: options (and the values of those that
    // take one) are skipped, `--list` lists, anything else filters.
    let mut filter = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--list" => {
                for (n, _) in tests {
                    println!("{n}: test");
                }
                return;
            }
            "--test-threads" | "--format" | "--color" | "--skip" | "-Z" | "--logfile" | "--report-time" => {
                args.next();
            }
            o if o.starts_with('-') => {}
            _ => filter.push(a),
        }
    }
    let selected: Vec<_> = tests.iter().filter(|(n, _)| filter.is_empty() || filter.iter().any(|f| n.contains(f.as_str()))).collect();
    println!("\nrunning {} tests", selected.len());
    for (name, f) in &selected {
        f();
        println!("test {name} ... ok");
    }
    println!("\ntest result: ok. {} passed; 0 failed; 0 ignored; 0 measured; {} filtered out\n", selected.len(), tests.len() - selected.len());
}
