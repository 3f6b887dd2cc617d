//! Parses the decrypted payloads of real Initial packets (Chromium, Firefox,
//! curl, quic-go, a DoQ server; QUIC v1 and v2) from
//! `shared/data/quic-initials-from-pcaps.json` and compares the frames with
//! the summary the file gives for each packet.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use quic_core::codec::Writer;
use quic_core::frame::{Frame, FrameContext, FrameIter};

fn data_file() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // The worktree lives next to `shared/`; CI clones put `shared/` beside
    // the repository too.
    for dir in manifest.ancestors() {
        let p = dir.join("shared/data/quic-initials-from-pcaps.json");
        if p.exists() {
            return p;
        }
    }
    panic!("shared/data/quic-initials-from-pcaps.json not found above {}", manifest.display());
}

/// The same one-line summary the data file's extractor writes per frame.
fn summarize(f: &Frame<'_>) -> String {
    match f {
        Frame::Padding { len } => format!("PADDING x{len}"),
        Frame::Ping => "PING".to_string(),
        Frame::Ack(ack) => format!("ACK largest={} ranges={}{}", ack.largest(), ack.range_count() + 1, if ack.ecn().is_some() { " ECN" } else { "" }),
        Frame::Crypto { offset, data } => format!("CRYPTO off={offset} len={}", data.len()),
        Frame::ConnectionClose { error_code, .. } => {
            format!("CONNECTION_CLOSE err={:#x}", error_code.0)
        }
        other => panic!("frame not expected in an Initial packet: {other:?}"),
    }
}

#[test]
fn initial_payloads_from_pcaps_parse_completely() {
    let text = std::fs::read_to_string(data_file()).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entries = json["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 37);

    let (mut crypto, mut ack, mut ack_ecn, mut padding, mut ping) = (0, 0, 0, 0, 0);
    for (i, entry) in entries.iter().enumerate() {
        let payload = hex::decode(entry["plaintext_payload_hex"].as_str().unwrap()).unwrap();
        let mut iter = FrameIter::for_packet(&payload, FrameContext::Initial);
        let frames: Vec<Frame<'_>> = iter.by_ref().collect::<Result<_, _>>().unwrap_or_else(|e| panic!("entry {i}: {e:?}"));
        assert_eq!(iter.position(), payload.len(), "entry {i} not consumed");

        let got: Vec<String> = frames.iter().map(summarize).collect();
        let expected: Vec<String> = entry["frames"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        assert_eq!(got, expected, "entry {i} ({})", entry["pcap"]);

        for f in &frames {
            match f {
                Frame::Crypto { .. } => crypto += 1,
                Frame::Ack(a) if a.ecn().is_some() => ack_ecn += 1,
                Frame::Ack(a) => {
                    ack += 1;
                    // Every ACK in these captures acknowledges one range.
                    assert_eq!(a.iter().count(), 1);
                }
                Frame::Padding { .. } => padding += 1,
                Frame::Ping => ping += 1,
                _ => {}
            }
        }

        // Re-encoding the frames gives back the payload byte for byte: the
        // encoders' choices match what these stacks sent.
        let mut out = vec![0u8; payload.len()];
        let mut w = Writer::new(&mut out);
        for f in &frames {
            f.encode(&mut w).unwrap();
        }
        assert_eq!(w.written(), &payload[..], "entry {i} re-encoding");
    }
    // Totals over the file, from its frame summaries.
    assert_eq!((crypto, ack, ack_ecn, padding, ping), (44, 20, 1, 31, 5));
}

#[test]
fn the_doq_ack_ecn_entry() {
    let text = std::fs::read_to_string(data_file()).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entry = json["entries"].as_array().unwrap().iter().find(|e| e["frames"][0].as_str().unwrap().ends_with("ECN")).unwrap();
    let payload = hex::decode(entry["plaintext_payload_hex"].as_str().unwrap()).unwrap();
    let first = FrameIter::new(&payload).next().unwrap().unwrap();
    let Frame::Ack(ack) = first else { panic!("not an ACK: {first:?}") };
    assert_eq!(ack.largest(), 94014);
    assert!(ack.ecn().is_some());
    assert_eq!(ack.iter().next().map(|r| *r.end()), Some(94014));
}
