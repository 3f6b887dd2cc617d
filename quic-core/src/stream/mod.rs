//! Stream send/receive buffers and flow control (RFC 9000 §2–§4).
//!
//! Sans-I/O building blocks a connection composes:
//! - [`id`]: stream IDs and their type bits (§2.1);
//! - [`recv`]: the receiving part of a stream, reassembly and final size (§3.2, §4.5);
//! - [`send`]: the sending part, retransmission bookkeeping (§3.1);
//! - [`flow`]: data flow control for streams and the connection (§4.1, §4.2);
//! - [`limits`]: stream count limits and implicit opening (§4.6, §3.2).

pub mod flow;
pub mod id;
pub mod limits;
pub mod recv;
pub mod send;

pub use flow::{RecvWindow, SendCredit};
pub use id::{Dir, Initiator, StreamId, MAX_STREAMS};
pub use limits::{NewStreams, StreamLimits, StreamPart};
pub use recv::{ReadChunk, ReadOutcome, RecvState, RecvStream, StreamReadError};
pub use send::{SendChunk, SendState, SendStream, WriteError};
