#!/usr/bin/env python3
"""Decode one QPACK offline-interop file with an independent decoder,
ls-qpack (through pylsqpack), for the h3-core interop test.

usage: decode_qif.py FILE TABLE_CAPACITY MAX_BLOCKED_STREAMS

The file is a sequence of blocks: stream ID (u64 BE), length (u32 BE),
bytes. Stream 0 is the encoder stream; every other block is one encoded
field section for that stream ID.

Prints one JSON object per decoded section, in stream-ID order:
{"stream": N, "headers": [[name_hex, value_hex], ...]}
Exits non-zero (message on stderr) on a decoding error or if a section is
still blocked at the end.
"""
import json
import struct
import sys

import pylsqpack


def main():
    path, table, blocked = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    data = open(path, 'rb').read()
    dec = pylsqpack.Decoder(table, blocked)
    decoded = {}
    pending = set()
    i = 0
    while i < len(data):
        if i + 12 > len(data):
            sys.exit('truncated block header')
        sid, ln = struct.unpack('>QI', data[i:i + 12])
        i += 12
        chunk = data[i:i + ln]
        i += ln
        if len(chunk) != ln:
            sys.exit('truncated block')
        if sid == 0:
            for s in dec.feed_encoder(chunk):
                decoded[s] = dec.resume_header(s)[1]
                pending.discard(s)
        else:
            try:
                decoded[sid] = dec.feed_header(sid, chunk)[1]
            except pylsqpack.StreamBlocked:
                pending.add(sid)
    if pending:
        sys.exit('streams still blocked at end: %s' % sorted(pending))
    for sid in sorted(decoded):
        print(json.dumps({'stream': sid,
                          'headers': [[k.hex(), v.hex()] for k, v in decoded[sid]]}))


if __name__ == '__main__':
    try:
        main()
    except pylsqpack.DecompressionFailed as e:
        sys.exit('DecompressionFailed: %s' % e)
    except pylsqpack.EncoderStreamError as e:
        sys.exit('EncoderStreamError: %s' % e)
