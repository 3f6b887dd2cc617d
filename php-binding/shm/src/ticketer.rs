//! `SharedTicketer`: stateless session tickets whose keys live in the
//! region, so a ticket issued by one worker decrypts in every other.
//!
//! Ticket format: `key_id (1) || nonce (12) || ChaCha20-Poly1305(plain) ||
//! tag (16)`, with `"quicpro-shm ticket" || key_id` as associated data. The
//! nonce is random per ticket; a key encrypts for at most
//! [`ROTATE_AFTER_SECS`], so random 96-bit nonces stay far from the
//! birthday bound.
//!
//! Rotation and erasure (what rustls asks `lifetime()` to be implemented
//! by): a key encrypts for [`ROTATE_AFTER_SECS`] (6 h) after it became
//! current; the first `encrypt` after that, in any process, replaces it with
//! a fresh key under the lock and keeps the old one as "previous". Any key
//! decrypts only until [`KEY_RETIRE_SECS`] (12 h) after its creation and is
//! zeroed in the region when found expired or when pushed out by the next
//! rotation. So a ticket is accepted for at least 6 h (the advertised
//! [`TICKET_LIFETIME_SECS`]) and at most 12 h.
//!
//! Stateless tickets cannot be single-use, so rustls (RFC 8446 §8.1) never
//! offers 0-RTT with them: use [`SharedSessionCache`](crate::SharedSessionCache)
//! when early data is on.

use core::fmt;
use core::sync::atomic::Ordering;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::layout::{TicketKey, TicketKeys};
use crate::region::{fresh_key, now_secs, Locked, ShmRegion};

/// What `lifetime()` tells clients.
pub const TICKET_LIFETIME_SECS: u32 = 6 * 60 * 60;
/// A key encrypts new tickets for this long.
pub const ROTATE_AFTER_SECS: u64 = 6 * 60 * 60;
/// A key decrypts tickets until this long after its creation.
pub const KEY_RETIRE_SECS: u64 = 2 * ROTATE_AFTER_SECS;

const AAD_LABEL: &[u8; 18] = b"quicpro-shm ticket";
const TAG_LEN: usize = 16;

/// rustls' ticket producer with keys in the shared region.
pub struct SharedTicketer {
    region: ShmRegion,
    rng: SystemRandom,
}

impl fmt::Debug for SharedTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTicketer").field("lifetime", &TICKET_LIFETIME_SECS).finish()
    }
}

fn dead_key() -> TicketKey {
    TicketKey { key: [0; 32], created: 0, id: 0, live: 0, _pad: [0; 6] }
}

fn wipe(k: &mut TicketKey) {
    // Volatile so the compiler cannot drop the store as dead.
    for b in k.key.iter_mut() {
        // SAFETY: b is a valid &mut u8.
        unsafe { core::ptr::write_volatile(b, 0) };
    }
}

fn aad(id: u8) -> [u8; 19] {
    let mut a = [0u8; 19];
    a[..18].copy_from_slice(AAD_LABEL);
    a[18] = id;
    a
}

impl SharedTicketer {
    pub fn new(region: &ShmRegion) -> Self {
        SharedTicketer { region: region.clone(), rng: SystemRandom::new() }
    }

    /// The key block, replaced by a fresh key if its checksum fails.
    fn keys<'a>(&self, l: &'a mut Locked<'_>) -> Option<&'a mut TicketKeys> {
        // SAFETY: the lock is held for the life of `l`, so nobody else
        // touches the key block.
        let seed = l.seed();
        let keys = unsafe { &mut *l.tickets() };
        if keys.sum != keys.checksum(seed) {
            let s = self.region.stats_block();
            s.reinits.fetch_add(1, Ordering::Relaxed);
            keys.current = fresh_key(&self.rng, keys.current.id.wrapping_add(1)).ok()?;
            keys.previous = dead_key();
            keys.sum = keys.checksum(seed);
        }
        Some(keys)
    }

    /// The key to encrypt with now, rotating first if it is due.
    fn encrypting_key(&self) -> Option<TicketKey> {
        let mut l = self.region.locked().ok()?;
        let seed = l.seed();
        let keys = self.keys(&mut l)?;
        let now = now_secs();
        if keys.current.live == 0 || now >= keys.current.created.saturating_add(ROTATE_AFTER_SECS) {
            self.rotate(seed, keys)?;
        }
        Some(keys.current)
    }

    fn rotate(&self, seed: [u64; 2], keys: &mut TicketKeys) -> Option<()> {
        let next = fresh_key(&self.rng, keys.current.id.wrapping_add(1)).ok()?;
        wipe(&mut keys.previous);
        keys.previous = keys.current;
        keys.current = next;
        keys.sum = keys.checksum(seed);
        self.region.stats_block().key_rotations.fetch_add(1, Ordering::Relaxed);
        Some(())
    }

    /// The live, unexpired key with this id.
    fn decrypting_key(&self, id: u8) -> Option<TicketKey> {
        let mut l = self.region.locked().ok()?;
        let seed = l.seed();
        let keys = self.keys(&mut l)?;
        let now = now_secs();
        let mut changed = false;
        for k in [&mut keys.current, &mut keys.previous] {
            if k.live != 0 && now >= k.created.saturating_add(KEY_RETIRE_SECS) {
                wipe(k);
                *k = dead_key();
                changed = true;
            }
        }
        if changed {
            keys.sum = keys.checksum(seed);
        }
        [keys.current, keys.previous].into_iter().find(|k| k.live != 0 && k.id == id)
    }

    /// Test hook: rotates the key now, as if it had reached its age.
    #[doc(hidden)]
    pub fn debug_rotate_now(&self) -> bool {
        let Ok(mut l) = self.region.locked() else { return false };
        let seed = l.seed();
        let Some(keys) = self.keys(&mut l) else { return false };
        self.rotate(seed, keys).is_some()
    }

    fn seal(&self, mut key: TicketKey, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        let sealed = self.rng.fill(&mut nonce).ok().and_then(|_| {
            let k = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key.key).ok()?);
            let mut out = Vec::with_capacity(1 + NONCE_LEN + plain.len() + TAG_LEN);
            out.push(key.id);
            out.extend_from_slice(&nonce);
            out.extend_from_slice(plain);
            let tag = k.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad(key.id)), &mut out[1 + NONCE_LEN..]).ok()?;
            out.extend_from_slice(tag.as_ref());
            Some(out)
        });
        wipe(&mut key);
        sealed
    }

    fn open(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        // Attacker-controlled input: lengths checked before any slicing.
        if cipher.len() < 1 + NONCE_LEN + TAG_LEN {
            return None;
        }
        let (id, rest) = cipher.split_first()?;
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let mut key = self.decrypting_key(*id)?;
        let opened = (|| {
            let k = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key.key).ok()?);
            let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
            let mut buf = sealed.to_vec();
            let n = k.open_in_place(nonce, Aad::from(aad(*id)), &mut buf).ok()?.len();
            buf.truncate(n);
            Some(buf)
        })();
        wipe(&mut key);
        opened
    }
}

impl rustls::server::ProducesTickets for SharedTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        TICKET_LIFETIME_SECS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let key = self.encrypting_key()?;
        let t = self.seal(key, plain)?;
        self.region.stats_block().tickets_issued.fetch_add(1, Ordering::Relaxed);
        Some(t)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let s = self.region.stats_block();
        match self.open(cipher) {
            Some(p) => {
                s.tickets_accepted.fetch_add(1, Ordering::Relaxed);
                Some(p)
            }
            None => {
                s.tickets_rejected.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}
