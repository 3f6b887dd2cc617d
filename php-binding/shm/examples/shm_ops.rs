//! Times cache operations on a large region (to show they stay O(1) as the
//! region grows). A report, not a test: `cargo run --release -p quicpro-shm
//! --example shm_ops [size_bytes]`.

use std::time::Instant;

use quicpro_shm::{SharedSessionCache, ShmRegion};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<usize> = match std::env::args().nth(1) {
        Some(s) => vec![s.parse()?],
        None => vec![65536, 1 << 20, 32 << 20],
    };
    for size in sizes {
        let region = ShmRegion::create(size)?;
        let c = SharedSessionCache::new(&region);
        let cap = c.capacity() as u64;
        let key = |i: u64| {
            let mut k = [0x11u8; 32];
            k[..8].copy_from_slice(&i.to_le_bytes());
            k
        };
        let value = [0x42u8; 100];
        // Fill, then keep going so every put evicts.
        let t = Instant::now();
        let n = 4 * cap.max(100_000);
        for i in 0..n {
            c.insert(&key(i), &value);
        }
        let put_ns = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        let mut hits = 0u64;
        for i in 0..n {
            // Half of the probes hit (the last `cap` keys are present).
            if c.lookup(&key(n - 1 - (i % (2 * cap)))).is_some() {
                hits += 1;
            }
        }
        let get_ns = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        for i in 0..cap {
            c.remove(&key(n - 1 - i));
        }
        let take_ns = t.elapsed().as_nanos() as f64 / cap as f64;
        let s = c.stats();
        println!(
            "size {size:>9} B: {cap:>6} entries | put (evicting) {put_ns:6.0} ns | get {get_ns:6.0} ns ({:.0}% hits) | take {take_ns:6.0} ns | evictions {}",
            100.0 * hits as f64 / n as f64,
            s.evictions
        );
    }
    Ok(())
}
