//! Packet protection (RFC 9001 §5, RFC 9369 §3).
