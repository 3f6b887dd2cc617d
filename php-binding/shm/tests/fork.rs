//! Cross-process behaviour: forked workers sharing one region.
//!
//! `harness = false`: the cases run one after another from `main`, so the
//! process has a single thread whenever it forks.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::child::{fork, run_tests, wait_until, SharedCounters};
use quicpro_shm::{SharedSessionCache, ShmRegion, DEFAULT_SHM_SIZE};

const DEADLINE: Duration = Duration::from_secs(120);

fn key(i: u64) -> Vec<u8> {
    let mut k = i.to_be_bytes().to_vec();
    k.extend_from_slice(&[0x5a; 24]);
    k
}

/// The value always starts with its key, so a reader can tell that what it
/// got belongs to the key it asked for.
fn value(i: u64, writer: u64, seq: u64) -> Vec<u8> {
    let mut v = key(i);
    v.extend_from_slice(&writer.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.resize(40 + (seq % 100) as usize, (i ^ seq) as u8);
    v
}

fn region(size: usize) -> (ShmRegion, SharedSessionCache) {
    let r = ShmRegion::create(size).unwrap();
    // Children share two cores with other work; a slow holder must not
    // turn into lock timeouts here (bounded waits are tested separately).
    r.set_lock_timeout(Duration::from_secs(30));
    let c = SharedSessionCache::new(&r);
    (r, c)
}

/// Per-child tallies reported through shared counters.
const PUT_OK: usize = 0;
const PUT_REFUSED: usize = 1;
const GET_HIT: usize = 2;
const GET_MISS: usize = 3;
const TAKE_HIT: usize = 4;
const TAKE_MISS: usize = 5;
const WRONG: usize = 6;
const FIELDS: usize = 7;

fn concurrent_workers_stay_consistent() {
    const WORKERS: u64 = 4;
    const OPS: u64 = 3000;
    let (_r, c) = region(DEFAULT_SHM_SIZE);
    let tallies = SharedCounters::new(WORKERS as usize * FIELDS);
    let mut kids = Vec::new();
    for w in 0..WORKERS {
        let c = c.clone();
        let t = &tallies;
        kids.push(fork(move || {
            let mut x = 0x2545_F491_4F6C_DD1D_u64 ^ (w + 1).wrapping_mul(0x9E37_79B9);
            let bump = |f: usize| t.get(w as usize * FIELDS + f).fetch_add(1, Ordering::Relaxed);
            for seq in 0..OPS {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // 400 keys over 249 slots: hits, misses, evictions, races.
                let k = x % 400;
                let check = |v: &[u8]| v.starts_with(&key(k)) && v.len() >= 40;
                match (x >> 32) % 4 {
                    0 | 1 => {
                        if c.insert(&key(k), &value(k, w, seq)) {
                            bump(PUT_OK);
                        } else {
                            bump(PUT_REFUSED);
                        }
                    }
                    2 => match c.lookup(&key(k)) {
                        Some(v) => {
                            bump(GET_HIT);
                            if !check(&v) {
                                bump(WRONG);
                            }
                        }
                        None => {
                            bump(GET_MISS);
                        }
                    },
                    _ => match c.remove(&key(k)) {
                        Some(v) => {
                            bump(TAKE_HIT);
                            if !check(&v) {
                                bump(WRONG);
                            }
                        }
                        None => {
                            bump(TAKE_MISS);
                        }
                    },
                };
            }
            0
        }));
    }
    for k in &mut kids {
        assert_eq!(k.wait(DEADLINE), 0);
    }
    let sum = |f: usize| (0..WORKERS as usize).map(|w| tallies.get(w * FIELDS + f).load(Ordering::Relaxed)).sum::<u64>();
    assert_eq!(sum(WRONG), 0, "a worker got a value for another key");
    assert_eq!(sum(PUT_REFUSED), 0);
    let total: u64 = (0..6).map(sum).sum();
    assert_eq!(total, WORKERS * OPS);
    let s = c.stats();
    println!("  {} workers x {} ops: {:?}", WORKERS, OPS, s);
    assert_eq!(s.inserts, sum(PUT_OK));
    assert_eq!(s.hits, sum(GET_HIT) + sum(TAKE_HIT));
    assert_eq!(s.misses, sum(GET_MISS) + sum(TAKE_MISS));
    assert_eq!(s.takes, sum(TAKE_HIT));
    assert!(s.evictions > 0 && s.replaced > 0 && s.takes > 0);
    assert_eq!((s.corrupt_entries, s.lock_failures, s.lock_recoveries, s.rebuilds), (0, 0, 0, 0));
    assert_eq!(s.entries, s.inserts - s.replaced - s.evictions - s.takes);
    let cons = c.check_consistency().unwrap();
    assert!(cons.is_consistent(c.capacity()), "{cons:?}");
    assert_eq!(cons.len as u64, s.entries);
}

fn one_child_puts_another_reads() {
    let (_r, c) = region(DEFAULT_SHM_SIZE);
    let c1 = c.clone();
    let mut a = fork(move || if c1.insert(b"ticket-from-a", b"session-state-a") { 0 } else { 1 });
    assert_eq!(a.wait(DEADLINE), 0);
    let c2 = c.clone();
    let mut b = fork(move || {
        let got = c2.lookup(b"ticket-from-a");
        let taken = c2.remove(b"ticket-from-a");
        let again = c2.remove(b"ticket-from-a");
        let ok = got.as_deref() == Some(&b"session-state-a"[..]) && taken.as_deref() == Some(&b"session-state-a"[..]) && again.is_none();
        if ok {
            0
        } else {
            1
        }
    });
    assert_eq!(b.wait(DEADLINE), 0);
    // Taken in B is gone for the parent too.
    assert_eq!(c.lookup(b"ticket-from-a"), None);
    let s = c.stats();
    assert_eq!((s.inserts, s.hits, s.takes, s.misses), (1, 2, 1, 2));
}

fn racing_takes_have_one_winner() {
    const RACERS: usize = 3;
    const ROUNDS: u64 = 300;
    let (_r, c) = region(DEFAULT_SHM_SIZE);
    // [0] = current round (1-based), then per round: winners, finished.
    let ctl = SharedCounters::new(1 + 2 * ROUNDS as usize);
    let mut kids = Vec::new();
    for _ in 0..RACERS {
        let c = c.clone();
        let ctl = &ctl;
        kids.push(fork(move || {
            for r in 1..=ROUNDS {
                wait_until(DEADLINE, "the next round", || ctl.get(0).load(Ordering::Acquire) >= r);
                let won = c.remove(&key(r)).is_some_and(|v| v == value(r, 0, r));
                if won {
                    ctl.get(r as usize * 2 - 1).fetch_add(1, Ordering::AcqRel);
                }
                ctl.get(r as usize * 2).fetch_add(1, Ordering::AcqRel);
            }
            0
        }));
    }
    for r in 1..=ROUNDS {
        assert!(c.insert(&key(r), &value(r, 0, r)));
        ctl.get(0).store(r, Ordering::Release);
        wait_until(DEADLINE, "all racers", || ctl.get(r as usize * 2).load(Ordering::Acquire) == RACERS as u64);
        assert_eq!(ctl.get(r as usize * 2 - 1).load(Ordering::Acquire), 1, "round {r}: exactly one take must win");
    }
    for k in &mut kids {
        assert_eq!(k.wait(DEADLINE), 0);
    }
    let s = c.stats();
    assert_eq!(s.takes, ROUNDS);
    assert_eq!(s.misses, ROUNDS * (RACERS as u64 - 1));
    assert_eq!(s.entries, 0);
}

fn holder_killed_with_the_lock_does_not_wedge_others() {
    let (r, c) = region(DEFAULT_SHM_SIZE);
    for i in 0..20 {
        assert!(c.insert(&key(i), &value(i, 9, i)));
    }
    let flag = SharedCounters::new(1);
    let r2 = r.clone();
    let f = &flag;
    let mut holder = fork(move || {
        r2.debug_hold_lock(|| {
            f.get(0).store(1, Ordering::Release);
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        2
    });
    wait_until(DEADLINE, "the child to hold the lock", || flag.get(0).load(Ordering::Acquire) == 1);
    // While it holds the lock, others give up after their (short) timeout
    // instead of hanging.
    r.set_lock_timeout(Duration::from_millis(50));
    assert_eq!(c.lookup(&key(1)), None);
    assert_eq!(c.stats().lock_failures, 1);
    holder.kill();
    r.set_lock_timeout(Duration::from_secs(30));
    // The parent recovers the lock (EOWNERDEAD) and keeps every entry.
    assert_eq!(c.lookup(&key(1)), Some(value(1, 9, 1)));
    let s = c.stats();
    assert_eq!((s.lock_recoveries, s.rebuilds, s.corrupt_entries), (1, 1, 0));
    // And another worker makes progress too.
    let c3 = c.clone();
    let mut other = fork(move || {
        let ok = c3.insert(b"after", b"crash") && c3.lookup(&key(2)).is_some() && c3.remove(b"after").is_some();
        if ok {
            0
        } else {
            1
        }
    });
    assert_eq!(other.wait(DEADLINE), 0);
    assert!(c.check_consistency().unwrap().is_consistent(c.capacity()));
}

fn holder_killed_mid_write_loses_only_that_entry() {
    let (_r, c) = region(DEFAULT_SHM_SIZE);
    for i in 0..20 {
        assert!(c.insert(&key(i), &value(i, 9, i)));
    }
    let flag = SharedCounters::new(1);
    let c2 = c.clone();
    let f = &flag;
    let mut writer = fork(move || {
        c2.debug_torn_put(&key(777), &value(777, 1, 1), || {
            f.get(0).store(1, Ordering::Release);
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        2
    });
    wait_until(DEADLINE, "the child to start writing", || flag.get(0).load(Ordering::Acquire) == 1);
    writer.kill();
    // Another child is the first to lock after the crash.
    let c3 = c.clone();
    let mut next = fork(move || {
        let torn_absent = c3.lookup(&key(777)).is_none();
        let intact = (0..20).all(|i| c3.lookup(&key(i)) == Some(value(i, 9, i)));
        if torn_absent && intact {
            0
        } else {
            1
        }
    });
    assert_eq!(next.wait(DEADLINE), 0);
    let s = c.stats();
    assert_eq!((s.lock_recoveries, s.rebuilds, s.corrupt_entries), (1, 1, 1));
    assert_eq!(s.entries, 20);
    assert!(c.check_consistency().unwrap().is_consistent(c.capacity()));
}

fn stopped_holder_only_delays() {
    // A holder that is alive but stopped (SIGSTOP) is not dead: nobody can
    // recover the lock, so waiters time out (misses), then proceed once it
    // runs again.
    let (r, c) = region(DEFAULT_SHM_SIZE);
    assert!(c.insert(b"k", b"v"));
    let flag = SharedCounters::new(2);
    let r2 = r.clone();
    let f = &flag;
    let mut holder = fork(move || {
        r2.debug_hold_lock(|| {
            f.get(0).store(1, Ordering::Release);
            // SAFETY: stopping ourselves.
            unsafe { libc::raise(libc::SIGSTOP) };
        });
        0
    });
    wait_until(DEADLINE, "the child to hold the lock", || flag.get(0).load(Ordering::Acquire) == 1);
    r.set_lock_timeout(Duration::from_millis(30));
    assert_eq!(c.lookup(b"k"), None);
    assert!(!c.insert(b"k2", b"v2"));
    assert_eq!(c.stats().lock_failures, 2);
    // SAFETY: resuming our own child.
    unsafe { libc::kill(holder.pid, libc::SIGCONT) };
    assert_eq!(holder.wait(DEADLINE), 0);
    r.set_lock_timeout(Duration::from_secs(30));
    assert_eq!(c.lookup(b"k"), Some(b"v".to_vec()));
    assert_eq!(c.stats().lock_recoveries, 0);
}

fn main() {
    run_tests(&[
        ("concurrent_workers_stay_consistent", concurrent_workers_stay_consistent),
        ("one_child_puts_another_reads", one_child_puts_another_reads),
        ("racing_takes_have_one_winner", racing_takes_have_one_winner),
        ("holder_killed_with_the_lock_does_not_wedge_others", holder_killed_with_the_lock_does_not_wedge_others),
        ("holder_killed_mid_write_loses_only_that_entry", holder_killed_mid_write_loses_only_that_entry),
        ("stopped_holder_only_delays", stopped_holder_only_delays),
    ]);
}
