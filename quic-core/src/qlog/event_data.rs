//! Custom event data: the `data` object of events written through
//! [`QlogWriter::custom_event`](super::QlogWriter::custom_event).

use core::borrow::Borrow;
use core::fmt::{self};

use super::frames::*;
use super::json::*;
use super::*;
use crate::frame::Frame;

/// The `data` object of an event written with [`QlogWriter::custom_event`]:
/// for events this module has no typed helper for (other QUIC events,
/// HTTP/3 events). Every method appends one member.
pub struct EventData<'w> {
    pub(super) json: &'w mut Json,
    pub(super) ack_delay_exponent: u8,
}

impl fmt::Debug for EventData<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventData").finish_non_exhaustive()
    }
}

impl EventData<'_> {
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.json.f_str(key, value);
        self
    }

    pub fn u64(&mut self, key: &str, value: u64) -> &mut Self {
        self.json.f_u64(key, value);
        self
    }

    pub fn f64(&mut self, key: &str, value: f64) -> &mut Self {
        self.json.f_f64(key, value);
        self
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.json.f_bool(key, value);
        self
    }

    /// A qlog hexstring.
    pub fn hex(&mut self, key: &str, value: &[u8]) -> &mut Self {
        self.json.f_hex(key, value);
        self
    }

    pub fn u64_array(&mut self, key: &str, values: &[u64]) -> &mut Self {
        self.json.begin_array_field(key);
        for &v in values {
            self.json.u64(v);
        }
        self.json.end_array();
        self
    }

    /// A nested object filled by `f`.
    pub fn object(&mut self, key: &str, f: impl FnOnce(&mut EventData<'_>)) -> &mut Self {
        self.json.begin_object_field(key);
        f(&mut EventData { json: self.json, ack_delay_exponent: self.ack_delay_exponent });
        self.json.end_object();
        self
    }

    /// An array of QUIC frames in qlog form. ACK delays are scaled with the
    /// local ack_delay_exponent (right for frames this endpoint sent); for
    /// received frames call [`EventData::set_ack_delay_exponent`] first.
    pub fn frames<'f, I>(&mut self, key: &str, frames: I) -> &mut Self
    where
        I: IntoIterator,
        I::Item: Borrow<Frame<'f>>,
    {
        write_frames(self.json, key, frames, self.ack_delay_exponent);
        self
    }
}

impl EventData<'_> {
    /// Uses `exponent` for ACK frames written by [`EventData::frames`]
    /// (e.g. [`QlogWriter::ack_delay_exponents`]`().1` for received ones).
    pub fn set_ack_delay_exponent(&mut self, exponent: u8) -> &mut Self {
        self.ack_delay_exponent = exponent.min(MAX_ACK_DELAY_EXPONENT);
        self
    }
}
