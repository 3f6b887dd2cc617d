//! A qlog destination shared between a connection and the test that reads
//! it back: the JSON-SEQ records (RFC 7464: each starts with 0x1e).

use std::sync::{Arc, Mutex};

/// A `Write` sink whose bytes the test can read while the connection
/// still holds its clone.
#[derive(Clone, Default)]
pub struct QlogSink(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for QlogSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl QlogSink {
    /// Every record written so far, parsed (the header record first).
    /// Panics on a record that is not JSON: the writer is ours.
    pub fn records(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        bytes
            .split(|b| *b == 0x1e)
            .filter(|r| !r.is_empty())
            .map(|r| serde_json::from_slice(r).unwrap_or_else(|e| panic!("qlog record is not JSON ({e}): {}", String::from_utf8_lossy(r))))
            .collect()
    }

    /// The events named `name`.
    pub fn events(&self, name: &str) -> Vec<serde_json::Value> {
        self.records().into_iter().filter(|r| r["name"] == name).collect()
    }
}
