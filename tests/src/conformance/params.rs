//! Transport parameter cases (RFC 9000 §7.3, §7.4, §18.2; RFC 9368 §4):
//! the client's own first flight carries parameters a server must refuse,
//! and the refusal must reach the client in a packet it can read (an
//! Initial, RFC 9000 §10.2.3).

use super::wire::*;
use super::{Case, Expect, ParamsRewrite, Phase};

const TRANSPORT_PARAMETER_ERROR: u64 = 0x08;
const PROTOCOL_VIOLATION: u64 = 0x0a;
/// RFC 9368 §10.2.
const VERSION_NEGOTIATION_ERROR: u64 = 0x11;

fn case(name: &'static str, section: &'static str, codes: &'static [u64], rewrite: ParamsRewrite) -> Case {
    let mut c = Case::new(name, section, Phase::Start, Expect::Transport(codes), |_| Vec::new());
    c.params = Some(rewrite);
    c
}

const TPE: &[u64] = &[TRANSPORT_PARAMETER_ERROR];

pub fn cases() -> Vec<Case> {
    vec![
        // §18.2: server-only parameters from a client.
        case("client sends original_destination_connection_id", "RFC 9000 §18.2", TPE, |e| tp_with(&e, 0x00, &[1; 8])),
        case("client sends stateless_reset_token", "RFC 9000 §18.2", TPE, |e| tp_with(&e, 0x02, &[2; 16])),
        case("client sends preferred_address", "RFC 9000 §18.2", TPE, |e| {
            let pa = cat(&[&[127, 0, 0, 1], &[0x11, 0x51], &[0; 16], &[0x11, 0x51], &[8], &[3; 8], &[4; 16]]);
            tp_with(&e, 0x0d, &pa)
        }),
        case("client sends retry_source_connection_id", "RFC 9000 §18.2", TPE, |e| tp_with(&e, 0x10, &[5; 8])),
        // §18.2: values out of range.
        case("max_udp_payload_size below 1200", "RFC 9000 §18.2", TPE, |e| tp_with(&e, 0x03, &vi(1199))),
        case("ack_delay_exponent above 20", "RFC 9000 §18.2", TPE, |e| tp_with(&e, 0x0a, &vi(21))),
        case("max_ack_delay of 2^14 or more", "RFC 9000 §18.2", TPE, |e| tp_with(&e, 0x0b, &vi(1 << 14))),
        case("active_connection_id_limit below 2", "RFC 9000 §18.2", TPE, |e| tp_with(&e, 0x0e, &vi(1))),
        case("initial_max_streams_bidi above 2^60", "RFC 9000 §4.6", TPE, |e| tp_with(&e, 0x08, &vi((1 << 60) + 1))),
        case("initial_max_streams_uni above 2^60", "RFC 9000 §4.6", TPE, |e| tp_with(&e, 0x09, &vi((1 << 60) + 1))),
        // §7.4, §18: encoding.
        case("a parameter sent twice", "RFC 9000 §7.4", TPE, |e| cat(&[&e, &tp(0x01, &vi(30_000))])),
        case("integer parameter longer than its varint", "RFC 9000 §18", TPE, |e| tp_with(&e, 0x01, &[0x05, 0x00])),
        case("disable_active_migration with a value", "RFC 9000 §18.2", TPE, |e| tp_with(&e, 0x0c, &[1])),
        // §7.3: connection ID authentication.
        case("initial_source_connection_id missing", "RFC 9000 §7.3", TPE, |e| tp_without(&e, 0x0f)),
        case("initial_source_connection_id not the Initial's SCID", "RFC 9000 §7.3", &[TRANSPORT_PARAMETER_ERROR, PROTOCOL_VIOLATION], |e| {
            tp_with(&e, 0x0f, &[0xee; 8])
        }),
        // RFC 9368 §3, §4: version_information.
        case("version_information choosing another version", "RFC 9368 §4", &[VERSION_NEGOTIATION_ERROR], |e| {
            tp_with(&e, 0x11, &[0x6b, 0x33, 0x43, 0xcf, 0x6b, 0x33, 0x43, 0xcf, 0x00, 0x00, 0x00, 0x01])
        }),
        case("version_information not a multiple of 4 bytes", "RFC 9368 §3", TPE, |e| tp_with(&e, 0x11, &[0x00, 0x00, 0x00, 0x01, 0x00, 0x00])),
        case("version_information choosing version 0", "RFC 9368 §3", TPE, |e| tp_with(&e, 0x11, &[0; 4])),
    ]
}
