//! qlog files written off the event loop.
//!
//! quic-core serialises qlog records into the `Write` sink it is given,
//! from inside `handle` and `poll_transmit`. A file there would put disk
//! latency (and `open(2)` for every new connection) on the packet path. A
//! [`QlogSpool`] owns one writer thread; the sinks it hands out only queue
//! each record for that thread and never block. Records beyond
//! [`MAX_QUEUED_BYTES`] waiting at once are dropped and counted (a slow
//! disk costs trace records, not latency).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Bytes of records queued for the writer thread at most.
pub const MAX_QUEUED_BYTES: usize = 64 * 1024 * 1024;

enum Msg {
    Open(u64, PathBuf),
    Record(u64, Vec<u8>),
    Close(u64),
    Shutdown,
}

/// Counters shared by the spool, its sinks and its thread.
#[derive(Debug, Default)]
struct Shared {
    queued_bytes: AtomicUsize,
    dropped_records: AtomicU64,
    failed_files: AtomicU64,
}

/// The writer thread of a process's (or worker's) qlog files.
#[derive(Debug)]
pub struct QlogSpool {
    tx: Sender<Msg>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    thread: Option<JoinHandle<()>>,
}

impl QlogSpool {
    pub fn start() -> io::Result<Self> {
        let (tx, rx) = channel();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new().name("quicpro-qlog".into()).spawn(move || write_loop(&rx, &s))?;
        Ok(Self { tx, shared, next_id: AtomicU64::new(0), thread: Some(thread) })
    }

    /// A sink for a new file at `path` (created by the writer thread).
    pub fn sink(&self, path: PathBuf) -> SpoolSink {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Open(id, path));
        SpoolSink { id, tx: self.tx.clone(), shared: self.shared.clone() }
    }

    /// Records dropped because the queue was full.
    pub fn dropped_records(&self) -> u64 {
        self.shared.dropped_records.load(Ordering::Relaxed)
    }

    /// Files the writer thread could not create or write.
    pub fn failed_files(&self) -> u64 {
        self.shared.failed_files.load(Ordering::Relaxed)
    }
}

impl Drop for QlogSpool {
    /// Writes out what is queued and stops the thread; sinks still alive
    /// get an error on their next record (their writer stops logging).
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_loop(rx: &Receiver<Msg>, shared: &Shared) {
    let mut files: HashMap<u64, Option<BufWriter<File>>> = HashMap::new();
    let fail = |f: &mut Option<BufWriter<File>>| {
        shared.failed_files.fetch_add(1, Ordering::Relaxed);
        *f = None;
    };
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Open(id, path) => {
                let f = File::create(&path).ok().map(BufWriter::new);
                if f.is_none() {
                    shared.failed_files.fetch_add(1, Ordering::Relaxed);
                }
                files.insert(id, f);
            }
            Msg::Record(id, bytes) => {
                shared.queued_bytes.fetch_sub(bytes.len(), Ordering::Relaxed);
                if let Some(f) = files.get_mut(&id) {
                    if f.as_mut().is_some_and(|w| w.write_all(&bytes).is_err()) {
                        fail(f);
                    }
                }
            }
            Msg::Close(id) => {
                if let Some(Some(mut w)) = files.remove(&id) {
                    let _ = w.flush();
                }
            }
            Msg::Shutdown => break,
        }
    }
    for (_, w) in files.iter_mut() {
        if let Some(w) = w {
            let _ = w.flush();
        }
    }
}

/// One qlog file's sink: queues each record for the writer thread.
#[derive(Debug)]
pub struct SpoolSink {
    id: u64,
    tx: Sender<Msg>,
    shared: Arc<Shared>,
}

impl Write for SpoolSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let queued = self.shared.queued_bytes.fetch_add(buf.len(), Ordering::Relaxed);
        if queued + buf.len() > MAX_QUEUED_BYTES {
            self.shared.queued_bytes.fetch_sub(buf.len(), Ordering::Relaxed);
            self.shared.dropped_records.fetch_add(1, Ordering::Relaxed);
            return Ok(buf.len());
        }
        if self.tx.send(Msg::Record(self.id, buf.to_vec())).is_err() {
            self.shared.queued_bytes.fetch_sub(buf.len(), Ordering::Relaxed);
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "qlog spool stopped"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SpoolSink {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Close(self.id));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn records_reach_their_files_in_order() {
        let dir = std::env::temp_dir().join(format!("quicpro-qlog-spool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spool = QlogSpool::start().unwrap();
        let mut a = spool.sink(dir.join("a.sqlog"));
        let mut b = spool.sink(dir.join("b.sqlog"));
        for i in 0..100 {
            a.write_all(format!("a{i}\n").as_bytes()).unwrap();
            b.write_all(format!("b{i}\n").as_bytes()).unwrap();
        }
        drop(a);
        let mut bad = spool.sink(dir.join("no-such-dir").join("c.sqlog"));
        bad.write_all(b"lost\n").unwrap();
        drop(spool);
        // After the spool stopped, a sink reports the error (quic-core's
        // writer then stops logging).
        assert!(b.write_all(b"late\n").is_err());
        let want_a: String = (0..100).map(|i| format!("a{i}\n")).collect();
        let want_b: String = (0..100).map(|i| format!("b{i}\n")).collect();
        assert_eq!(std::fs::read_to_string(dir.join("a.sqlog")).unwrap(), want_a);
        assert_eq!(std::fs::read_to_string(dir.join("b.sqlog")).unwrap(), want_b);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let dir = std::env::temp_dir().join(format!("quicpro-qlog-spool-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spool = QlogSpool::start().unwrap();
        let mut s = spool.sink(dir.join("big.sqlog"));
        // Pretend the thread is far behind.
        spool.shared.queued_bytes.fetch_add(MAX_QUEUED_BYTES, Ordering::Relaxed);
        s.write_all(b"dropped\n").unwrap();
        assert_eq!(spool.dropped_records(), 1);
        spool.shared.queued_bytes.fetch_sub(MAX_QUEUED_BYTES, Ordering::Relaxed);
        s.write_all(b"kept\n").unwrap();
        drop(s);
        drop(spool);
        assert_eq!(std::fs::read_to_string(dir.join("big.sqlog")).unwrap(), "kept\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
