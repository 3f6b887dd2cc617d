//! Static files for `quicpro serve --root DIR`, as browsers and download
//! tools expect them (RFC 9110): a media type by file extension,
//! `content-length`, `HEAD` without content (§9.3.2), single byte ranges
//! (§14: 206 and 416), validators (`last-modified` §8.8.2, `etag` §8.8.3)
//! with the conditional requests that use them (§13), `index.html` for a
//! directory, and no way out of the root (`..`, encoded or not, and
//! symbolic links that point outside are all "not found").
//!
//! [`respond`] is a pure decision over the file system: request headers in,
//! status + header fields + what to send out. The server streams the body.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// What the request says that matters to a file response.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileRequest<'a> {
    pub method: &'a str,
    /// The `:path` pseudo-header as sent (percent-encoded, maybe a query).
    pub path: &'a str,
    pub range: Option<&'a str>,
    pub if_range: Option<&'a str>,
    pub if_match: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub if_unmodified_since: Option<&'a str>,
}

/// The content of a response.
#[derive(Debug)]
pub enum FileBody {
    /// No content (HEAD, 304, 416).
    Empty,
    Text(Bytes),
    /// `len` bytes of `file`, positioned at the first one.
    File {
        file: File,
        len: u64,
    },
}

#[derive(Debug)]
pub struct FileResponse {
    pub status: u16,
    /// Lowercase names (HTTP/3 requires it, RFC 9114 §4.2).
    pub headers: Vec<(&'static str, String)>,
    pub body: FileBody,
}

impl FileResponse {
    fn text(status: u16, body: &'static str, extra: Vec<(&'static str, String)>, head: bool) -> Self {
        let mut headers = vec![("content-type", "text/plain; charset=utf-8".to_string()), ("content-length", body.len().to_string())];
        headers.extend(extra);
        let body = if head { FileBody::Empty } else { FileBody::Text(Bytes::from_static(body.as_bytes())) };
        FileResponse { status, headers, body }
    }
}

/// Decodes `%XX` escapes (RFC 3986 §2.1). `None` for a malformed escape or
/// a NUL byte, which no file name contains.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    (!out.contains(&0)).then_some(out)
}

/// Where `request_path` (decoded, without query) lies under `root`.
/// `Err(())` for a path that tries to leave the root.
fn resolve(root: &Path, decoded: &[u8]) -> Result<PathBuf, ()> {
    use std::os::unix::ffi::OsStrExt;
    let rel = Path::new(std::ffi::OsStr::from_bytes(decoded));
    let mut out = root.to_path_buf();
    for c in rel.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(p) => out.push(p),
            Component::ParentDir | Component::Prefix(_) => return Err(()),
        }
    }
    Ok(out)
}

/// `path` with symbolic links resolved, if it stays under `root`
/// (itself canonical).
fn contained(root: &Path, path: &Path) -> Option<PathBuf> {
    let real = path.canonicalize().ok()?;
    real.starts_with(root).then_some(real)
}

/// A strong validator from what changes when the file does: its size and
/// modification time to the nanosecond (RFC 9110 §8.8.3).
fn etag_of(len: u64, mtime: SystemTime) -> String {
    let d = mtime.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("\"{len:x}-{:x}-{:x}\"", d.as_secs(), d.subsec_nanos())
}

/// RFC 9110 §8.8.3.2: entity tags in a list (`*` matches any). `weak`
/// selects the weak comparison (If-None-Match) over the strong one
/// (If-Match, If-Range).
fn etag_matches(list: &str, etag: &str, weak: bool) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    list.split(',').map(str::trim).any(|t| {
        let (is_weak, opaque) = match t.strip_prefix("W/") {
            Some(o) => (true, o),
            None => (false, t),
        };
        if is_weak && !weak {
            return false;
        }
        opaque == etag
    })
}

/// Seconds since the epoch of an HTTP-date (RFC 9110 §5.6.7).
fn http_date_secs(s: &str) -> Option<u64> {
    httpdate::parse_http_date(s.trim()).ok()?.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// What a `Range` header asks of a representation of `len` bytes
/// (RFC 9110 §14.1.2, §14.2).
#[derive(Debug, PartialEq, Eq)]
enum RangeAsk {
    /// Absent, not bytes, several ranges or not parseable: send it all
    /// (a server may ignore such a Range, §14.2).
    Whole,
    /// One satisfiable range, first..=last.
    Part(u64, u64),
    /// No byte of it lies within the representation: 416.
    Unsatisfiable,
}

fn parse_range(h: &str, len: u64) -> RangeAsk {
    let h = h.trim();
    let Some(spec) = h.get(..6).filter(|p| p.eq_ignore_ascii_case("bytes=")).map(|_| &h[6..]) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        // Several ranges would need multipart/byteranges; §14.2 lets us
        // answer with the whole representation instead.
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeAsk::Whole };
    let num = |s: &str| -> Option<u64> { (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok()).flatten() };
    match (a.trim(), b.trim()) {
        ("", suffix) => match num(suffix) {
            // §14.1.3: the last N bytes; "-0" selects nothing.
            Some(0) => RangeAsk::Unsatisfiable,
            Some(_) if len == 0 => RangeAsk::Unsatisfiable,
            Some(n) => RangeAsk::Part(len - n.min(len), len - 1),
            None => RangeAsk::Whole,
        },
        (first, "") => match num(first) {
            Some(f) if f < len => RangeAsk::Part(f, len - 1),
            Some(_) => RangeAsk::Unsatisfiable,
            None => RangeAsk::Whole,
        },
        (first, last) => match (num(first), num(last)) {
            (Some(f), Some(l)) if f > l => RangeAsk::Whole,
            (Some(f), Some(l)) if f < len => RangeAsk::Part(f, l.min(len - 1)),
            (Some(_), Some(_)) => RangeAsk::Unsatisfiable,
            _ => RangeAsk::Whole,
        },
    }
}

/// The media type for a file name; text types say UTF-8 so browsers do
/// not guess.
fn content_type(path: &Path) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    if mime.type_() == mime_guess::mime::TEXT || mime.subtype() == mime_guess::mime::JAVASCRIPT {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.essence_str().to_string()
    }
}

/// Answers a request for a file under `root` (which must be canonical:
/// see [`canonical_root`]).
pub fn respond(root: &Path, req: &FileRequest<'_>) -> FileResponse {
    let head = req.method == "HEAD";
    if req.method != "GET" && !head {
        // RFC 9110 §15.5.6: 405 lists what is allowed.
        return FileResponse::text(405, "method not allowed\n", vec![("allow", "GET, HEAD".into())], false);
    }
    let raw = req.path.split(['?', '#']).next().unwrap_or("/");
    let Some(decoded) = percent_decode(raw) else {
        return FileResponse::text(400, "bad request\n", Vec::new(), head);
    };
    let not_found = || FileResponse::text(404, "not found\n", Vec::new(), head);
    let Ok(candidate) = resolve(root, &decoded) else { return not_found() };
    let Some(mut real) = contained(root, &candidate) else { return not_found() };
    if real.is_dir() {
        if !decoded.ends_with(b"/") {
            // Relative links in the index resolve against the directory
            // only with a trailing slash.
            let location = format!("{raw}/");
            return FileResponse::text(301, "moved\n", vec![("location", location)], head);
        }
        match contained(root, &real.join("index.html")) {
            Some(p) => real = p,
            None => return not_found(),
        }
    }
    let Ok(mut file) = File::open(&real) else { return not_found() };
    let Ok(meta) = file.metadata() else { return not_found() };
    if !meta.is_file() {
        return not_found();
    }
    let len = meta.len();
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    let mtime_secs = mtime.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let etag = etag_of(len, mtime);
    let last_modified = httpdate::fmt_http_date(mtime);
    let validators = || vec![("etag", etag.clone()), ("last-modified", last_modified.clone())];

    // RFC 9110 §13.2.2: the order in which preconditions are evaluated.
    if let Some(im) = req.if_match {
        if !etag_matches(im, &etag, false) {
            return FileResponse { status: 412, headers: validators(), body: FileBody::Empty };
        }
    } else if let Some(ius) = req.if_unmodified_since.and_then(http_date_secs) {
        if mtime_secs > ius {
            return FileResponse { status: 412, headers: validators(), body: FileBody::Empty };
        }
    }
    let not_modified = match (req.if_none_match, req.if_modified_since) {
        (Some(inm), _) => etag_matches(inm, &etag, true),
        (None, Some(ims)) => http_date_secs(ims).is_some_and(|t| mtime_secs <= t),
        (None, None) => false,
    };
    if not_modified {
        // §15.4.5: 304 carries the validators, no content.
        return FileResponse { status: 304, headers: validators(), body: FileBody::Empty };
    }

    // §13.1.5: a Range applies only if If-Range still names this version
    // (an entity tag compared strongly, or the exact Last-Modified date).
    let range_applies = req.if_range.is_none_or(|ir| {
        let ir = ir.trim();
        if ir.starts_with('"') || ir.starts_with("W/") {
            etag_matches(ir, &etag, false)
        } else {
            http_date_secs(ir) == Some(mtime_secs)
        }
    });
    let ask = match req.range {
        // §14.2: Range is defined for GET only.
        Some(r) if !head && range_applies => parse_range(r, len),
        _ => RangeAsk::Whole,
    };
    let mut headers = vec![("content-type", content_type(&real))];
    headers.extend(validators());
    headers.push(("accept-ranges", "bytes".into()));
    let (status, first, count) = match ask {
        RangeAsk::Whole => (200, 0, len),
        RangeAsk::Part(f, l) => {
            headers.push(("content-range", format!("bytes {f}-{l}/{len}")));
            (206, f, l - f + 1)
        }
        RangeAsk::Unsatisfiable => {
            // §15.5.17: 416 says how long the representation is.
            return FileResponse { status: 416, headers: vec![("content-range", format!("bytes */{len}"))], body: FileBody::Empty };
        }
    };
    headers.push(("content-length", count.to_string()));
    if head || count == 0 {
        return FileResponse { status, headers, body: FileBody::Empty };
    }
    if first > 0 && file.seek(SeekFrom::Start(first)).is_err() {
        return FileResponse::text(500, "read error\n", Vec::new(), head);
    }
    FileResponse { status, headers, body: FileBody::File { file, len: count } }
}

/// The root as `respond` needs it: absolute, symbolic links resolved.
pub fn canonical_root(root: &Path) -> std::io::Result<PathBuf> {
    root.canonicalize()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Read;

    struct Root(PathBuf);
    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A root with index.html, a text file, a subdirectory with its own
    /// index, a directory without one, and a file and a link outside.
    fn root(tag: &str) -> (Root, PathBuf) {
        let base = std::env::temp_dir().join(format!("quicpro-static-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let r = base.join("www");
        std::fs::create_dir_all(r.join("docs")).unwrap();
        std::fs::create_dir_all(r.join("empty")).unwrap();
        std::fs::write(r.join("index.html"), "<html><body>hello</body></html>\n").unwrap();
        std::fs::write(r.join("docs/index.html"), "<p>docs</p>").unwrap();
        std::fs::write(r.join("data.txt"), "0123456789").unwrap();
        std::fs::write(r.join("app.js"), "let x = 1;").unwrap();
        std::fs::write(r.join("blob.bin"), [0u8; 4]).unwrap();
        std::fs::write(r.join("zero.txt"), "").unwrap();
        std::fs::write(base.join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), r.join("escape.txt")).unwrap();
        std::os::unix::fs::symlink(&base, r.join("up")).unwrap();
        std::os::unix::fs::symlink(r.join("data.txt"), r.join("inside.txt")).unwrap();
        let canon = canonical_root(&r).unwrap();
        (Root(base), canon)
    }

    fn get<'a>(path: &'a str) -> FileRequest<'a> {
        FileRequest { method: "GET", path, ..FileRequest::default() }
    }

    fn header<'a>(r: &'a FileResponse, n: &str) -> Option<&'a str> {
        r.headers.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str())
    }

    fn body(r: FileResponse) -> Vec<u8> {
        match r.body {
            FileBody::Empty => Vec::new(),
            FileBody::Text(b) => b.to_vec(),
            FileBody::File { file, len } => {
                let mut v = Vec::new();
                file.take(len).read_to_end(&mut v).unwrap();
                v
            }
        }
    }

    #[test]
    fn media_types_length_and_validators() {
        let (_g, r) = root("types");
        let resp = respond(&r, &get("/index.html"));
        assert_eq!(resp.status, 200);
        assert_eq!(header(&resp, "content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(header(&resp, "content-length"), Some("32"));
        assert_eq!(header(&resp, "accept-ranges"), Some("bytes"));
        assert!(header(&resp, "etag").unwrap().starts_with("\"20-"));
        assert!(header(&resp, "last-modified").unwrap().ends_with(" GMT"));
        assert_eq!(body(resp), b"<html><body>hello</body></html>\n");
        assert_eq!(header(&respond(&r, &get("/data.txt")), "content-type"), Some("text/plain; charset=utf-8"));
        assert!(header(&respond(&r, &get("/app.js")), "content-type").unwrap().contains("javascript"));
        assert_eq!(header(&respond(&r, &get("/blob.bin")), "content-type"), Some("application/octet-stream"));
        let empty = respond(&r, &get("/zero.txt"));
        assert_eq!((empty.status, header(&empty, "content-length")), (200, Some("0")));
    }

    #[test]
    fn head_has_headers_without_content() {
        let (_g, r) = root("head");
        let resp = respond(&r, &FileRequest { method: "HEAD", path: "/data.txt", ..FileRequest::default() });
        assert_eq!(resp.status, 200);
        assert_eq!(header(&resp, "content-length"), Some("10"));
        assert!(matches!(resp.body, FileBody::Empty));
        let missing = respond(&r, &FileRequest { method: "HEAD", path: "/nope", ..FileRequest::default() });
        assert_eq!(missing.status, 404);
        assert!(matches!(missing.body, FileBody::Empty));
    }

    #[test]
    fn directories_serve_their_index() {
        let (_g, r) = root("dir");
        assert_eq!(body(respond(&r, &get("/"))), b"<html><body>hello</body></html>\n");
        assert_eq!(body(respond(&r, &get("/docs/"))), b"<p>docs</p>");
        let redirect = respond(&r, &get("/docs"));
        assert_eq!((redirect.status, header(&redirect, "location")), (301, Some("/docs/")));
        assert_eq!(respond(&r, &get("/empty/")).status, 404);
    }

    #[test]
    fn methods_other_than_get_and_head_are_refused() {
        let (_g, r) = root("methods");
        for m in ["POST", "PUT", "DELETE", "OPTIONS"] {
            let resp = respond(&r, &FileRequest { method: m, path: "/data.txt", ..FileRequest::default() });
            assert_eq!(resp.status, 405, "{m}");
            assert_eq!(header(&resp, "allow"), Some("GET, HEAD"));
            assert!(body(resp).len() < 64, "short body");
        }
    }

    #[test]
    fn traversal_attempts_stay_inside_the_root() {
        let (_g, r) = root("traversal");
        for p in [
            "/../secret.txt",
            "/docs/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E%2Fsecret.txt",
            "/docs/%2e%2e/%2e%2e/secret.txt",
            "/..%2fsecret.txt",
            "/escape.txt",
            "/up/secret.txt",
            "/nope.txt",
        ] {
            let resp = respond(&r, &get(p));
            assert_eq!(resp.status, 404, "{p}");
            assert_eq!(body(resp), b"not found\n", "{p}");
        }
        assert_eq!(respond(&r, &get("/bad%zzescape")).status, 400);
        assert_eq!(respond(&r, &get("/nul%00.txt")).status, 400);
        // A link that stays inside, a dot segment that stays inside, a query.
        assert_eq!(body(respond(&r, &get("/inside.txt"))), b"0123456789");
        // Through a link that leaves and comes back: the real file is inside.
        assert_eq!(body(respond(&r, &get("/up/www/data.txt"))), b"0123456789");
        assert_eq!(body(respond(&r, &get("/./docs/./index.html"))), b"<p>docs</p>");
        assert_eq!(body(respond(&r, &get("/data.txt?x=../../secret.txt"))), b"0123456789");
        assert_eq!(body(respond(&r, &get("/d%61ta.txt"))), b"0123456789");
    }

    #[test]
    fn single_ranges() {
        let (_g, r) = root("ranges");
        let with = |range: &'static str| respond(&r, &FileRequest { range: Some(range), ..get("/data.txt") });
        for (range, content, cr) in [
            ("bytes=0-3", &b"0123"[..], "bytes 0-3/10"),
            ("bytes=4-", b"456789", "bytes 4-9/10"),
            ("bytes=-3", b"789", "bytes 7-9/10"),
            ("bytes=-30", b"0123456789", "bytes 0-9/10"),
            ("bytes=8-100", b"89", "bytes 8-9/10"),
            ("BYTES=2-2", b"2", "bytes 2-2/10"),
        ] {
            let resp = with(range);
            assert_eq!(resp.status, 206, "{range}");
            assert_eq!(header(&resp, "content-range"), Some(cr), "{range}");
            assert_eq!(header(&resp, "content-length"), Some(content.len().to_string().as_str()), "{range}");
            assert_eq!(body(resp), content, "{range}");
        }
        for range in ["bytes=10-", "bytes=10-20", "bytes=-0"] {
            let resp = with(range);
            assert_eq!((resp.status, header(&resp, "content-range")), (416, Some("bytes */10")), "{range}");
        }
        // Ignored: several ranges, other units, nonsense, last < first.
        for range in ["bytes=0-1,4-5", "items=0-1", "bytes=abc", "bytes=5-2"] {
            let resp = with(range);
            assert_eq!(resp.status, 200, "{range}");
            assert_eq!(body(resp), b"0123456789", "{range}");
        }
        let head = respond(&r, &FileRequest { method: "HEAD", range: Some("bytes=0-3"), ..get("/data.txt") });
        assert_eq!(head.status, 200, "Range is defined for GET only");
        let empty = respond(&r, &FileRequest { range: Some("bytes=0-"), ..get("/zero.txt") });
        assert_eq!(empty.status, 416);
    }

    #[test]
    fn conditional_requests() {
        let (_g, r) = root("cond");
        let full = respond(&r, &get("/data.txt"));
        let etag = header(&full, "etag").unwrap().to_string();
        let lm = header(&full, "last-modified").unwrap().to_string();
        let req = |q: FileRequest<'_>| respond(&r, &q);
        let d = get("/data.txt");
        // If-None-Match: weak comparison, lists, "*".
        let weak = format!("W/{etag}");
        let list = format!("\"other\", {etag}");
        assert_eq!(req(FileRequest { if_none_match: Some(&etag), ..d }).status, 304);
        assert_eq!(req(FileRequest { if_none_match: Some(&weak), ..d }).status, 304);
        assert_eq!(req(FileRequest { if_none_match: Some(&list), ..d }).status, 304);
        assert_eq!(req(FileRequest { if_none_match: Some("*"), ..d }).status, 304);
        assert_eq!(req(FileRequest { if_none_match: Some("\"stale\""), ..d }).status, 200);
        let nm = req(FileRequest { if_none_match: Some(&etag), ..d });
        assert_eq!(header(&nm, "etag"), Some(etag.as_str()));
        assert!(matches!(nm.body, FileBody::Empty));
        // If-Modified-Since, ignored when If-None-Match is present.
        assert_eq!(req(FileRequest { if_modified_since: Some(&lm), ..d }).status, 304);
        assert_eq!(req(FileRequest { if_modified_since: Some("Sun, 06 Nov 1994 08:49:37 GMT"), ..d }).status, 200);
        assert_eq!(req(FileRequest { if_modified_since: Some("not a date"), ..d }).status, 200);
        assert_eq!(req(FileRequest { if_none_match: Some("\"stale\""), if_modified_since: Some(&lm), ..d }).status, 200);
        // If-Match (strong) and If-Unmodified-Since: 412 when they fail.
        assert_eq!(req(FileRequest { if_match: Some(&etag), ..d }).status, 200);
        assert_eq!(req(FileRequest { if_match: Some(&weak), ..d }).status, 412);
        assert_eq!(req(FileRequest { if_match: Some("\"other\""), ..d }).status, 412);
        assert_eq!(req(FileRequest { if_unmodified_since: Some("Sun, 06 Nov 1994 08:49:37 GMT"), ..d }).status, 412);
        assert_eq!(req(FileRequest { if_unmodified_since: Some(&lm), ..d }).status, 200);
        // If-Range: the range only while the validator still matches.
        let ranged = |ir: &str| {
            let ir = ir.to_string();
            let mut q = get("/data.txt");
            q.range = Some("bytes=0-1");
            q.if_range = Some(&ir);
            respond(&r, &q).status
        };
        assert_eq!(ranged(&etag), 206);
        assert_eq!(ranged(&lm), 206);
        assert_eq!(ranged("\"old\""), 200);
        assert_eq!(ranged(&weak), 200, "If-Range compares strongly");
        assert_eq!(ranged("Sun, 06 Nov 1994 08:49:37 GMT"), 200);
    }

    #[test]
    fn range_parser_edges() {
        assert_eq!(parse_range("bytes=0-0", 1), RangeAsk::Part(0, 0));
        assert_eq!(parse_range("bytes=-1", 1), RangeAsk::Part(0, 0));
        assert_eq!(parse_range("bytes=18446744073709551615-", 10), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=99999999999999999999-", 10), RangeAsk::Whole, "overflow: not a number");
        assert_eq!(parse_range("bytes= 1-2 ", 10), RangeAsk::Part(1, 2));
        assert_eq!(parse_range("bytes=-", 10), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=+1-2", 10), RangeAsk::Whole);
        assert_eq!(parse_range("", 10), RangeAsk::Whole);
    }
}
