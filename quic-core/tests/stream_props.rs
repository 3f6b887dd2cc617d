//! Property tests for stream reassembly, the send/receive pair and RangeSet.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use quic_core::range_set::RangeSet;
use quic_core::stream::{RecvState, RecvStream, RecvWindow, SendState, SendStream, StreamReadError};

/// Small deterministic PRNG so one proptest seed drives shuffles and choices.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Reads whatever is available, alternating copy and zero-copy reads.
fn drain(s: &mut RecvStream, out: &mut Vec<u8>, rng: &mut XorShift, sizes: &[usize]) -> bool {
    loop {
        let size = sizes[rng.below(sizes.len() as u64) as usize];
        if rng.next() & 1 == 0 {
            let mut buf = vec![0u8; size];
            match s.read(&mut buf) {
                Ok(o) => {
                    out.extend_from_slice(&buf[..o.bytes]);
                    if o.fin {
                        return true;
                    }
                }
                Err(StreamReadError::Blocked) => return false,
                Err(e) => panic!("unexpected read error {e:?}"),
            }
        } else {
            match s.read_chunk(size) {
                Ok(c) => {
                    assert_eq!(c.offset, out.len() as u64);
                    assert!(c.data.len() <= size);
                    out.extend_from_slice(&c.data);
                    if c.fin {
                        return true;
                    }
                }
                Err(StreamReadError::Blocked) => return false,
                Err(e) => panic!("unexpected read error {e:?}"),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any permutation of (possibly duplicated, overlapping) STREAM frames
    /// covering a byte string reassembles to exactly that string.
    #[test]
    fn reassembly_of_permuted_duplicated_frames(
        data in vec(any::<u8>(), 0..3000),
        cuts in vec(any::<u16>(), 0..40),
        extra in vec((any::<u16>(), any::<u16>()), 0..20),
        seed in any::<u64>(),
        sizes in vec(1usize..600, 1..8),
    ) {
        let len = data.len();
        let mut rng = XorShift::new(seed);
        let mut points: Vec<usize> = cuts.iter().map(|&c| c as usize % (len + 1)).collect();
        points.push(0);
        points.push(len);
        points.sort_unstable();
        points.dedup();
        let mut frames: Vec<(usize, usize)> = points.windows(2).map(|w| (w[0], w[1])).collect();
        if len == 0 {
            frames.push((0, 0)); // FIN-only
        }
        // Duplicates of whole frames and arbitrary overlapping retransmissions.
        let dups: Vec<(usize, usize)> =
            frames.iter().copied().filter(|_| rng.below(3) == 0).collect();
        frames.extend(dups);
        for &(a, b) in &extra {
            let (a, b) = (a as usize % (len + 1), b as usize % (len + 1));
            frames.push((a.min(b), a.max(b)));
        }
        rng.shuffle(&mut frames);

        let mut s = RecvStream::new(RecvWindow::new(len as u64, len as u64));
        let mut out = Vec::new();
        let mut credit = 0u64;
        let mut done = false;
        for &(a, b) in &frames {
            credit += s.on_stream_frame(a as u64, &data[a..b], b == len).unwrap();
            if !done && rng.below(2) == 0 {
                done = drain(&mut s, &mut out, &mut rng, &sizes);
            }
        }
        prop_assert_eq!(s.state(), if done { RecvState::DataRead } else { RecvState::DataRecvd });
        if !done {
            done = drain(&mut s, &mut out, &mut rng, &sizes);
        }
        prop_assert!(done);
        prop_assert_eq!(&out, &data);
        prop_assert_eq!(credit, len as u64, "credit counts each byte once");
        prop_assert_eq!(s.take_released(), len as u64);
        prop_assert_eq!(s.state(), RecvState::DataRead);
        prop_assert_eq!(s.buffered_bytes(), 0);
    }

    /// A send stream and a receive stream over a lossy, reordering "network"
    /// with flow control deliver the exact byte string, and both reach their
    /// terminal states.
    #[test]
    fn send_recv_over_lossy_path(
        data in vec(any::<u8>(), 0..5000),
        seed in any::<u64>(),
        window in 1u64..2000,
        buffer_limit in 1u64..3000,
        loss_percent in 0u64..50,
    ) {
        let mut rng = XorShift::new(seed);
        let mut tx = SendStream::new(window, buffer_limit);
        let mut rx = RecvStream::new(RecvWindow::new(window, 4 * window));
        let now = Instant::now();
        let rtt = Duration::from_millis(100);
        let mut written = 0usize;
        let mut out = Vec::new();
        let mut finished_reading = false;
        for _round in 0..20_000 {
            if written < data.len() {
                if let Ok(n) = tx.write(&data[written..]) {
                    written += n;
                }
            } else if !tx.is_finished() {
                tx.finish().unwrap();
            }
            // Up to a few frames in flight, each of random size.
            let mut flight = Vec::new();
            for _ in 0..1 + rng.below(4) {
                let max_len = 1 + rng.below(700) as usize;
                match tx.next_chunk(max_len, u64::MAX) {
                    Some(c) => {
                        let mut payload = vec![0u8; c.len];
                        prop_assert!(tx.copy_chunk(c.offset, c.len, &mut payload));
                        prop_assert!(c.end() <= tx.max_stream_data());
                        flight.push((c, payload));
                    }
                    None => break,
                }
            }
            rng.shuffle(&mut flight);
            for (c, payload) in flight {
                if rng.below(100) < loss_percent {
                    tx.on_lost(c.offset, c.len, c.fin);
                } else {
                    rx.on_stream_frame(c.offset, &payload, c.fin).unwrap();
                    tx.on_ack(c.offset, c.len, c.fin);
                }
            }
            if !finished_reading {
                finished_reading = drain(&mut rx, &mut out, &mut rng, &[1, 97, 4096]);
            }
            let _ = rx.take_released();
            if let Some(v) = rx.should_send_max_stream_data() {
                rx.on_max_stream_data_sent(v, now, rtt);
                tx.on_max_stream_data(v);
            }
            if finished_reading && tx.state() == SendState::DataRecvd {
                break;
            }
        }
        prop_assert!(finished_reading);
        prop_assert_eq!(&out, &data);
        prop_assert_eq!(tx.state(), SendState::DataRecvd);
        prop_assert_eq!(tx.buffered(), 0);
        prop_assert_eq!(rx.state(), RecvState::DataRead);
    }

    /// RangeSet agrees with a BTreeSet<u64> model under random inserts and
    /// prefix removals (cap large enough never to refuse).
    #[test]
    fn range_set_matches_btreeset_model(
        ops in vec((0u64..300, 0u64..25, 0u8..10), 1..120),
    ) {
        let mut set = RangeSet::new(1000);
        let mut model = BTreeSet::new();
        for (start, len, kind) in ops {
            if kind == 0 {
                set.remove_below(start);
                model.retain(|&v| v >= start);
            } else {
                let before = model.len();
                model.extend(start..start + len);
                let new = set.insert(start..start + len).unwrap();
                prop_assert_eq!(new, model.len() > before);
            }
            // Structure: sorted, non-empty, disjoint and non-adjacent.
            let ranges: Vec<_> = set.iter().collect();
            for r in &ranges {
                prop_assert!(r.start < r.end);
            }
            for w in ranges.windows(2) {
                prop_assert!(w[0].end < w[1].start);
            }
            let mut rev: Vec<_> = set.iter_rev().collect();
            rev.reverse();
            prop_assert_eq!(&rev, &ranges);
            // Same values.
            let flattened: Vec<u64> = ranges.iter().flat_map(|r| r.clone()).collect();
            let expected: Vec<u64> = model.iter().copied().collect();
            prop_assert_eq!(&flattened, &expected);
            // next_gap[v]: the smallest value >= v missing from the model
            // (model values are below 325).
            let mut member = vec![false; 331];
            for &v in &model {
                member[v as usize] = true;
            }
            let mut next_gap = vec![0u64; 331];
            next_gap[330] = 330;
            for v in (0..330usize).rev() {
                next_gap[v] = if member[v] { next_gap[v + 1] } else { v as u64 };
            }
            for v in 0..330u64 {
                prop_assert_eq!(set.contains(v), member[v as usize]);
                prop_assert_eq!(set.first_gap_above(v), next_gap[v as usize]);
            }
            prop_assert_eq!(set.min(), model.first().copied());
            prop_assert_eq!(set.max(), model.last().copied());
            prop_assert_eq!(set.is_empty(), model.is_empty());
            // Number of ranges = number of maximal runs in the model.
            let runs = model.iter().filter(|&&v| v == 0 || !member[v as usize - 1]).count();
            prop_assert_eq!(set.len(), runs);
            let gaps: Vec<u64> = set.gaps(0..330).flatten().collect();
            let model_gaps: Vec<u64> = (0..330).filter(|&v| !member[v as usize]).collect();
            prop_assert_eq!(gaps, model_gaps);
        }
    }
}
