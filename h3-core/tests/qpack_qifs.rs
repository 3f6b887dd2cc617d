//! QPACK offline interop (qpackers/qifs, see shared/data/README.md §3).
//!
//! * Every `qpack-05` encoding from six other encoders (530 files in the
//!   tarball) decodes to the header sets of its `.qif`.
//! * The 2018 error inputs fail with the right codes (err9/err10 are valid
//!   under RFC 9204).
//! * Our encoder's output for every `.qif` decodes with our decoder and with
//!   an independent one (ls-qpack via pylsqpack, `tests/tools/decode_qif.py`),
//!   and the dynamic table makes it smaller.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use h3_core::qpack::{
    DecodeResult, Decoder, DecoderConfig, Encoder, EncoderConfig, HeaderField, QpackErrorKind, QPACK_DECOMPRESSION_FAILED, QPACK_ENCODER_STREAM_ERROR,
};

type Field = (Vec<u8>, Vec<u8>);
type HeaderSet = Vec<Field>;

fn shared_data() -> PathBuf {
    if let Ok(p) = std::env::var("QUICPRO_SHARED_DATA") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data")
}

fn qifs_dir() -> PathBuf {
    shared_data().join("qpack-qifs")
}

/// QIF: `name<TAB>value` lines, blank line between sets, `#` comments.
fn read_qif(path: &Path) -> Vec<HeaderSet> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut sets = Vec::new();
    let mut cur = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        if line.starts_with(b"#") {
            continue;
        }
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            if !cur.is_empty() {
                sets.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let tab = line.iter().position(|&b| b == b'\t').unwrap_or(line.len());
        let value = line.get(tab + 1..).unwrap_or_default();
        cur.push((line[..tab].to_vec(), value.to_vec()));
    }
    if !cur.is_empty() {
        sets.push(cur);
    }
    sets
}

/// Offline-interop blocks: stream ID (u64 BE), length (u32 BE), bytes.
fn blocks(data: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let sid = u64::from_be_bytes(data[i..i + 8].try_into().unwrap());
        let len = u32::from_be_bytes(data[i + 8..i + 12].try_into().unwrap()) as usize;
        out.push((sid, &data[i + 12..i + 12 + len]));
        i += 12 + len;
    }
    out
}

fn write_block(out: &mut Vec<u8>, sid: u64, bytes: &[u8]) {
    out.extend_from_slice(&sid.to_be_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn to_set(fields: Vec<HeaderField>) -> HeaderSet {
    fields.into_iter().map(|f| (f.name.to_vec(), f.value.to_vec())).collect()
}

fn decoder(capacity: u64, blocked: usize) -> Decoder {
    Decoder::new(DecoderConfig { max_table_capacity: capacity, max_blocked_streams: blocked, max_field_section_size: 1 << 20, keep_last_static_section: true })
}

/// Decodes an interop file; returns the sets by stream ID, checking that
/// nothing stays blocked and that the decoder-stream output parses.
fn decode_file(data: &[u8], capacity: u64, blocked: usize) -> Result<BTreeMap<u64, HeaderSet>, h3_core::qpack::QpackError> {
    decode_file_with(data, capacity, blocked, false)
}

/// `start_at_max`: the offline-interop convention of the qpack-05 files,
/// whose encoders mostly insert without first sending Set Dynamic Table
/// Capacity (296 of the 528 files; ls-qpack's decoder starts at its
/// maximum). RFC 9204 §3.2.2 starts the table at 0, so to follow the
/// convention we feed a Set Dynamic Table Capacity of the maximum first.
fn decode_file_with(data: &[u8], capacity: u64, blocked: usize, start_at_max: bool) -> Result<BTreeMap<u64, HeaderSet>, h3_core::qpack::QpackError> {
    let mut dec = decoder(capacity, blocked);
    if start_at_max && capacity > 0 {
        let mut set_capacity = Vec::new();
        h3_core::qpack::instructions::write_set_capacity(capacity, &mut set_capacity);
        assert!(dec.feed_encoder_stream(&set_capacity)?.is_empty());
    }
    let mut out = BTreeMap::new();
    let mut decoder_stream = Vec::new();
    for (sid, bytes) in blocks(data) {
        if sid == 0 {
            for s in dec.feed_encoder_stream(bytes)? {
                let fields = dec.resume(s)?.expect("listed stream must resume");
                assert!(out.insert(s, to_set(fields)).is_none());
            }
        } else {
            match dec.decode(sid, bytes)? {
                DecodeResult::Decoded(fields) => assert!(out.insert(sid, to_set(fields)).is_none()),
                DecodeResult::Blocked => {}
            }
        }
        dec.write_decoder_stream(&mut decoder_stream);
    }
    assert_eq!(dec.blocked_streams(), 0, "sections still blocked at end of file");
    assert_eq!(dec.buffered_encoder_bytes(), 0, "encoder stream ends inside an instruction");
    // What we would send back is a well-formed decoder stream.
    let mut rest = &decoder_stream[..];
    while !rest.is_empty() {
        let (_, n) = h3_core::qpack::instructions::DecoderInstruction::parse(rest).unwrap().unwrap();
        rest = &rest[n..];
    }
    Ok(out)
}

/// Multiset comparison (as the data README prescribes) plus the stronger
/// in-order check: every encoder numbers the sets 1, 2, 3... as stream IDs.
fn compare(got: &BTreeMap<u64, HeaderSet>, want: &[HeaderSet]) -> Result<(), String> {
    let mut counts: HashMap<&HeaderSet, i64> = HashMap::new();
    for s in want {
        *counts.entry(s).or_default() += 1;
    }
    for s in got.values() {
        *counts.entry(s).or_default() -= 1;
    }
    let missing: i64 = counts.values().filter(|&&c| c > 0).sum();
    let extra: i64 = -counts.values().filter(|&&c| c < 0).sum::<i64>();
    if missing != 0 || extra != 0 {
        return Err(format!("multiset mismatch: {missing} missing, {extra} unexpected"));
    }
    for (i, set) in want.iter().enumerate() {
        if got.get(&(i as u64 + 1)) != Some(set) {
            return Err(format!("stream {} differs from set {i}", i + 1));
        }
    }
    Ok(())
}

/// The tarball unpacked once per test run under the target directory.
fn qpack05_all() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qpack-05-all");
        let done = root.join("encoded/qpack-05");
        if !done.is_dir() {
            // Unpack beside, then rename: concurrent test processes never
            // see a half-written tree.
            let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("qpack-05-all.tmp{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).unwrap();
            let status = Command::new("tar").arg("-xJf").arg(qifs_dir().join("qpack-05-all-encoders.tar.xz")).arg("-C").arg(&tmp).status().expect("run tar");
            assert!(status.success(), "tar -xJf failed");
            if std::fs::rename(&tmp, &root).is_err() {
                // Another process won the race.
                let _ = std::fs::remove_dir_all(&tmp);
            }
        }
        assert!(done.is_dir());
        root
    })
}

/// `<qif>.out.<capacity>.<blocked>.<ack>`
fn parse_name(name: &str) -> Option<(String, u64, usize)> {
    let (qif, rest) = name.split_once(".out.")?;
    let mut it = rest.split('.');
    let cap = it.next()?.parse().ok()?;
    let blocked = it.next()?.parse().ok()?;
    let _ack: u8 = it.next()?.parse().ok()?;
    Some((qif.to_string(), cap, blocked))
}

const ENCODERS: [&str; 6] = ["f5", "ls-qpack", "nghttp3", "proxygen", "qthingey", "quinn"];

#[test]
fn decodes_every_qpack05_encoding() {
    let root = qpack05_all().join("encoded/qpack-05");
    let mut qifs: HashMap<String, Vec<HeaderSet>> = HashMap::new();
    let mut total = 0;
    let mut failures = Vec::new();
    for enc in ENCODERS {
        let mut files: Vec<_> = std::fs::read_dir(root.join(enc)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        let (mut pass, mut count) = (0, 0);
        for f in &files {
            let name = f.file_name().unwrap().to_str().unwrap();
            let (qif, cap, blocked) = parse_name(name).unwrap_or_else(|| panic!("bad name {name}"));
            let want = qifs.entry(qif.clone()).or_insert_with(|| read_qif(&qifs_dir().join(format!("qifs/{qif}.qif"))));
            count += 1;
            match decode_file_with(&std::fs::read(f).unwrap(), cap, blocked, true) {
                Ok(got) => match compare(&got, want) {
                    Ok(()) => pass += 1,
                    Err(e) => failures.push(format!("{enc}/{name}: {e}")),
                },
                Err(e) => failures.push(format!("{enc}/{name}: {e}")),
            }
        }
        println!("qpack-05 {enc:>9}: {pass}/{count} files decode and match their QIF");
        total += count;
    }
    // The two RFC example files: the Appendix B walk-through (capacity 220)
    // and the older draft example (sets capacity 170).
    let ex = std::fs::read(root.join("examples/examples.out.220.100.1")).unwrap();
    let got = decode_file(&ex, 220, 100).unwrap();
    let want = read_qif(&qifs_dir().join("qifs/examples.qif"));
    assert_eq!(got.values().cloned().collect::<Vec<_>>(), want);
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), [4, 8, 12]);
    let dx = std::fs::read(root.join("draft-examples.out")).unwrap();
    let got = decode_file(&dx, 256, 100).unwrap();
    let want = read_qif(&qifs_dir().join("qifs/draft-examples.qif"));
    assert_eq!(got.values().cloned().collect::<Vec<_>>(), want);
    total += 2;
    println!("qpack-05 total files: {total}");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(total, 530);
}

/// The uncompressed copies shipped beside the tarball decode the same way
/// (no tar needed).
#[test]
fn decodes_shipped_uncompressed_encodings() {
    let root = qifs_dir().join("encoded/qpack-05");
    let mut n = 0;
    for enc in ENCODERS {
        for e in std::fs::read_dir(root.join(enc)).unwrap() {
            let f = e.unwrap().path();
            let name = f.file_name().unwrap().to_str().unwrap().to_string();
            let (qif, cap, blocked) = parse_name(&name).unwrap();
            let want = read_qif(&qifs_dir().join(format!("qifs/{qif}.qif")));
            let got = decode_file_with(&std::fs::read(&f).unwrap(), cap, blocked, true).unwrap_or_else(|e| panic!("{enc}/{name}: {e}"));
            compare(&got, &want).unwrap_or_else(|e| panic!("{enc}/{name}: {e}"));
            n += 1;
        }
    }
    // What is on disk: 200 files from the six encoders (the data README
    // says 214), plus the two example files tested elsewhere.
    assert_eq!(n, 200);
}

#[test]
fn error_inputs() {
    let dir = qifs_dir().join("encoded/errors");
    for (cap, blocked) in [(0, 0), (4096, 100)] {
        for i in 1..=12 {
            let data = std::fs::read(dir.join(format!("err{i}"))).unwrap();
            let result = decode_file(&data, cap, blocked);
            match i {
                1..=8 => {
                    let e = result.expect_err(&format!("err{i} must fail"));
                    assert_eq!(e.kind, QpackErrorKind::DecompressionFailed, "err{i}: {e}");
                    assert_eq!(e.code(), QPACK_DECOMPRESSION_FAILED);
                    println!("err{i} (cap {cap}): {e}");
                }
                9 | 10 => {
                    // Valid under RFC 9204: static indices 0 and 62.
                    let got = result.unwrap_or_else(|e| panic!("err{i} must decode: {e}"));
                    let want: &[u8] = if i == 9 { b":authority" } else { b"x-xss-protection" };
                    assert_eq!(got[&1][0].0, want);
                }
                _ => {
                    let e = result.expect_err(&format!("err{i} must fail"));
                    assert_eq!(e.kind, QpackErrorKind::EncoderStream, "err{i}: {e}");
                    assert_eq!(e.code(), QPACK_ENCODER_STREAM_ERROR);
                    println!("err{i} (cap {cap}): {e}");
                }
            }
        }
    }
}

/// Decodes a file with ls-qpack through pylsqpack.
fn decode_with_pylsqpack(path: &Path, capacity: u64, blocked: usize) -> BTreeMap<u64, HeaderSet> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tools/decode_qif.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(path)
        .arg(capacity.to_string())
        .arg(blocked.to_string())
        .output()
        .expect("python3 must be installed (scripts/setup.sh installs pylsqpack)");
    assert!(out.status.success(), "pylsqpack failed on {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let mut sets = BTreeMap::new();
    for line in out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        let sid = v["stream"].as_u64().unwrap();
        let headers = v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let h = |i: usize| hex::decode(p[i].as_str().unwrap()).unwrap();
                (h(0), h(1))
            })
            .collect();
        sets.insert(sid, headers);
    }
    sets
}

struct OurRun {
    file: Vec<u8>,
    section_bytes: usize,
    encoder_stream_bytes: usize,
    blocked_seen: usize,
}

/// Encodes every set with our encoder, decoding each in lockstep with our
/// decoder and feeding its acknowledgments back (immediate-ack mode). The
/// section is delivered before the encoder-stream bytes it needs, so with
/// blocked streams allowed the decoder really blocks and resumes.
fn run_our_encoder(sets: &[HeaderSet], capacity: u64, blocked: usize) -> OurRun {
    let mut enc = Encoder::new(EncoderConfig::from_peer(capacity, blocked));
    let mut dec = decoder(capacity, blocked);
    let mut file = Vec::new();
    let (mut section_bytes, mut encoder_stream_bytes, mut blocked_seen) = (0, 0, 0);
    for (i, set) in sets.iter().enumerate() {
        let sid = i as u64 + 1;
        let (mut section, mut es) = (Vec::new(), Vec::new());
        enc.encode(sid, set, &mut section, &mut es);
        section_bytes += section.len();
        encoder_stream_bytes += es.len();
        if !es.is_empty() {
            write_block(&mut file, 0, &es);
        }
        write_block(&mut file, sid, &section);

        let fields = match dec.decode(sid, &section).unwrap() {
            DecodeResult::Decoded(f) => {
                assert!(dec.feed_encoder_stream(&es).unwrap().is_empty());
                f
            }
            DecodeResult::Blocked => {
                assert!(blocked > 0, "blocked although the peer allows no blocked streams");
                blocked_seen += 1;
                assert_eq!(dec.feed_encoder_stream(&es).unwrap(), [sid]);
                dec.resume(sid).unwrap().unwrap()
            }
        };
        assert_eq!(&to_set(fields), set, "set {i} at capacity {capacity}, blocked {blocked}");
        let mut ds = Vec::new();
        dec.write_decoder_stream(&mut ds);
        enc.feed_decoder_stream(&ds).unwrap();
    }
    assert_eq!(enc.outstanding_sections(), 0);
    OurRun { file, section_bytes, encoder_stream_bytes, blocked_seen }
}

#[test]
fn our_encoder_round_trips_and_interoperates() {
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("our-qpack-encodings");
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut names: Vec<String> =
        std::fs::read_dir(qifs_dir().join("qifs")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).filter(|n| n.ends_with(".qif")).collect();
    names.sort();
    assert_eq!(names.len(), 8);
    let mut checked_with_lsqpack = 0;
    for name in &names {
        let qif = name.trim_end_matches(".qif");
        let sets = read_qif(&qifs_dir().join("qifs").join(name));
        for blocked in [100usize, 0] {
            let mut sizes = BTreeMap::new();
            for capacity in [0u64, 256, 4096] {
                let run = run_our_encoder(&sets, capacity, blocked);
                // Independent check: our file through ls-qpack.
                let path = out_dir.join(format!("{qif}.out.{capacity}.{blocked}.1"));
                std::fs::write(&path, &run.file).unwrap();
                let theirs = decode_with_pylsqpack(&path, capacity, blocked);
                compare(&theirs, &sets).unwrap_or_else(|e| panic!("ls-qpack on {}: {e}", path.display()));
                // Our own decoder on the file as written (inserts first).
                let ours = decode_file(&run.file, capacity, blocked).unwrap();
                compare(&ours, &sets).unwrap();
                checked_with_lsqpack += 1;
                let total = run.section_bytes + run.encoder_stream_bytes;
                println!(
                    "ours {qif:>15} cap {capacity:>4} blocked {blocked:>3}: {total:>7} bytes \
                     ({} sections + {} encoder stream), {} sections blocked in transit",
                    run.section_bytes, run.encoder_stream_bytes, run.blocked_seen
                );
                sizes.insert(capacity, total);
            }
            let ratio = sizes[&4096] as f64 / sizes[&0] as f64;
            println!(
                "ratio {qif:>15} blocked {blocked:>3}: size(4096)/size(0) = {ratio:.3} \
                 (256: {:.3})",
                sizes[&256] as f64 / sizes[&0] as f64
            );
            // With blocked streams allowed, the table must pay off everywhere.
            // Without, an entry can only be referenced after its insert is
            // acknowledged, so a line must occur three times to win; the
            // three-set RFC example files repeat a line only twice.
            if blocked > 0 || sets.len() > 3 {
                assert!(sizes[&4096] < sizes[&0], "{qif}: dynamic table did not help");
            }
        }
    }
    assert_eq!(checked_with_lsqpack, 48);
}
