//! Validation of HTTP/3 header and trailer sections (RFC 9114 §4.1.2, §4.2,
//! §4.3, §4.4; RFC 9220 Extended CONNECT) and the Content-Length check.
//!
//! The input is the decoded field list of one HEADERS frame, as any slice of
//! values implementing [`Field`] (e.g. `(&[u8], &[u8])` or
//! `(Vec<u8>, Vec<u8>)` pairs). The result borrows from that slice: the
//! pseudo-header values as `&str`, and the regular fields as the sub-slice
//! that follows the pseudo-headers (§4.3 puts all pseudo-headers first), so
//! validating allocates nothing.
//!
//! Every violation is a malformed message: a stream error of type
//! H3_MESSAGE_ERROR (§4.1.2).

use crate::error::H3Error;

/// One field line: a name and a value, as bytes.
pub trait Field {
    fn name(&self) -> &[u8];
    fn value(&self) -> &[u8];
}

impl<N: AsRef<[u8]>, V: AsRef<[u8]>> Field for (N, V) {
    fn name(&self) -> &[u8] {
        self.0.as_ref()
    }
    fn value(&self) -> &[u8] {
        self.1.as_ref()
    }
}

/// What the receiver has enabled that changes the rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RequestOptions {
    /// We sent SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 9220 §3), so a
    /// CONNECT request may carry `:protocol`. Without it, `:protocol` is an
    /// unknown pseudo-header and the request is malformed (RFC 9220 §3,
    /// RFC 8441 §4).
    pub extended_connect: bool,
}

/// A validated request header section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a, F> {
    /// `:method`, a token (RFC 9110 §9.1).
    pub method: &'a str,
    /// `:scheme`; absent only for a (non-extended) CONNECT request.
    pub scheme: Option<&'a str>,
    /// `:authority`; required for CONNECT; may be absent when a Host field
    /// carries the authority.
    pub authority: Option<&'a str>,
    /// `:path`; absent only for a (non-extended) CONNECT request.
    pub path: Option<&'a str>,
    /// `:protocol` of an Extended CONNECT request (RFC 9220).
    pub protocol: Option<&'a str>,
    /// The regular fields, in order.
    pub headers: &'a [F],
    /// The value of Content-Length, if present (RFC 9110 §8.6).
    pub content_length: Option<u64>,
}

impl<F> Request<'_, F> {
    /// A CONNECT request, classic or extended (RFC 9114 §4.4).
    pub fn is_connect(&self) -> bool {
        self.method == "CONNECT"
    }

    /// An Extended CONNECT request (RFC 9220).
    pub fn is_extended_connect(&self) -> bool {
        self.is_connect() && self.protocol.is_some()
    }
}

/// A validated response header section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a, F> {
    /// `:status`, 100 to 599.
    pub status: u16,
    /// The regular fields, in order.
    pub headers: &'a [F],
    /// The value of Content-Length, if present.
    pub content_length: Option<u64>,
}

impl<F> Response<'_, F> {
    /// An interim (1xx) response; more responses follow on the stream
    /// (RFC 9114 §4.1).
    pub fn is_informational(&self) -> bool {
        (100..200).contains(&self.status)
    }
}

fn malformed(reason: &'static str) -> H3Error {
    H3Error::message_error(reason)
}

/// RFC 9110 §5.6.2: tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §5.6.2: token = 1*tchar.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// RFC 9114 §4.2: a field name is a token (RFC 9110 §5.1) with no uppercase
/// characters.
pub fn is_valid_field_name(name: &[u8]) -> bool {
    is_token(name) && !name.iter().any(u8::is_ascii_uppercase)
}

/// RFC 9114 §4.1.2 / RFC 9110 §5.5: a field value must not contain NUL, CR
/// or LF, nor start or end with whitespace (SP or HTAB).
pub fn is_valid_field_value(value: &[u8]) -> bool {
    let ws = |b: &u8| *b == b' ' || *b == b'\t';
    !value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') && !value.first().is_some_and(ws) && !value.last().is_some_and(ws)
}

/// RFC 9114 §4.2: fields that are connection-specific in HTTP/1.1 (RFC 9110
/// §7.6.1) make a message malformed; Transfer-Encoding is named by §4.1.
fn is_connection_specific(name: &[u8]) -> bool {
    matches!(name, b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade")
}

/// The section a field list is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    RequestHeaders,
    ResponseHeaders,
    Trailers,
}

/// Checks a regular field: name, value, connection-specific fields.
fn check_regular(name: &[u8], value: &[u8], section: Section) -> Result<(), H3Error> {
    if !is_valid_field_name(name) {
        return Err(malformed("invalid or uppercase field name"));
    }
    if !is_valid_field_value(value) {
        return Err(malformed("invalid field value"));
    }
    if is_connection_specific(name) {
        return Err(malformed("connection-specific field"));
    }
    // RFC 9114 §4.2: TE may appear in a request header, only as "trailers".
    if name == b"te" && (section != Section::RequestHeaders || !value.eq_ignore_ascii_case(b"trailers")) {
        return Err(malformed("TE field other than \"trailers\" in a request header"));
    }
    Ok(())
}

/// RFC 9110 §8.6: Content-Length = 1*DIGIT. A list of identical values
/// (from repeated fields or one comma-separated field) counts as one value;
/// different values, an empty element, non-digits or overflow are malformed.
fn merge_content_length(acc: &mut Option<u64>, value: &[u8]) -> Result<(), H3Error> {
    for element in value.split(|&b| b == b',') {
        let digits = trim_ows(element);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(malformed("invalid Content-Length"));
        }
        let mut n: u64 = 0;
        for d in digits {
            n = n.checked_mul(10).and_then(|n| n.checked_add(u64::from(d - b'0'))).ok_or(malformed("Content-Length overflows"))?;
        }
        match *acc {
            Some(prev) if prev != n => return Err(malformed("conflicting Content-Length values")),
            _ => *acc = Some(n),
        }
    }
    Ok(())
}

/// Strips optional whitespace (RFC 9110 §5.6.3) from both ends.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The Content-Length of a field list (any section), checked as in
/// [`parse_request`].
pub fn parse_content_length<F: Field>(fields: &[F]) -> Result<Option<u64>, H3Error> {
    let mut acc = None;
    for f in fields.iter().filter(|f| f.name() == b"content-length") {
        merge_content_length(&mut acc, f.value())?;
    }
    Ok(acc)
}

/// Sets a pseudo-header seen for the first time; a second one is malformed
/// (RFC 9114 §4.3.1: "exactly one value").
fn set_once<'a>(slot: &mut Option<&'a [u8]>, value: &'a [u8]) -> Result<(), H3Error> {
    if slot.is_some() {
        return Err(malformed("duplicate pseudo-header"));
    }
    *slot = Some(value);
    Ok(())
}

/// A pseudo-header value already checked to be visible ASCII (a token, a
/// scheme or URI characters), as `&str`. The check cannot fail then; it
/// stays because safe code has no cheaper way to a `&str`.
fn ascii_str(v: &[u8]) -> Result<&str, H3Error> {
    core::str::from_utf8(v).map_err(|_| malformed("non-ASCII pseudo-header value"))
}

/// RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
fn is_scheme(s: &[u8]) -> bool {
    match s.split_first() {
        Some((first, rest)) => first.is_ascii_alphabetic() && rest.iter().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b)),
        None => false,
    }
}

/// Visible ASCII only (RFC 3986 has no raw spaces, controls or non-ASCII in
/// a URI component).
fn is_uri_chars(s: &[u8]) -> bool {
    s.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// Validates a request header section and returns a typed view of it
/// (RFC 9114 §4.1.2, §4.2, §4.3.1, §4.4; RFC 9220 §3).
///
/// Checks:
/// - pseudo-headers come before all regular fields, each at most once, and
///   only `:method`, `:scheme`, `:authority`, `:path` (and `:protocol` when
///   `opts.extended_connect`); `:status` or any other is malformed;
/// - field names are lowercase tokens; values have no NUL/CR/LF and no
///   leading or trailing whitespace;
/// - no connection-specific fields; TE only as "trailers";
/// - `:method` is present and a token. CONNECT without `:protocol` has
///   `:authority` and neither `:scheme` nor `:path` (§4.4); Extended CONNECT
///   has all four (RFC 9220 §3); `:protocol` with another method is
///   malformed. Any other request has `:scheme` and `:path`;
/// - for "http" and "https", `:path` is non-empty and starts with "/" or is
///   "*" for OPTIONS; the authority (from `:authority` or Host) is present,
///   non-empty, without userinfo, and equal in both when both are present;
///   at most one Host field (RFC 9110 §7.2);
/// - Content-Length, if present, is valid (one value, possibly repeated).
pub fn parse_request<F: Field>(fields: &[F], opts: RequestOptions) -> Result<Request<'_, F>, H3Error> {
    let mut method = None;
    let mut scheme = None;
    let mut authority = None;
    let mut path = None;
    let mut protocol = None;
    let mut host: Option<&[u8]> = None;
    let mut content_length = None;
    let mut regular_start = fields.len();

    for (i, f) in fields.iter().enumerate() {
        let (name, value) = (f.name(), f.value());
        if name.first() == Some(&b':') {
            // RFC 9114 §4.3: pseudo-headers only before regular fields.
            if regular_start < i {
                return Err(malformed("pseudo-header after a regular field"));
            }
            let slot = match name {
                b":method" => &mut method,
                b":scheme" => &mut scheme,
                b":authority" => &mut authority,
                b":path" => &mut path,
                b":protocol" if opts.extended_connect => &mut protocol,
                b":status" => return Err(malformed("response pseudo-header in a request")),
                _ => return Err(malformed("unknown pseudo-header")),
            };
            set_once(slot, value)?;
            continue;
        }
        regular_start = regular_start.min(i);
        check_regular(name, value, Section::RequestHeaders)?;
        match name {
            b"host" => {
                if host.is_some() {
                    return Err(malformed("more than one Host field"));
                }
                host = Some(value);
            }
            b"content-length" => merge_content_length(&mut content_length, value)?,
            _ => {}
        }
    }

    let method = method.ok_or(malformed("missing :method"))?;
    if !is_token(method) {
        return Err(malformed("invalid :method"));
    }
    let is_connect = method == b"CONNECT";

    if let Some(p) = protocol {
        // RFC 9220 §3 (RFC 8441 §4): :protocol only on CONNECT, which then
        // carries :scheme, :path and :authority.
        if !is_connect {
            return Err(malformed(":protocol on a method other than CONNECT"));
        }
        if !is_token(p) {
            return Err(malformed("invalid :protocol"));
        }
        if scheme.is_none() || path.is_none() || authority.is_none() {
            return Err(malformed("Extended CONNECT without :scheme, :path or :authority"));
        }
    } else if is_connect {
        // RFC 9114 §4.4.
        if scheme.is_some() || path.is_some() {
            return Err(malformed("CONNECT with :scheme or :path"));
        }
        if authority.is_none() {
            return Err(malformed("CONNECT without :authority"));
        }
    } else if scheme.is_none() || path.is_none() {
        // RFC 9114 §4.3.1.
        return Err(malformed("missing :scheme or :path"));
    }

    if let Some(s) = scheme {
        if !is_scheme(s) {
            return Err(malformed("invalid :scheme"));
        }
    }
    if let Some(a) = authority {
        if a.is_empty() || !is_uri_chars(a) {
            return Err(malformed("empty or invalid :authority"));
        }
    }
    if let Some(p) = path {
        if !is_uri_chars(p) {
            return Err(malformed("invalid :path"));
        }
    }

    let http_like = scheme.is_some_and(|s| s == b"http" || s == b"https");
    if http_like {
        // RFC 9114 §4.3.1: :path non-empty; "*" only for OPTIONS.
        match path {
            Some(b"*") if method == b"OPTIONS" => {}
            Some(b"*") => return Err(malformed(":path \"*\" on a method other than OPTIONS")),
            Some([b'/', ..]) => {}
            _ => return Err(malformed(":path empty or not absolute")),
        }
        // RFC 9114 §4.3.1: authority from :authority or Host, not empty,
        // equal if both; no userinfo.
        match (authority, host) {
            (None, None) => return Err(malformed("no :authority or Host")),
            (Some(a), Some(h)) if a != h => {
                return Err(malformed(":authority and Host differ"));
            }
            _ => {}
        }
        if let Some(h) = host {
            if h.is_empty() {
                return Err(malformed("empty Host"));
            }
        }
        if authority.or(host).is_some_and(|a| a.contains(&b'@')) {
            return Err(malformed("userinfo in authority"));
        }
    }

    Ok(Request {
        method: ascii_str(method)?,
        scheme: scheme.map(ascii_str).transpose()?,
        authority: authority.map(ascii_str).transpose()?,
        path: path.map(ascii_str).transpose()?,
        protocol: protocol.map(ascii_str).transpose()?,
        headers: fields.get(regular_start..).unwrap_or_default(),
        content_length,
    })
}

/// Validates a response header section (RFC 9114 §4.1.2, §4.2, §4.3.2).
///
/// Exactly one `:status` and no other pseudo-header, before all regular
/// fields; `:status` is three digits from 100 to 599, and not 101, which
/// HTTP/3 does not support (§4.5). Regular fields as in [`parse_request`],
/// except that TE is not allowed at all.
pub fn parse_response<F: Field>(fields: &[F]) -> Result<Response<'_, F>, H3Error> {
    let mut status = None;
    let mut content_length = None;
    let mut regular_start = fields.len();
    for (i, f) in fields.iter().enumerate() {
        let (name, value) = (f.name(), f.value());
        if name.first() == Some(&b':') {
            if regular_start < i {
                return Err(malformed("pseudo-header after a regular field"));
            }
            match name {
                b":status" => set_once(&mut status, value)?,
                b":method" | b":scheme" | b":authority" | b":path" | b":protocol" => {
                    return Err(malformed("request pseudo-header in a response"));
                }
                _ => return Err(malformed("unknown pseudo-header")),
            }
            continue;
        }
        regular_start = regular_start.min(i);
        check_regular(name, value, Section::ResponseHeaders)?;
        if name == b"content-length" {
            merge_content_length(&mut content_length, value)?;
        }
    }
    let status = match status.ok_or(malformed("missing :status"))? {
        &[a @ b'0'..=b'9', b @ b'0'..=b'9', c @ b'0'..=b'9'] => u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'),
        _ => return Err(malformed(":status is not three digits")),
    };
    if !(100..=599).contains(&status) {
        return Err(malformed(":status out of range"));
    }
    if status == 101 {
        return Err(malformed("101 Switching Protocols is not used in HTTP/3"));
    }
    Ok(Response { status, headers: fields.get(regular_start..).unwrap_or_default(), content_length })
}

/// Validates a trailer section (RFC 9114 §4.3: no pseudo-headers; §4.2:
/// field names, values and connection-specific fields as in headers).
pub fn validate_trailers<F: Field>(fields: &[F]) -> Result<(), H3Error> {
    for f in fields {
        if f.name().first() == Some(&b':') {
            return Err(malformed("pseudo-header in trailers"));
        }
        check_regular(f.name(), f.value(), Section::Trailers)?;
    }
    Ok(())
}

/// What a response's framing needs to know of the request's method (RFC
/// 9110 §9.3.2, §9.3.6): a request stream keeps this, not the method text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum MethodClass {
    /// HEAD: the response carries no content.
    Head,
    /// CONNECT: a 2xx response opens a tunnel.
    Connect,
    /// Every other method.
    #[default]
    Other,
}

impl MethodClass {
    pub fn of(method: &str) -> Self {
        match method {
            "HEAD" => Self::Head,
            "CONNECT" => Self::Connect,
            _ => Self::Other,
        }
    }
}

/// Counts content bytes (DATA payloads) against Content-Length (RFC 9114
/// §4.1.2: a message whose Content-Length differs from the sum of its DATA
/// frame lengths is malformed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ContentLengthTracker {
    expected: Option<u64>,
    received: u64,
}

impl ContentLengthTracker {
    /// `expected`: the declared length, or `None` for no limit.
    pub const fn new(expected: Option<u64>) -> Self {
        Self { expected, received: 0 }
    }

    /// For a request: its Content-Length, except that a CONNECT request's
    /// DATA is tunnel data, not content (RFC 9114 §4.4).
    pub fn for_request<F>(req: &Request<'_, F>) -> Self {
        Self::new(if req.is_connect() { None } else { req.content_length })
    }

    /// For a response to a request of `request_method`. RFC 9114 §4.1.2:
    /// a response defined to have no content (to HEAD; 1xx, 204, 304; RFC
    /// 9110 §6.4.1) may declare any Content-Length but carries no DATA, so
    /// its expected length is 0. A 2xx response to CONNECT opens a tunnel
    /// whose DATA is not counted.
    pub fn for_response<F>(request_method: MethodClass, resp: &Response<'_, F>) -> Self {
        let no_content = request_method == MethodClass::Head || resp.is_informational() || resp.status == 204 || resp.status == 304;
        if no_content {
            Self::new(Some(0))
        } else if request_method == MethodClass::Connect && (200..300).contains(&resp.status) {
            Self::new(None)
        } else {
            Self::new(resp.content_length)
        }
    }

    pub const fn expected(&self) -> Option<u64> {
        self.expected
    }

    pub const fn received(&self) -> u64 {
        self.received
    }

    /// Counts `len` more content bytes; fails as soon as the total exceeds
    /// the declared length (or overflows).
    pub fn on_data(&mut self, len: u64) -> Result<(), H3Error> {
        let total = self.received.checked_add(len).ok_or(malformed("content length overflows"))?;
        if self.expected.is_some_and(|e| total > e) {
            return Err(malformed("more content than Content-Length"));
        }
        self.received = total;
        Ok(())
    }

    /// At the end of the content: fails if fewer bytes than declared came.
    pub fn finish(&self) -> Result<(), H3Error> {
        match self.expected {
            Some(e) if e != self.received => Err(malformed("less content than Content-Length")),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::error::{ErrorScope, H3ErrorCode};

    type F = (&'static str, &'static str);

    fn req(fields: &[F]) -> Result<Request<'_, F>, H3Error> {
        parse_request(fields, RequestOptions::default())
    }

    fn ext(fields: &[F]) -> Result<Request<'_, F>, H3Error> {
        parse_request(fields, RequestOptions { extended_connect: true })
    }

    fn assert_malformed<T: core::fmt::Debug>(r: Result<T, H3Error>, what: &str) {
        let e = r.expect_err(what);
        assert_eq!(e.code, H3ErrorCode::H3_MESSAGE_ERROR, "{what}");
        assert_eq!(e.scope, ErrorScope::Stream, "{what}");
    }

    const GET: [F; 5] = [(":method", "GET"), (":scheme", "https"), (":authority", "example.com"), (":path", "/index.html?q=1"), ("accept", "*/*")];

    #[test]
    fn valid_get() {
        let r = req(&GET).unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.scheme, Some("https"));
        assert_eq!(r.authority, Some("example.com"));
        assert_eq!(r.path, Some("/index.html?q=1"));
        assert_eq!(r.protocol, None);
        assert_eq!(r.headers, &GET[4..]);
        assert_eq!(r.content_length, None);
        assert!(!r.is_connect());
        // Works with owned byte pairs too.
        let owned: Vec<(Vec<u8>, Vec<u8>)> = GET.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())).collect();
        assert_eq!(parse_request(&owned, RequestOptions::default()).unwrap().method, "GET");
    }

    #[test]
    fn valid_variants() {
        // Host instead of :authority.
        let r = req(&[(":method", "GET"), (":scheme", "http"), (":path", "/"), ("host", "a.example")]).unwrap();
        assert_eq!(r.authority, None);
        // Both, equal.
        req(&[(":method", "GET"), (":scheme", "http"), (":authority", "a:8080"), (":path", "/"), ("host", "a:8080")]).unwrap();
        // OPTIONS *.
        req(&[(":method", "OPTIONS"), (":scheme", "https"), (":authority", "a"), (":path", "*")]).unwrap();
        // Extension method, TE: trailers, repeated equal Content-Length.
        let r = req(&[
            (":method", "PROPFIND"),
            (":scheme", "https"),
            (":authority", "a"),
            (":path", "/x"),
            ("te", "trailers"),
            ("content-length", "10"),
            ("content-length", "10, 10"),
        ])
        .unwrap();
        assert_eq!(r.content_length, Some(10));
        // A non-HTTP scheme without an authority.
        req(&[(":method", "GET"), (":scheme", "foo"), (":path", "")]).unwrap();
        // No regular fields at all: an empty header slice.
        let f = [(":method", "GET"), (":scheme", "https"), (":authority", "a"), (":path", "/")];
        assert!(req(&f).unwrap().headers.is_empty());
        // Field values may contain inner spaces, tabs and obs-text.
        let f = [(&b":method"[..], &b"GET"[..]), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/"), (b"x-v", b"a \t b\xff")];
        assert!(parse_request(&f, RequestOptions::default()).is_ok());
    }

    #[test]
    fn connect_rules() {
        let c = req(&[(":method", "CONNECT"), (":authority", "proxy.example:443")]).unwrap();
        assert!(c.is_connect() && !c.is_extended_connect());
        assert_eq!((c.scheme, c.path), (None, None));
        assert_malformed(req(&[(":method", "CONNECT")]), "CONNECT without authority");
        assert_malformed(req(&[(":method", "CONNECT"), (":authority", "a:1"), (":path", "/")]), "CONNECT with :path");
        assert_malformed(req(&[(":method", "CONNECT"), (":authority", "a:1"), (":scheme", "https")]), "CONNECT with :scheme");
    }

    const WS: [F; 5] = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"), (":authority", "server.example.com"), (":path", "/chat")];

    #[test]
    fn extended_connect() {
        let r = ext(&WS).unwrap();
        assert!(r.is_extended_connect());
        assert_eq!(r.protocol, Some("websocket"));
        // Not enabled: :protocol is an unknown pseudo-header.
        assert_malformed(req(&WS), ":protocol without the setting");
        // Missing any of :scheme, :path, :authority.
        for skip in 2..5 {
            let f: Vec<F> = WS.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, f)| *f).collect();
            assert_malformed(ext(&f), "extended CONNECT missing a pseudo-header");
        }
        // :protocol on GET.
        let mut f = WS;
        f[0] = (":method", "GET");
        assert_malformed(ext(&f), ":protocol on GET");
        f = WS;
        f[1] = (":protocol", "web socket");
        assert_malformed(ext(&f), "invalid :protocol");
    }

    fn with(base: &[F], change: impl FnOnce(&mut Vec<F>)) -> Vec<F> {
        let mut v = base.to_vec();
        change(&mut v);
        v
    }

    #[test]
    fn malformed_requests() {
        let cases: Vec<(&str, Vec<F>)> = vec![
            ("pseudo after regular", with(&GET, |v| v.swap(3, 4))),
            ("duplicate :method", with(&GET, |v| v.insert(1, (":method", "GET")))),
            ("duplicate :path", with(&GET, |v| v.insert(1, (":path", "/")))),
            ("unknown pseudo", with(&GET, |v| v.insert(0, (":foo", "x")))),
            (":status in request", with(&GET, |v| v.insert(0, (":status", "200")))),
            (
                "missing :method",
                with(&GET, |v| {
                    v.remove(0);
                }),
            ),
            (
                "missing :scheme",
                with(&GET, |v| {
                    v.remove(1);
                }),
            ),
            (
                "missing :path",
                with(&GET, |v| {
                    v.remove(3);
                }),
            ),
            (
                "missing authority",
                with(&GET, |v| {
                    v.remove(2);
                }),
            ),
            ("empty :path", with(&GET, |v| v[3] = (":path", ""))),
            ("relative :path", with(&GET, |v| v[3] = (":path", "index.html"))),
            ("* on GET", with(&GET, |v| v[3] = (":path", "*"))),
            ("space in :path", with(&GET, |v| v[3] = (":path", "/a b"))),
            ("empty :authority", with(&GET, |v| v[2] = (":authority", ""))),
            ("userinfo", with(&GET, |v| v[2] = (":authority", "user@example.com"))),
            ("bad method", with(&GET, |v| v[0] = (":method", "G T"))),
            ("empty method", with(&GET, |v| v[0] = (":method", ""))),
            ("bad scheme", with(&GET, |v| v[1] = (":scheme", "1http"))),
            ("uppercase name", with(&GET, |v| v.push(("Accept-Language", "en")))),
            ("empty name", with(&GET, |v| v.push(("", "x")))),
            ("bad name char", with(&GET, |v| v.push(("x y", "x")))),
            ("NUL in value", with(&GET, |v| v.push(("x", "a\0b")))),
            ("CR in value", with(&GET, |v| v.push(("x", "a\rb")))),
            ("LF in value", with(&GET, |v| v.push(("x", "a\nb")))),
            ("leading space", with(&GET, |v| v.push(("x", " a")))),
            ("trailing tab", with(&GET, |v| v.push(("x", "a\t")))),
            ("connection", with(&GET, |v| v.push(("connection", "close")))),
            ("keep-alive", with(&GET, |v| v.push(("keep-alive", "5")))),
            ("proxy-connection", with(&GET, |v| v.push(("proxy-connection", "x")))),
            ("transfer-encoding", with(&GET, |v| v.push(("transfer-encoding", "chunked")))),
            ("upgrade", with(&GET, |v| v.push(("upgrade", "websocket")))),
            ("te gzip", with(&GET, |v| v.push(("te", "gzip")))),
            ("host differs", with(&GET, |v| v.push(("host", "other.example")))),
            ("two hosts", with(&GET, |v| v.extend([("host", "example.com"), ("host", "example.com")]))),
            (
                "empty host",
                with(&GET, |v| {
                    v.remove(2);
                    v.push(("host", ""))
                }),
            ),
            ("bad content-length", with(&GET, |v| v.push(("content-length", "1x")))),
            ("empty content-length", with(&GET, |v| v.push(("content-length", "")))),
            ("negative content-length", with(&GET, |v| v.push(("content-length", "-1")))),
            ("conflicting content-length", with(&GET, |v| v.extend([("content-length", "1"), ("content-length", "2")]))),
            ("conflicting list", with(&GET, |v| v.push(("content-length", "3, 4")))),
            ("empty list element", with(&GET, |v| v.push(("content-length", "3,,3")))),
            ("overflow", with(&GET, |v| v.push(("content-length", "18446744073709551616")))),
        ];
        for (what, fields) in cases {
            assert_malformed(req(&fields), what);
        }
        // The largest u64 is a valid length.
        let f = with(&GET, |v| v.push(("content-length", "18446744073709551615")));
        assert_eq!(req(&f).unwrap().content_length, Some(u64::MAX));
    }

    #[test]
    fn responses() {
        let f: [F; 3] = [(":status", "200"), ("content-type", "text/plain"), ("content-length", "5")];
        let r = parse_response(&f).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.headers, &f[1..]);
        assert_eq!(r.content_length, Some(5));
        assert!(!r.is_informational());
        assert!(parse_response(&[(":status", "103")]).unwrap().is_informational());
        assert_eq!(parse_response(&[(":status", "599")]).unwrap().status, 599);
        assert_eq!(parse_response(&[(":status", "100")]).unwrap().status, 100);
        let bad: Vec<(&str, Vec<F>)> = vec![
            ("missing", vec![("server", "x")]),
            ("two digits", vec![(":status", "20")]),
            ("four digits", vec![(":status", "2000")]),
            ("sign", vec![(":status", "+20")]),
            ("099", vec![(":status", "099")]),
            ("600", vec![(":status", "600")]),
            ("101", vec![(":status", "101")]),
            ("reason phrase", vec![(":status", "200 OK")]),
            ("duplicate", vec![(":status", "200"), (":status", "200")]),
            ("request pseudo", vec![(":status", "200"), (":path", "/")]),
            ("method", vec![(":method", "GET"), (":status", "200")]),
            ("unknown pseudo", vec![(":status", "200"), (":x", "1")]),
            ("after regular", vec![("server", "x"), (":status", "200")]),
            ("te", vec![(":status", "200"), ("te", "trailers")]),
            ("transfer-encoding", vec![(":status", "200"), ("transfer-encoding", "chunked")]),
            ("uppercase", vec![(":status", "200"), ("Server", "x")]),
        ];
        for (what, fields) in bad {
            assert_malformed(parse_response(&fields), what);
        }
    }

    #[test]
    fn trailers() {
        validate_trailers(&[("grpc-status", "0"), ("x-checksum", "abc")]).unwrap();
        validate_trailers::<F>(&[]).unwrap();
        assert_malformed(validate_trailers(&[(":status", "200")]), "pseudo in trailers");
        assert_malformed(validate_trailers(&[("x", "1"), (":path", "/")]), "pseudo in trailers");
        assert_malformed(validate_trailers(&[("Grpc-Status", "0")]), "uppercase");
        assert_malformed(validate_trailers(&[("connection", "close")]), "connection");
        assert_malformed(validate_trailers(&[("te", "trailers")]), "te");
        assert_malformed(validate_trailers(&[("x", "a\r\n")]), "CRLF");
    }

    #[test]
    fn content_length_tracking() {
        let mut t = ContentLengthTracker::new(Some(10));
        t.on_data(4).unwrap();
        assert_malformed(t.finish(), "short");
        t.on_data(6).unwrap();
        t.finish().unwrap();
        assert_malformed(t.on_data(1), "over");
        assert_eq!(t.received(), 10, "a failed on_data does not count");
        let mut t = ContentLengthTracker::new(Some(3));
        assert_malformed(t.on_data(4), "over at once");
        let mut t = ContentLengthTracker::new(None);
        t.on_data(u64::MAX).unwrap();
        assert_malformed(t.on_data(1), "overflow");
        t.finish().unwrap();
        assert_eq!(ContentLengthTracker::new(Some(0)).finish(), Ok(()));

        let f: [F; 4] = [(":method", "POST"), (":scheme", "https"), (":authority", "a"), (":path", "/")];
        let mut post = f.to_vec();
        post.push(("content-length", "7"));
        let r = req(&post).unwrap();
        assert_eq!(ContentLengthTracker::for_request(&r).expected(), Some(7));
        let c = [(":method", "CONNECT"), (":authority", "a:1"), ("content-length", "7")];
        let r = req(&c).unwrap();
        assert_eq!(ContentLengthTracker::for_request(&r).expected(), None);
        assert_eq!(parse_content_length(&post).unwrap(), Some(7));
        assert_eq!(parse_content_length(&f).unwrap(), None);

        let resp = [(":status", "200"), ("content-length", "100")];
        let r = parse_response(&resp).unwrap();
        assert_eq!(ContentLengthTracker::for_response(MethodClass::of("GET"), &r).expected(), Some(100));
        // RFC 9114 §4.1.2: HEAD responses carry no content despite the header.
        assert_eq!(ContentLengthTracker::for_response(MethodClass::of("HEAD"), &r).expected(), Some(0));
        assert_eq!(ContentLengthTracker::for_response(MethodClass::of("CONNECT"), &r).expected(), None);
        for s in ["204", "304", "100"] {
            let resp = [(":status", s), ("content-length", "100")];
            let r = parse_response(&resp).unwrap();
            assert_eq!(ContentLengthTracker::for_response(MethodClass::of("GET"), &r).expected(), Some(0), "{s}");
        }
    }

    #[test]
    fn name_and_value_predicates() {
        assert!(is_valid_field_name(b"x-custom_header.1~"));
        assert!(!is_valid_field_name(b"X-Custom"));
        assert!(!is_valid_field_name(b""));
        assert!(!is_valid_field_name(b"a:b"));
        assert!(!is_valid_field_name(b":path"));
        assert!(is_valid_field_value(b""));
        assert!(is_valid_field_value(b"a b"));
        assert!(!is_valid_field_value(b" "));
        assert!(!is_valid_field_value(b"a\0"));
    }
}
