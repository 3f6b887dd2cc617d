//! Measures the stored session values of quicpro's server configuration
//! (what sizes the cache's slots).
#![allow(clippy::unwrap_used)]
mod common;

use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<(usize, usize)>>, Mutex<std::collections::HashMap<Vec<u8>, Vec<u8>>>);
impl rustls::server::StoresServerSessions for Recorder {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.0.lock().unwrap().push((key.len(), value.len()));
        self.1.lock().unwrap().insert(key, value);
        true
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> { self.1.lock().unwrap().get(key).cloned() }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> { self.1.lock().unwrap().remove(key) }
    fn can_cache(&self) -> bool { true }
}

#[test]
fn measure() {
    let long = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61));
    for name in ["localhost", "www.example-service.com", long.as_str()] {
        let c = common::certs(&[name]);
        let rec = Arc::new(Recorder::default());
        let scfg = common::server_config(&c, true, Some(rec.clone()), None);
        let ccfg = common::client_config(&c, true);
        let o = common::handshake_in_memory(&ccfg, &scfg, name, b"");
        let o2 = common::handshake_in_memory(&ccfg, &scfg, name, b"hello");
        println!("name len {}: {:?} {:?} {:?}", name.len(), o, o2, rec.0.lock().unwrap());
    }
}
