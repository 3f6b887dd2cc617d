//! The sizes rustls actually stores with quicpro's server configuration,
//! and that the default slot holds them (the figures behind
//! `DEFAULT_SLOT_SIZE`).
#![allow(clippy::unwrap_used)]
mod common;

use std::sync::{Arc, Mutex};

use quicpro_shm::{SharedSessionCache, ShmRegion, DEFAULT_SHM_SIZE, DEFAULT_SLOT_SIZE};
use rustls::server::StoresServerSessions;

/// Forwards to the shared cache and records (key, value) lengths.
#[derive(Debug)]
struct Recording {
    inner: SharedSessionCache,
    puts: Mutex<Vec<(usize, usize, bool)>>,
}

impl StoresServerSessions for Recording {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let (k, v) = (key.len(), value.len());
        let stored = self.inner.put(key, value);
        self.puts.lock().unwrap().push((k, v, stored));
        stored
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.get(key)
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.take(key)
    }
    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

fn run(name: &str, slot_size: usize) -> (Vec<(usize, usize, bool)>, bool) {
    let region = ShmRegion::create_with_slot_size(DEFAULT_SHM_SIZE, slot_size).unwrap();
    let rec = Arc::new(Recording { inner: SharedSessionCache::new(&region), puts: Mutex::default() });
    let certs = common::certs(&[name]);
    let scfg = common::server_config(&certs, true, Some(rec.clone()), None);
    let ccfg = common::client_config(&certs, true);
    assert!(!common::handshake_in_memory(&ccfg, &scfg, name, b"").resumed);
    let o = common::handshake_in_memory(&ccfg, &scfg, name, b"early");
    let puts = rec.puts.lock().unwrap().clone();
    (puts, o.resumed && o.early_data_accepted)
}

#[test]
fn session_values_fit_the_default_slot() {
    let long = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61));
    for name in ["localhost", "www.example-service.com", &format!("{}.{}.example.com", "x".repeat(60), "y".repeat(28))] {
        let (puts, resumed) = run(name, DEFAULT_SLOT_SIZE);
        println!("  SNI {:3} bytes: (key, value, stored) = {:?}", name.len(), puts);
        assert!(resumed, "{name}");
        for (k, v, stored) in puts {
            assert_eq!(k, 32);
            // 59 + SNI with SHA-256 suites, 16 more with SHA-384.
            assert!(v >= 59 + name.len() && v <= 75 + name.len(), "{v}");
            assert!(stored);
        }
    }
    // The longest DNS name does not fit the default slot: refused (counted),
    // so no ticket is issued and the next connection is a full handshake.
    let (puts, resumed) = run(&long, DEFAULT_SLOT_SIZE);
    println!("  SNI {:3} bytes: (key, value, stored) = {:?}", long.len(), puts);
    assert!(!resumed);
    assert!(puts.iter().all(|&(_, v, stored)| !stored && v > DEFAULT_SLOT_SIZE - 48 - 32));
    // 416-byte slots hold it.
    let (puts, resumed) = run(&long, 416);
    assert!(resumed);
    assert!(puts.iter().all(|&(_, _, stored)| stored));
}
