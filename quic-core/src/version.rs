//! QUIC versions: v1 (RFC 9000), v2 (RFC 9369), and the reserved versions
//! used to force version negotiation (RFC 9000 §15).

use core::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(pub u32);

impl Version {
    pub const V1: Version = Version(0x0000_0001);
    /// RFC 9369 §3.1.
    pub const V2: Version = Version(0x6b33_43cf);
    /// RFC 9000 §17.2.1: version 0 marks a Version Negotiation packet.
    pub const NEGOTIATION: Version = Version(0);

    /// The versions this implementation speaks, most preferred first.
    pub const SUPPORTED: &'static [Version] = &[Version::V1, Version::V2];

    pub fn is_supported(self) -> bool {
        Self::SUPPORTED.contains(&self)
    }

    /// RFC 9000 §15: versions of the form 0x?a?a?a?a are reserved to exercise
    /// version negotiation; a server never speaks them.
    pub fn is_reserved(self) -> bool {
        self.0 & 0x0f0f_0f0f == 0x0a0a_0a0a
    }

    /// A reserved (grease) version derived from `seed`.
    pub fn grease(seed: u32) -> Version {
        Version((seed & 0xf0f0_f0f0) | 0x0a0a_0a0a)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Version::V1 => f.write_str("v1"),
            Version::V2 => f.write_str("v2"),
            Version(v) => write!(f, "{v:#010x}"),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
