//! `hq-interop`: the QUIC interop runner's HTTP/0.9 over QUIC. A request is
//! one client bidirectional stream carrying `GET /path\r\n` and FIN; the
//! response is the file's bytes and FIN, on the same stream, with no
//! headers and no status (a missing file is an empty response).
//!
//! `quicpro serve` offers it beside `h3` (the runtime gives such
//! connections no HTTP/3 layer); `quicpro get --hq` speaks it as a client
//! (`get.rs`).

use std::collections::HashMap;

use bytes::Bytes;
use io_backends::runtime::{H3Handle, Server};
use quic_core::connection::{Event as QuicEvent, StreamEvent};
use quic_core::stream::{Dir, StreamId};

/// A request line is short; more than this without a line end is refused.
const MAX_REQUEST_LINE: usize = 8 * 1024;

/// The path of `GET /path` (HTTP/0.9 has nothing else), if the bytes hold a
/// complete request line.
pub fn parse_request_line(buf: &[u8]) -> Option<&str> {
    let end = buf.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(buf.get(..end)?).ok()?.trim_end_matches('\r');
    let path = line.strip_prefix("GET ")?.split_whitespace().next()?;
    path.starts_with('/').then_some(path)
}

/// Server side: request lines being read, per stream.
#[derive(Debug, Default)]
pub struct HqRequests {
    partial: HashMap<(H3Handle, StreamId), Vec<u8>>,
}

impl HqRequests {
    /// Handles a QUIC event of a raw connection; returns the streams whose
    /// request line is complete, with their path.
    pub fn on_event(&mut self, server: &mut Server, h: H3Handle, ev: &QuicEvent) -> Vec<(StreamId, String)> {
        let mut ready = Vec::new();
        let mut readable = Vec::new();
        match ev {
            QuicEvent::Stream(StreamEvent::Opened(Dir::Bi)) => {
                while let Some(id) = server.driver().endpoint.connection(h.0).and_then(|c| c.accept_stream(Dir::Bi)) {
                    self.partial.insert((h, id), Vec::new());
                    readable.push(id);
                }
            }
            QuicEvent::Stream(StreamEvent::Readable(id)) => readable.push(*id),
            QuicEvent::Stream(StreamEvent::Reset { id, .. }) => {
                self.partial.remove(&(h, *id));
            }
            _ => {}
        }
        for id in readable {
            let Some(buf) = self.partial.get_mut(&(h, id)) else { continue };
            let Some(conn) = server.driver().endpoint.connection(h.0) else { continue };
            let mut fin = false;
            while let Ok(chunk) = conn.read_chunk(id, 4096) {
                buf.extend_from_slice(&chunk.data);
                fin |= chunk.fin;
                if chunk.data.is_empty() || buf.len() > MAX_REQUEST_LINE {
                    break;
                }
            }
            let path = parse_request_line(buf).map(str::to_string);
            match path {
                Some(p) => {
                    self.partial.remove(&(h, id));
                    ready.push((id, p));
                }
                None if fin || buf.len() > MAX_REQUEST_LINE => {
                    // Not an HTTP/0.9 request: end the stream empty.
                    self.partial.remove(&(h, id));
                    let _ = server.send_raw(h, id, Bytes::new(), true);
                }
                None => {}
            }
        }
        ready
    }

    pub fn forget(&mut self, h: H3Handle) {
        self.partial.retain(|(x, _), _| *x != h);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_request_line;

    #[test]
    fn request_lines() {
        assert_eq!(parse_request_line(b"GET /index.html\r\n"), Some("/index.html"));
        assert_eq!(parse_request_line(b"GET /a\n"), Some("/a"));
        assert_eq!(parse_request_line(b"GET /a"), None, "no line end yet");
        assert_eq!(parse_request_line(b"POST /a\r\n"), None);
        assert_eq!(parse_request_line(b"GET a\r\n"), None);
        assert_eq!(parse_request_line(b"\xff\xfe\n"), None);
    }
}
