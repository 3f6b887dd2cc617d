//! Four-pass encryption (draft-ietf-quic-load-balancers-21 §5.4.2, §5.5.2):
//! a four-round Feistel network over the server ID and nonce, whose round
//! function is AES-128 of one half expanded to a block, for plaintexts of
//! 5..=19 octets other than 16. With an odd length the middle octet is split
//! between the halves: the left half keeps its high nibble, the right half
//! its low one.

use super::{LbKey, MAX_PLAINTEXT};

/// Half of the plaintext, rounded up (§5.4.2 `half_len`).
const MAX_HALF: usize = MAX_PLAINTEXT.div_ceil(2);

/// `expand(length, pass, half)` (§5.4.2): the half in the most significant
/// octets, zeros, then the plaintext length and the pass number.
fn expand(len: usize, pass: u8, half: &[u8]) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..half.len()].copy_from_slice(half);
    b[14] = len as u8;
    b[15] = pass;
    b
}

/// `target ^= truncate(AES(expand(len, pass, input)), half_len)`.
fn round(key: &LbKey, len: usize, pass: u8, input: &[u8], target: &mut [u8]) {
    let mut block = expand(len, pass, input);
    key.encrypt(&mut block);
    for (t, k) in target.iter_mut().zip(block) {
        *t ^= k;
    }
}

/// The two halves of `buf` (the plaintext or ciphertext), with the shared
/// nibble cleared from each when the length is odd.
fn split(buf: &[u8]) -> ([u8; MAX_HALF], [u8; MAX_HALF], usize, bool) {
    let n = buf.len();
    let h = n.div_ceil(2);
    let odd = n % 2 == 1;
    let (mut l, mut r) = ([0u8; MAX_HALF], [0u8; MAX_HALF]);
    l[..h].copy_from_slice(&buf[..h]);
    r[..h].copy_from_slice(&buf[n - h..]);
    if odd {
        clear_left(&mut l[..h]);
        clear_right(&mut r[..h]);
    }
    (l, r, h, odd)
}

/// Clears the last four bits of a left half.
fn clear_left(l: &mut [u8]) {
    if let Some(last) = l.last_mut() {
        *last &= 0xf0;
    }
}

/// Clears the first four bits of a right half.
fn clear_right(r: &mut [u8]) {
    if let Some(first) = r.first_mut() {
        *first &= 0x0f;
    }
}

/// Writes the halves back into `buf`, joining the split nibble.
fn join(buf: &mut [u8], l: &[u8], r: &[u8], odd: bool) {
    let n = buf.len();
    let h = l.len();
    buf[..h].copy_from_slice(l);
    if odd {
        buf[h - 1] = (l[h - 1] & 0xf0) | (r[0] & 0x0f);
        buf[h..].copy_from_slice(&r[1..]);
    } else {
        buf[n - h..].copy_from_slice(r);
    }
}

/// Runs the rounds `passes` in order over `buf`: odd passes expand the
/// left half into the right one, even passes the right into the left
/// (§5.4.2 steps 3–11), clearing the shared nibble after each when the
/// length is odd.
fn feistel(key: &LbKey, buf: &mut [u8], passes: [u8; 4]) {
    let n = buf.len();
    if !(5..=MAX_PLAINTEXT).contains(&n) {
        return;
    }
    let (mut l, mut r, h, odd) = split(buf);
    let (l, r) = (&mut l[..h], &mut r[..h]);
    for pass in passes {
        if pass % 2 == 1 {
            round(key, n, pass, l, r);
            if odd {
                clear_right(r);
            }
        } else {
            round(key, n, pass, r, l);
            if odd {
                clear_left(l);
            }
        }
    }
    join(buf, l, r, odd);
}

/// Encrypts the server ID and nonce in `buf` in place.
pub(super) fn encrypt(key: &LbKey, buf: &mut [u8]) {
    feistel(key, buf, [1, 2, 3, 4]);
}

/// Decrypts in place: the rounds in reverse order (§5.5.2).
pub(super) fn decrypt(key: &LbKey, buf: &mut [u8]) {
    feistel(key, buf, [4, 3, 2, 1]);
}
