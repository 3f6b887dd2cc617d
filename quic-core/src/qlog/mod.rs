//! qlog event logging, streamed as JSON Text Sequences.
//!
//! The connection emits typed [`QlogEvent`]s to a [`QlogSubscriber`]
//! (`subscriber`); it never formats anything itself. [`QlogWriter`] is the
//! subscriber that serialises them; its modules: `json` (the text
//! builder), `types` (the schema's types), `frames` (frames in qlog form),
//! `event_data` (custom events), `writer` (records to the sink).
//!
//! Implements the `QlogFileSeq` schema of draft-ietf-quic-qlog-main-schema-14
//! and the QUIC events of draft-ietf-quic-qlog-quic-events-13:
//!
//! - The file is a JSON-SEQ stream (RFC 7464): every record is an ASCII
//!   Record Separator (0x1E), one JSON object, and a line feed (main schema
//!   §11.2). The first record is the file header (`file_schema`,
//!   `serialization_format`, and one `trace` with `common_fields`,
//!   `vantage_point` and `event_schemas`, §5); each following record is one
//!   event with `time`, `name` and `data` (§7).
//! - This crate never reads a clock, so the trace uses a monotonic reference
//!   time with an unknown epoch (main schema §7.1): `time` is the number of
//!   milliseconds (f64, nanosecond resolution) since the [`Instant`] given to
//!   [`QlogWriter::new`]. A caller that knows the wall-clock time at that
//!   instant can record it in [`TraceInfo::wall_clock_time`].
//! - Event and field names are those of the quic-events draft; as that
//!   draft requires of implementations of a draft version, the event schema
//!   is identified as `urn:ietf:params:qlog:events:quic-13` (quic-events
//!   §2.1). Recovery events live in the `quic` namespace there
//!   (`quic:recovery_metrics_updated`, `quic:packet_lost`, ...).
//!
//! The writer owns a `Box<dyn Write + Send>` the caller opened (a file, a
//! buffer); quic-core never opens files. JSON is written by hand into a
//! buffer reused across events; each record reaches the sink in a single
//! `write_all`. A sink error never panics and never reaches the connection:
//! the first error is kept ([`QlogWriter::first_error`]), logging stops, and
//! every record not written from then on is counted
//! ([`QlogWriter::failed_writes`]).

/// RFC 7464 §2.1: every JSON text in a sequence starts with RS.
pub const RECORD_SEPARATOR: u8 = 0x1e;
/// Main schema §5: the JSON-SEQ (QlogFileSeq) file schema URI.
pub const FILE_SCHEMA: &str = "urn:ietf:params:qlog:file:sequential";
/// Main schema §11.2: the media type of qlog as JSON-SEQ.
pub const SERIALIZATION_FORMAT: &str = "application/qlog+json-seq";
/// quic-events §2.1: draft implementations append "-" and the draft number.
pub const QUIC_EVENT_SCHEMA: &str = "urn:ietf:params:qlog:events:quic-13";
/// RFC 9000 §18.2: ack_delay_exponent when the parameter is absent.
const DEFAULT_ACK_DELAY_EXPONENT: u8 = 3;
/// RFC 9000 §18.2: values above 20 are invalid.
const MAX_ACK_DELAY_EXPONENT: u8 = 20;

mod event_data;
mod frames;
mod json;
mod subscriber;
mod types;
mod writer;

#[cfg(test)]
mod tests;

pub use event_data::EventData;
pub use subscriber::{QlogEvent, QlogSubscriber};
pub use types::*;
pub use writer::QlogWriter;
