//! Single-pass encryption (draft-ietf-quic-load-balancers-21 §5.4.1,
//! §5.5.1): a server ID and nonce of exactly 16 octets are one AES-128
//! block, encrypted once.

use super::LbKey;

pub(super) fn encrypt(key: &LbKey, block: &mut [u8]) {
    if let Ok(b) = <&mut [u8; 16]>::try_from(block) {
        key.encrypt(b);
    }
}

pub(super) fn decrypt(key: &LbKey, block: &mut [u8; 16]) {
    key.decrypt(block);
}
