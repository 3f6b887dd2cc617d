//! How a server's workers make their connection IDs: the layout the eBPF
//! steering reads (a worker byte), plaintext QUIC-LB with a configured
//! server ID, or encrypted QUIC-LB (draft-ietf-quic-load-balancers-21).

use super::{LbConfig, LbConfigError, LbEncoder};
use crate::cid_gen::{ConnectionIdGenerator, RoutableCidGenerator};

/// A server's connection ID format.
#[derive(Debug, Clone, Default)]
pub enum ServerCidFormat {
    /// 8-octet IDs carrying the worker byte, no server ID.
    #[default]
    Workers,
    /// Plaintext QUIC-LB (§5.3 without a key): config rotation, the server
    /// ID, then the worker byte and a random nonce (§7.2 server process
    /// demultiplexing), `len` octets in all.
    Plaintext { rotation: u8, server_id: Vec<u8>, len: usize },
    /// Encrypted QUIC-LB: the server ID and a nonce under the shared key.
    /// The worker is not visible, so the kernel cannot steer by it.
    Encrypted { config: Box<LbConfig>, server_id: Vec<u8> },
}

impl ServerCidFormat {
    /// Plaintext IDs for `server_id`, long enough for the worker byte and
    /// a nonce of at least six octets (and at least 8 octets in all).
    pub fn plaintext(rotation: u8, server_id: &[u8]) -> Result<Self, LbConfigError> {
        let len = (server_id.len() + 8).max(8);
        let f = Self::Plaintext { rotation, server_id: server_id.to_vec(), len };
        f.generator(0)?;
        Ok(f)
    }

    /// Encrypted IDs for `server_id`: a nonce that makes the block 16
    /// octets (one AES pass, §5.4.1) when the server ID leaves room for
    /// four, else the 4-octet minimum (four passes).
    pub fn encrypted(rotation: u8, server_id: &[u8], key: &[u8; 16]) -> Result<Self, LbConfigError> {
        let nonce = if server_id.len() <= 12 { 16 - server_id.len() } else { super::MIN_NONCE };
        let config = LbConfig::new(rotation, server_id.len(), nonce, Some(key))?;
        let f = Self::Encrypted { config: Box::new(config), server_id: server_id.to_vec() };
        f.generator(0)?;
        Ok(f)
    }

    /// The generator of worker `worker`.
    pub fn generator(&self, worker: u8) -> Result<Box<dyn ConnectionIdGenerator>, LbConfigError> {
        Ok(match self {
            ServerCidFormat::Workers => Box::new(RoutableCidGenerator::for_worker(worker)),
            ServerCidFormat::Plaintext { rotation, server_id, len } => {
                if server_id.is_empty() {
                    return Err(LbConfigError::EmptyServerId);
                }
                if *rotation >= super::UNROUTABLE_ROTATION {
                    return Err(LbConfigError::ReservedRotation);
                }
                Box::new(RoutableCidGenerator::new(*rotation, server_id, worker, *len).map_err(|_| LbConfigError::TooLong)?)
            }
            ServerCidFormat::Encrypted { config, server_id } => Box::new(LbEncoder::new((**config).clone(), server_id)?),
        })
    }

    /// Where the worker byte sits and how long the IDs are, for the eBPF
    /// steering program; `None` when the worker is not visible.
    pub fn worker_layout(&self) -> Option<(usize, usize)> {
        match self {
            ServerCidFormat::Workers | ServerCidFormat::Plaintext { .. } => {
                let g = self.generator(0).ok()?;
                let offset = match self {
                    ServerCidFormat::Plaintext { server_id, .. } => 1 + server_id.len(),
                    _ => RoutableCidGenerator::for_worker(0).worker_id_offset(),
                };
                Some((offset, g.cid_len()))
            }
            ServerCidFormat::Encrypted { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rand::SeededRandom;

    #[test]
    fn formats_make_routable_ids() {
        let mut rng = SeededRandom::new(5);
        let p = ServerCidFormat::plaintext(1, &[0xaa, 0xbb]).unwrap();
        assert_eq!(p.worker_layout(), Some((3, 10)));
        let cid = p.generator(4).unwrap().generate(&mut rng);
        assert_eq!((cid.len(), cid[0] >> 5, &cid[1..3], cid[3]), (10, 1, &[0xaa, 0xbb][..], 4));
        let lb = LbConfig::new(1, 2, 7, None).unwrap();
        assert_eq!(lb.decode(&cid).unwrap().as_slice(), &[0xaa, 0xbb], "a QUIC-LB load balancer reads the server ID");
        let e = ServerCidFormat::encrypted(2, &[1, 2, 3], &[9; 16]).unwrap();
        assert_eq!(e.worker_layout(), None);
        let cid = e.generator(0).unwrap().generate(&mut rng);
        assert_eq!(cid.len(), 17, "single pass");
        if let ServerCidFormat::Encrypted { config, .. } = &e {
            assert_eq!(config.decode(&cid).unwrap().as_slice(), &[1, 2, 3]);
        }
        assert_eq!(ServerCidFormat::Workers.worker_layout(), Some((1, 8)));
        assert!(ServerCidFormat::plaintext(0, &[]).is_err());
        assert!(ServerCidFormat::plaintext(7, &[1]).is_err());
        assert!(ServerCidFormat::encrypted(0, &[1; 16], &[0; 16]).is_err());
    }
}
