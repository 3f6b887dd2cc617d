//! RFC 9114 cases: critical streams, frames on the wrong stream, SETTINGS
//! rules, identifiers, frame encoding, malformed messages.

use super::wire::*;
use super::{Case, Expect, Phase, Step};

// RFC 9114 §8.1.
const H3_STREAM_CREATION_ERROR: u64 = 0x103;
const H3_CLOSED_CRITICAL_STREAM: u64 = 0x104;
const H3_FRAME_UNEXPECTED: u64 = 0x105;
const H3_FRAME_ERROR: u64 = 0x106;
const H3_ID_ERROR: u64 = 0x108;
const H3_SETTINGS_ERROR: u64 = 0x109;
const H3_MISSING_SETTINGS: u64 = 0x10a;
const H3_MESSAGE_ERROR: u64 = 0x10e;

/// Our control stream made by the case: type 0x00 followed by `frames`
/// (which must start with SETTINGS to be valid).
fn control(name: &'static str, section: &'static str, codes: &'static [u64], frames: Vec<u8>, fin: bool) -> Case {
    Case::new(name, section, Phase::H3Bare, Expect::Application(codes), move |_| vec![Step::Uni { data: cat(&[&[0x00], &frames]), fin }])
}

/// A request stream carrying `bytes` (then FIN), with our control stream open.
fn request(name: &'static str, section: &'static str, expect: Expect, bytes: Vec<u8>) -> Case {
    Case::new(name, section, Phase::H3, expect, move |_| vec![Step::Bidi { data: bytes.clone(), fin: true }])
}

fn unexpected() -> Expect {
    Expect::Application(&[H3_FRAME_UNEXPECTED])
}

/// A request whose header section is `lines`: malformed, so the server
/// answers with a stream error H3_MESSAGE_ERROR (RFC 9114 §4.1.2).
fn malformed(name: &'static str, section: &'static str, lines: Vec<Vec<u8>>) -> Case {
    request(name, section, Expect::StreamError(H3_MESSAGE_ERROR), headers(&lines))
}

fn get_plus(extra: Vec<u8>) -> Vec<Vec<u8>> {
    let mut l = get_lines();
    l.push(extra);
    l
}

pub fn cases() -> Vec<Case> {
    let settings_frame = settings(&[]);
    let mut v = vec![
        // §6.2.1 control streams.
        Case::new("a second control stream", "RFC 9114 §6.2.1", Phase::H3, Expect::Application(&[H3_STREAM_CREATION_ERROR]), |_| {
            vec![Step::Uni { data: control_stream(), fin: false }]
        }),
        control("control stream starting without SETTINGS", "RFC 9114 §6.2.1", &[H3_MISSING_SETTINGS], h3_frame(0x07, &vi(0)), false),
        control("control stream closed", "RFC 9114 §6.2.1", &[H3_CLOSED_CRITICAL_STREAM], settings_frame.clone(), true),
        control("SETTINGS twice", "RFC 9114 §7.2.4", &[H3_FRAME_UNEXPECTED], cat(&[&settings_frame, &settings_frame]), false),
        control("duplicate setting identifier", "RFC 9114 §7.2.4", &[H3_SETTINGS_ERROR], settings(&[(0x06, 100), (0x06, 200)]), false),
        control("DATA on the control stream", "RFC 9114 §7.2.1", &[H3_FRAME_UNEXPECTED], cat(&[&settings_frame, &data(b"x")]), false),
        control("HEADERS on the control stream", "RFC 9114 §7.2.2", &[H3_FRAME_UNEXPECTED], cat(&[&settings_frame, &get_request()]), false),
        control(
            "GOAWAY identifier increasing",
            "RFC 9114 §5.2",
            &[H3_ID_ERROR],
            cat(&[&settings_frame, &h3_frame(0x07, &vi(8)), &h3_frame(0x07, &vi(12))]),
            false,
        ),
        control("MAX_PUSH_ID decreasing", "RFC 9114 §7.2.7", &[H3_ID_ERROR], cat(&[&settings_frame, &h3_frame(0x0d, &vi(10)), &h3_frame(0x0d, &vi(5))]), false),
        control("CANCEL_PUSH for a push never promised", "RFC 9114 §7.2.3", &[H3_ID_ERROR], cat(&[&settings_frame, &h3_frame(0x03, &vi(0))]), false),
        control("SETTINGS with a truncated value", "RFC 9114 §7.1", &[H3_FRAME_ERROR], h3_frame(0x04, &[0x06, 0x40]), false),
        control("GOAWAY with bytes after its identifier", "RFC 9114 §7.1", &[H3_FRAME_ERROR], cat(&[&settings_frame, &h3_frame(0x07, &[0x00, 0x00])]), false),
        // §6.2.2: clients do not push.
        Case::new("a push stream from the client", "RFC 9114 §6.2.2", Phase::H3, Expect::Application(&[H3_STREAM_CREATION_ERROR]), |_| {
            vec![Step::Uni { data: vec![0x01, 0x00], fin: false }]
        }),
        // Frames on request streams that belong elsewhere.
        request("SETTINGS on a request stream", "RFC 9114 §7.2.4", unexpected(), cat(&[&get_request(), &settings(&[])])),
        request("GOAWAY on a request stream", "RFC 9114 §7.2.6", unexpected(), cat(&[&get_request(), &h3_frame(0x07, &vi(0))])),
        request("MAX_PUSH_ID on a request stream", "RFC 9114 §7.2.7", unexpected(), cat(&[&get_request(), &h3_frame(0x0d, &vi(0))])),
        request("CANCEL_PUSH on a request stream", "RFC 9114 §7.2.3", unexpected(), cat(&[&get_request(), &h3_frame(0x03, &vi(0))])),
        request(
            "PUSH_PROMISE from a client",
            "RFC 9114 §7.2.5",
            unexpected(),
            cat(&[&get_request(), &h3_frame(0x05, &cat(&[&vi(0), &field_section(&get_lines())]))]),
        ),
        request("DATA before HEADERS", "RFC 9114 §4.1", unexpected(), cat(&[&data(b"x"), &get_request()])),
        request(
            "HEADERS after the trailers",
            "RFC 9114 §4.1",
            unexpected(),
            cat(&[&get_request(), &headers(&[literal("x-t", "1")]), &headers(&[literal("x-t", "2")])]),
        ),
        request("DATA after the trailers", "RFC 9114 §4.1", unexpected(), cat(&[&get_request(), &headers(&[literal("x-t", "1")]), &data(b"x")])),
        request("frame truncated by the end of the stream", "RFC 9114 §7.1", Expect::Application(&[H3_FRAME_ERROR]), cat(&[&[0x01], &vi(100), b"abc"])),
        // §4.1.2, §4.2, §4.3: malformed requests.
        malformed("request without :method", "RFC 9114 §4.3.1", get_lines().into_iter().skip(1).collect()),
        malformed("uppercase field name", "RFC 9114 §4.2", get_plus(literal("X-Upper", "1"))),
        malformed("connection-specific field", "RFC 9114 §4.2", get_plus(literal("connection", "keep-alive"))),
        malformed("TE other than trailers", "RFC 9114 §4.2", get_plus(literal("te", "gzip"))),
        malformed("pseudo-header after a regular field", "RFC 9114 §4.3", {
            let mut l = vec![literal("user-agent", "x")];
            l.extend(get_lines());
            l
        }),
        malformed("unknown pseudo-header", "RFC 9114 §4.3", get_plus(literal(":foo", "bar"))),
        malformed("response pseudo-header in a request", "RFC 9114 §4.3", get_plus(static_indexed(25))),
        malformed("duplicate :path", "RFC 9114 §4.3.1", get_plus(static_indexed(1))),
        malformed(
            "empty :path",
            "RFC 9114 §4.3.1",
            vec![static_indexed(17), static_indexed(23), vec![0x51, 0x00], cat(&[&[0x50], &prefix_int(0x00, 7, 9), b"localhost"])],
        ),
        malformed("https request without :authority or Host", "RFC 9114 §4.3.1", vec![static_indexed(17), static_indexed(23), static_indexed(1)]),
        malformed(
            "request without :scheme",
            "RFC 9114 §4.3.1",
            vec![static_indexed(17), static_indexed(1), cat(&[&[0x50], &prefix_int(0x00, 7, 9), b"localhost"])],
        ),
        malformed("GET without :path", "RFC 9114 §4.3.1", vec![static_indexed(17), static_indexed(23), cat(&[&[0x50], &prefix_int(0x00, 7, 9), b"localhost"])]),
        malformed("field value with CR LF", "RFC 9114 §4.2", get_plus(literal("x-split", "a\r\nb"))),
        malformed("Host different from :authority", "RFC 9114 §4.3.1", get_plus(literal("host", "example.org"))),
        malformed(
            "CONNECT with :path and :scheme",
            "RFC 9114 §4.4",
            vec![static_indexed(15), static_indexed(23), static_indexed(1), cat(&[&[0x50], &prefix_int(0x00, 7, 9), b"localhost"])],
        ),
        request("content-length not matching the body", "RFC 9114 §4.1.2", Expect::StreamError(H3_MESSAGE_ERROR), {
            // POST (static 20) with content-length: 10 (name from static 4) and a 5-byte body.
            let lines = vec![
                static_indexed(20),
                static_indexed(23),
                static_indexed(1),
                cat(&[&[0x50], &prefix_int(0x00, 7, 9), b"localhost"]),
                cat(&[&[0x54], &[0x02], b"10"]),
            ];
            cat(&[&headers(&lines), &data(b"12345")])
        }),
        request("pseudo-header in trailers", "RFC 9114 §4.3", Expect::StreamError(H3_MESSAGE_ERROR), cat(&[&get_request(), &headers(&[static_indexed(1)])])),
    ];
    // RFC 9218 §7.1: PRIORITY_UPDATE, on the wrong stream or naming what
    // it may not.
    let priority_update = |ty: u64, element: u64| h3_frame(ty, &cat(&[&vi(element), b"u=1"]));
    v.push(request("PRIORITY_UPDATE on a request stream", "RFC 9218 §7.1", unexpected(), cat(&[&get_request(), &priority_update(0xf0700, 0)])));
    v.push(control("PRIORITY_UPDATE for a push never promised", "RFC 9218 §7.1", &[H3_ID_ERROR], cat(&[&settings_frame, &priority_update(0xf0701, 0)]), false));
    v.push(control(
        "PRIORITY_UPDATE naming a unidirectional stream",
        "RFC 9218 §7.1",
        &[H3_ID_ERROR],
        cat(&[&settings_frame, &priority_update(0xf0700, 2)]),
        false,
    ));
    // §7.2.4.1: HTTP/2 setting identifiers.
    for (id, name) in [(0x02, "reserved setting 0x02"), (0x03, "reserved setting 0x03"), (0x04, "reserved setting 0x04"), (0x05, "reserved setting 0x05")] {
        v.push(control(name, "RFC 9114 §7.2.4.1", &[H3_SETTINGS_ERROR], settings(&[(id, 1)]), false));
    }
    // §7.2.8: HTTP/2 frame types, on the control stream and on a request stream.
    for (ty, name, req) in [
        (0x02, "HTTP/2 PRIORITY frame on the control stream", "HTTP/2 PRIORITY frame on a request stream"),
        (0x06, "HTTP/2 PING frame on the control stream", "HTTP/2 PING frame on a request stream"),
        (0x08, "HTTP/2 WINDOW_UPDATE frame on the control stream", "HTTP/2 WINDOW_UPDATE frame on a request stream"),
        (0x09, "HTTP/2 CONTINUATION frame on the control stream", "HTTP/2 CONTINUATION frame on a request stream"),
    ] {
        v.push(control(name, "RFC 9114 §7.2.8", &[H3_FRAME_UNEXPECTED], cat(&[&settings_frame, &h3_frame(ty, &[0; 8])]), false));
        v.push(request(req, "RFC 9114 §7.2.8", unexpected(), cat(&[&get_request(), &h3_frame(ty, &[0; 8])])));
    }
    v
}
