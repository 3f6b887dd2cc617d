//! Properties of the HTTP/3 frame codec (RFC 9114 §7), SETTINGS, stream
//! headers and message validation (RFC 9114 §4).
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use quic_core::codec::Writer;

use h3_core::error::{H3Error, H3ErrorCode};
use h3_core::frame::{Frame, FrameDecoder, FrameEvent, FrameLimits, FrameType, StreamKind};
use h3_core::message::{parse_request, parse_response, ContentLengthTracker, RequestOptions};
use h3_core::settings::Settings;
use h3_core::stream_type::{StreamHeaderReader, StreamType};

const VARINT_MAX: u64 = (1 << 62) - 1;

/// An owned frame, so strategies can produce it.
#[derive(Debug, Clone)]
enum OwnedFrame {
    Data(Vec<u8>),
    Headers(Vec<u8>),
    PushPromise(u64, Vec<u8>),
    Settings(Settings),
    CancelPush(u64),
    Goaway(u64),
    MaxPushId(u64),
    Extension(u64, Vec<u8>),
}

impl OwnedFrame {
    fn as_frame(&self) -> Frame<'_> {
        match self {
            OwnedFrame::Data(d) => Frame::Data(d),
            OwnedFrame::Headers(h) => Frame::Headers(h),
            OwnedFrame::PushPromise(id, fs) => Frame::PushPromise { push_id: *id, field_section: fs },
            OwnedFrame::Settings(s) => Frame::Settings(*s),
            OwnedFrame::CancelPush(id) => Frame::CancelPush(*id),
            OwnedFrame::Goaway(id) => Frame::Goaway(*id),
            OwnedFrame::MaxPushId(id) => Frame::MaxPushId(*id),
            OwnedFrame::Extension(t, p) => Frame::Extension { frame_type: *t, payload: p },
        }
    }

    /// The events the decoder should report for this frame, with DATA pieces
    /// merged.
    fn expected(&self, out: &mut Vec<Ev>) {
        match self {
            OwnedFrame::Data(d) => {
                out.push(Ev::DataHeader(d.len() as u64));
                if !d.is_empty() {
                    out.push(Ev::Data(d.clone()));
                }
            }
            OwnedFrame::Headers(h) => out.push(Ev::Headers(h.clone())),
            OwnedFrame::PushPromise(id, fs) => out.push(Ev::PushPromise(*id, fs.clone())),
            OwnedFrame::Settings(s) => out.push(Ev::Settings(*s)),
            OwnedFrame::CancelPush(id) => out.push(Ev::CancelPush(*id)),
            OwnedFrame::Goaway(id) => out.push(Ev::Goaway(*id)),
            OwnedFrame::MaxPushId(id) => out.push(Ev::MaxPushId(*id)),
            OwnedFrame::Extension(t, p) => out.push(Ev::Unknown(*t, p.len() as u64)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    DataHeader(u64),
    Data(Vec<u8>),
    Headers(Vec<u8>),
    PushPromise(u64, Vec<u8>),
    Settings(Settings),
    CancelPush(u64),
    Goaway(u64),
    MaxPushId(u64),
    PriorityUpdate(bool, u64, Vec<u8>),
    Unknown(u64, u64),
}

impl From<FrameEvent<'_>> for Ev {
    fn from(e: FrameEvent<'_>) -> Self {
        match e {
            FrameEvent::DataHeader { len } => Ev::DataHeader(len),
            FrameEvent::DataChunk(d) => Ev::Data(d.to_vec()),
            FrameEvent::Headers(h) => Ev::Headers(h.to_vec()),
            FrameEvent::PushPromise { push_id, field_section } => Ev::PushPromise(push_id, field_section.to_vec()),
            FrameEvent::Settings(s) => Ev::Settings(s),
            FrameEvent::CancelPush(id) => Ev::CancelPush(id),
            FrameEvent::Goaway(id) => Ev::Goaway(id),
            FrameEvent::MaxPushId(id) => Ev::MaxPushId(id),
            FrameEvent::PriorityUpdate { push, element, value } => Ev::PriorityUpdate(push, element, value.to_vec()),
            FrameEvent::Unknown { frame_type, len } => Ev::Unknown(frame_type, len),
        }
    }
}

/// Decodes `bytes` split at the given chunk sizes (cycled). Returns the
/// events (DATA pieces merged) and the first error.
fn decode_split(kind: StreamKind, bytes: &[u8], sizes: &[usize]) -> (Vec<Ev>, Option<H3Error>) {
    let mut dec = FrameDecoder::new(kind, FrameLimits::default());
    let mut out: Vec<Ev> = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(1).clamp(1, rest.len());
        i += 1;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let mut input = chunk;
        loop {
            match dec.decode(&mut input) {
                Ok(Some(ev)) => match (out.last_mut(), Ev::from(ev)) {
                    (Some(Ev::Data(acc)), Ev::Data(more)) => acc.extend_from_slice(&more),
                    (_, ev) => out.push(ev),
                },
                Ok(None) => {
                    assert!(input.is_empty(), "Ok(None) only with the input used up");
                    break;
                }
                Err(e) => {
                    // The error sticks.
                    assert_eq!(dec.decode(&mut &b"\x00"[..]), Err(e));
                    assert_eq!(dec.finish(), Err(e));
                    return (out, Some(e));
                }
            }
        }
    }
    if kind != StreamKind::Control {
        if let Err(e) = dec.finish() {
            return (out, Some(e));
        }
    }
    (out, None)
}

fn encode(frames: &[OwnedFrame]) -> Vec<u8> {
    let total: usize = frames.iter().map(|f| f.as_frame().encoded_len()).sum();
    let mut buf = vec![0u8; total];
    let mut w = Writer::new(&mut buf);
    for f in frames {
        f.as_frame().encode(&mut w).unwrap();
    }
    assert_eq!(w.len(), total);
    buf
}

/// Mostly small, sometimes anywhere in the varint range.
fn id_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![0..64u64, 0..(1u64 << 14), 0..(1u64 << 30), 0..=VARINT_MAX]
}

fn bytes_strategy(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

/// Reserved or unknown frame types.
fn extension_type() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>().prop_map(h3_core::error::grease), (0x0a..=VARINT_MAX).prop_filter("not a defined type", |t| !FrameType(*t).is_known()),]
}

fn settings_strategy() -> impl Strategy<Value = Settings> {
    (id_strategy(), prop::option::of(id_strategy()), id_strategy(), any::<bool>(), any::<bool>()).prop_map(|(cap, mfs, blocked, connect, dgram)| Settings {
        qpack_max_table_capacity: cap,
        max_field_section_size: mfs,
        qpack_blocked_streams: blocked,
        enable_connect_protocol: connect,
        h3_datagram: dgram,
    })
}

fn message_frame(push_promise: bool) -> BoxedStrategy<OwnedFrame> {
    let base = prop_oneof![
        bytes_strategy(2000).prop_map(OwnedFrame::Data),
        bytes_strategy(300).prop_map(OwnedFrame::Headers),
        (extension_type(), bytes_strategy(100)).prop_map(|(t, p)| OwnedFrame::Extension(t, p)),
    ];
    if push_promise {
        prop_oneof![
            3 => base,
            1 => (id_strategy(), bytes_strategy(300))
                .prop_map(|(id, fs)| OwnedFrame::PushPromise(id, fs)),
        ]
        .boxed()
    } else {
        base.boxed()
    }
}

fn control_frame() -> impl Strategy<Value = OwnedFrame> {
    prop_oneof![
        id_strategy().prop_map(OwnedFrame::CancelPush),
        id_strategy().prop_map(OwnedFrame::Goaway),
        id_strategy().prop_map(OwnedFrame::MaxPushId),
        (extension_type(), bytes_strategy(100)).prop_map(|(t, p)| OwnedFrame::Extension(t, p)),
    ]
}

/// A stream kind and a valid frame sequence for it.
fn stream_strategy() -> impl Strategy<Value = (StreamKind, Vec<OwnedFrame>)> {
    prop_oneof![
        prop::collection::vec(message_frame(true), 0..12).prop_map(|f| (StreamKind::Request, f)),
        prop::collection::vec(message_frame(false), 0..12).prop_map(|f| (StreamKind::Push, f)),
        (settings_strategy(), prop::collection::vec(control_frame(), 0..12)).prop_map(|(s, mut f)| {
            f.insert(0, OwnedFrame::Settings(s));
            (StreamKind::Control, f)
        }),
    ]
}

fn sizes_strategy() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1..4usize, 1..64usize, 1..5000usize], 1..20)
}

fn kind_strategy() -> impl Strategy<Value = StreamKind> {
    prop_oneof![Just(StreamKind::Control), Just(StreamKind::Request), Just(StreamKind::Push)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Encoding a frame sequence and decoding it in random chunks gives back
    /// exactly the frames.
    #[test]
    fn frames_round_trip_through_any_chunking(
        (kind, frames) in stream_strategy(),
        sizes in sizes_strategy(),
    ) {
        let bytes = encode(&frames);
        let mut expected = Vec::new();
        for f in &frames {
            f.expected(&mut expected);
        }
        let (events, err) = decode_split(kind, &bytes, &sizes);
        prop_assert_eq!(err, None);
        prop_assert_eq!(&events, &expected);
        // One byte at a time agrees.
        let (events, err) = decode_split(kind, &bytes, &[1]);
        prop_assert_eq!(err, None);
        prop_assert_eq!(events, expected);
    }

    /// Random bytes never panic the decoder, and chunking never changes what
    /// it reports.
    #[test]
    fn random_bytes_decode_the_same_in_any_chunking(
        kind in kind_strategy(),
        bytes in bytes_strategy(600),
        sizes in sizes_strategy(),
    ) {
        let whole = decode_split(kind, &bytes, &[usize::MAX]);
        let split = decode_split(kind, &bytes, &sizes);
        prop_assert_eq!(&whole, &split);
        let single = decode_split(kind, &bytes, &[1]);
        prop_assert_eq!(&whole, &single);
        if let Some(e) = whole.1 {
            // Only the codes the frame layer can produce.
            prop_assert!(
                [
                    H3ErrorCode::H3_FRAME_ERROR,
                    H3ErrorCode::H3_FRAME_UNEXPECTED,
                    H3ErrorCode::H3_SETTINGS_ERROR,
                    H3ErrorCode::H3_MISSING_SETTINGS,
                    H3ErrorCode::H3_EXCESSIVE_LOAD,
                    H3ErrorCode::H3_MESSAGE_ERROR,
                    H3ErrorCode::H3_CLOSED_CRITICAL_STREAM,
                ]
                .contains(&e.code),
                "{:?}", e
            );
        }
    }

    /// Frames with valid prefixes followed by random bytes: still no panic,
    /// and the valid prefix's events come out first.
    #[test]
    fn valid_prefix_then_garbage(
        (kind, frames) in stream_strategy(),
        garbage in bytes_strategy(64),
        sizes in sizes_strategy(),
    ) {
        let mut bytes = encode(&frames);
        let mut expected = Vec::new();
        for f in &frames {
            f.expected(&mut expected);
        }
        bytes.extend_from_slice(&garbage);
        let (events, _) = decode_split(kind, &bytes, &sizes);
        prop_assert!(events.len() >= expected.len());
        prop_assert_eq!(&events[..expected.len()], &expected[..]);
    }

    /// SETTINGS: decode never panics, fails only with the two allowed codes,
    /// and what decodes re-encodes (with or without grease) to equal
    /// settings.
    #[test]
    fn settings_decode_random(payload in bytes_strategy(200), seed in any::<u64>()) {
        match Settings::decode(&payload) {
            Ok(s) => {
                for grease in [None, Some(seed)] {
                    let len = match grease {
                        Some(g) => s.encoded_len_with_grease(g),
                        None => s.encoded_len(),
                    };
                    let mut buf = vec![0u8; len];
                    let mut w = Writer::new(&mut buf);
                    match grease {
                        Some(g) => s.encode_with_grease(g, &mut w).unwrap(),
                        None => s.encode(&mut w).unwrap(),
                    }
                    let (events, err) = decode_split(StreamKind::Control, &buf, &[1]);
                    prop_assert_eq!(err, None);
                    prop_assert_eq!(events, vec![Ev::Settings(s)]);
                }
            }
            Err(e) => prop_assert!(
                e.code == H3ErrorCode::H3_FRAME_ERROR || e.code == H3ErrorCode::H3_SETTINGS_ERROR
            ),
        }
    }

    /// Unidirectional stream headers read the same in any chunking.
    #[test]
    fn stream_header_any_chunking(bytes in bytes_strategy(20), sizes in sizes_strategy()) {
        let read = |sizes: &[usize]| {
            let mut r = StreamHeaderReader::new();
            let mut rest = bytes.as_slice();
            let mut i = 0;
            while !rest.is_empty() {
                let n = sizes[i % sizes.len()].clamp(1, rest.len());
                i += 1;
                let (mut chunk, tail) = rest.split_at(n);
                rest = tail;
                if let Some(h) = r.read(&mut chunk) {
                    let consumed = bytes.len() - rest.len() - chunk.len();
                    return Some((h, consumed));
                }
            }
            None
        };
        let whole = read(&[usize::MAX]);
        prop_assert_eq!(whole, read(&sizes));
        if let Some((h, _)) = whole {
            prop_assert_eq!(h.push_id.is_some(), h.stream_type == StreamType::Push);
        }
    }
}

// Message validation.

#[derive(Debug, Clone)]
struct ValidRequest {
    fields: Vec<(String, String)>,
    method: String,
    path: String,
    authority: String,
    scheme: String,
    regular: usize,
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,10}"
}

fn field_value() -> impl Strategy<Value = String> {
    // No leading or trailing whitespace; inner spaces allowed.
    "([!-~]([ -~]{0,18}[!-~])?)?"
}

fn field_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9!#$%&'*+.^_`|~-]{0,15}".prop_filter("not a special field", |n| {
        !["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "host", "content-length"].contains(&n.as_str())
    })
}

fn valid_request() -> impl Strategy<Value = ValidRequest> {
    (
        prop_oneof![Just("GET".to_string()), Just("POST".to_string()), Just("OPTIONS".to_string()), token().prop_filter("not CONNECT", |m| m != "CONNECT"),],
        prop_oneof![Just("https".to_string()), Just("http".to_string())],
        "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
        "/[A-Za-z0-9/._~%!$&'()*+,;=:@?-]{0,30}",
        prop::collection::vec((field_name(), field_value()), 0..8),
    )
        .prop_map(|(method, scheme, authority, path, headers)| {
            let mut fields = vec![
                (":method".to_string(), method.clone()),
                (":scheme".to_string(), scheme.clone()),
                (":authority".to_string(), authority.clone()),
                (":path".to_string(), path.clone()),
            ];
            let regular = headers.len();
            fields.extend(headers);
            ValidRequest { fields, method, path, authority, scheme, regular }
        })
}

#[derive(Debug, Clone)]
enum Mutation {
    UppercaseName,
    ConnectionField(&'static str),
    TeNotTrailers,
    DuplicatePseudo(usize),
    RemovePseudo(usize),
    PseudoAfterRegular(usize),
    BadChar(u8, bool),
    Whitespace(bool),
    StatusInRequest,
    UnknownPseudo,
    EmptyPath,
    Protocol,
    ConflictingContentLength,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::UppercaseName),
        prop::sample::select(vec!["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]).prop_map(Mutation::ConnectionField),
        Just(Mutation::TeNotTrailers),
        (0..4usize).prop_map(Mutation::DuplicatePseudo),
        (0..4usize).prop_map(Mutation::RemovePseudo),
        (0..4usize).prop_map(Mutation::PseudoAfterRegular),
        (prop::sample::select(vec![0u8, b'\r', b'\n']), any::<bool>()).prop_map(|(c, p)| Mutation::BadChar(c, p)),
        any::<bool>().prop_map(Mutation::Whitespace),
        Just(Mutation::StatusInRequest),
        Just(Mutation::UnknownPseudo),
        Just(Mutation::EmptyPath),
        Just(Mutation::Protocol),
        Just(Mutation::ConflictingContentLength),
    ]
}

fn apply(req: &ValidRequest, m: &Mutation) -> Vec<(String, String)> {
    let mut f = req.fields.clone();
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    match m {
        Mutation::UppercaseName => f.push(s("X-Upper", "v")),
        Mutation::ConnectionField(n) => f.push(s(n, "x")),
        Mutation::TeNotTrailers => f.push(s("te", "gzip")),
        Mutation::DuplicatePseudo(i) => {
            let p = f[*i].clone();
            f.insert(*i, p);
        }
        Mutation::RemovePseudo(i) => {
            f.remove(*i);
        }
        Mutation::PseudoAfterRegular(i) => {
            let p = f.remove(*i);
            f.push(s("x-regular", "1"));
            f.push(p);
        }
        Mutation::BadChar(c, in_pseudo) => {
            let bad = format!("a{}b", *c as char);
            if *in_pseudo {
                f[3].1.push_str(&bad);
            } else {
                f.push(("x-bad".to_string(), bad));
            }
        }
        Mutation::Whitespace(leading) => {
            f.push(s("x-ws", if *leading { " v" } else { "v\t" }));
        }
        Mutation::StatusInRequest => f.insert(0, s(":status", "200")),
        Mutation::UnknownPseudo => f.insert(1, s(":nonsense", "1")),
        Mutation::EmptyPath => f[3].1.clear(),
        Mutation::Protocol => f.insert(1, s(":protocol", "websocket")),
        Mutation::ConflictingContentLength => {
            f.push(s("content-length", "1"));
            f.push(s("content-length", "2"));
        }
    }
    f
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_requests_accepted(req in valid_request(), ext in any::<bool>()) {
        let r = parse_request(&req.fields, RequestOptions { extended_connect: ext }).unwrap();
        prop_assert_eq!(r.method, req.method.as_str());
        prop_assert_eq!(r.scheme, Some(req.scheme.as_str()));
        prop_assert_eq!(r.authority, Some(req.authority.as_str()));
        prop_assert_eq!(r.path, Some(req.path.as_str()));
        prop_assert_eq!(r.protocol, None);
        prop_assert_eq!(r.headers.len(), req.regular);
        prop_assert_eq!(r.headers, &req.fields[4..]);
    }

    #[test]
    fn mutated_requests_rejected(req in valid_request(), m in mutation()) {
        let fields = apply(&req, &m);
        // Without Extended CONNECT, :protocol is unknown; with it, :protocol
        // on a non-CONNECT method is malformed: both reject.
        for ext in [false, true] {
            let e = parse_request(&fields, RequestOptions { extended_connect: ext }).unwrap_err();
            prop_assert_eq!(e.code, H3ErrorCode::H3_MESSAGE_ERROR, "{:?} {:?}", m, e);
            prop_assert!(e.is_stream_error());
        }
    }

    #[test]
    fn statuses(status in 0u16..1000) {
        let s = format!("{status:03}");
        let fields = [(":status", s.as_str())];
        let r = parse_response(&fields);
        if (100..=599).contains(&status) && status != 101 {
            prop_assert_eq!(r.unwrap().status, status);
        } else {
            prop_assert_eq!(r.unwrap_err().code, H3ErrorCode::H3_MESSAGE_ERROR);
        }
    }

    /// DATA lengths summing to Content-Length pass; any other total fails,
    /// at the latest at the end.
    #[test]
    fn content_length(declared in 0u64..10_000, chunks in prop::collection::vec(0u64..3000, 0..10)) {
        let mut t = ContentLengthTracker::new(Some(declared));
        let total: u64 = chunks.iter().sum();
        let mut failed = false;
        for c in &chunks {
            if t.on_data(*c).is_err() {
                failed = true;
                break;
            }
        }
        let ok = !failed && t.finish().is_ok();
        prop_assert_eq!(ok, total == declared);
    }
}
