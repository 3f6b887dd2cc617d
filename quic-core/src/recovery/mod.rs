//! Loss detection and congestion control (RFC 9002).
