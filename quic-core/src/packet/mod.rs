//! Packets (RFC 9000 §17).
