//! Errors from creating a shared region and the corruption kinds `validate`
//! reports.

use core::fmt;

/// Why a region could not be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShmError {
    /// The size cannot hold the header, the index and `min_entries` slots.
    TooSmall { size: usize, min: usize, min_entries: usize },
    /// Larger than the layout addresses (slot indices are `u32`).
    TooLarge { size: usize, max: usize },
    /// Slot size outside `[min, max]` or not a multiple of 8.
    BadSlotSize { slot_size: usize, min: usize, max: usize },
    /// `mmap(MAP_SHARED | MAP_ANONYMOUS)` failed with this errno.
    Mmap(i32),
    /// Initialising the process-shared robust mutex failed with this code.
    MutexInit(i32),
    /// The system random generator failed (hash seeds, ticket keys).
    Random,
}

impl fmt::Display for ShmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShmError::TooSmall { size, min, min_entries } => {
                write!(f, "shared session cache of {size} bytes is too small: at least {min} bytes are needed for the header and {min_entries} entries")
            }
            ShmError::TooLarge { size, max } => {
                write!(f, "shared session cache of {size} bytes is too large (at most {max} bytes)")
            }
            ShmError::BadSlotSize { slot_size, min, max } => {
                write!(f, "slot size {slot_size} must be a multiple of 8 in [{min}, {max}]")
            }
            ShmError::Mmap(e) => write!(f, "mmap of the shared session cache failed (errno {e})"),
            ShmError::MutexInit(e) => write!(f, "initialising the shared robust mutex failed (error {e})"),
            ShmError::Random => f.write_str("the system random number generator failed"),
        }
    }
}

impl std::error::Error for ShmError {}

/// What `ShmRegion::validate` found wrong with the shared header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// The magic number is not quicpro's: not our region, or overwritten.
    BadMagic,
    /// A layout version this code does not understand.
    BadVersion(u32),
    /// Region size, slot size/count or offsets differ from what this
    /// process mapped.
    BadGeometry,
    /// The fields look plausible but their checksum does not match.
    BadChecksum,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::BadMagic => f.write_str("bad magic"),
            Corruption::BadVersion(v) => write!(f, "unknown layout version {v}"),
            Corruption::BadGeometry => f.write_str("geometry differs from the mapping"),
            Corruption::BadChecksum => f.write_str("header checksum mismatch"),
        }
    }
}

impl std::error::Error for Corruption {}
