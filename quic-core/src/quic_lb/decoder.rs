//! What a load balancer runs on each packet (draft-ietf-quic-load-balancers
//! §3.1, §5.5): the first three bits of the Destination Connection ID choose
//! the configuration, which yields the server ID; 0b111 and unknown
//! configurations are unroutable (the load balancer then falls back, §4.3).

use super::{LbConfig, ServerId, UNROUTABLE_ROTATION};

/// Up to seven configurations, one per config rotation codepoint.
#[derive(Debug, Clone, Default)]
pub struct LbDecoder {
    configs: [Option<LbConfig>; UNROUTABLE_ROTATION as usize],
}

impl LbDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs `config` at its codepoint, replacing an older one (§3.1).
    pub fn insert(&mut self, config: LbConfig) {
        if let Some(slot) = self.configs.get_mut(usize::from(config.rotation())) {
            *slot = Some(config);
        }
    }

    /// Removes the configuration at `rotation`.
    pub fn remove(&mut self, rotation: u8) {
        if let Some(slot) = self.configs.get_mut(usize::from(rotation)) {
            *slot = None;
        }
    }

    /// The server `dcid` routes to, or `None` when it is unroutable: empty,
    /// 0b111, a codepoint without configuration, or too short for it.
    /// Bounded work and no panic for any input.
    pub fn server_id(&self, dcid: &[u8]) -> Option<ServerId> {
        let rotation = dcid.first()? >> 5;
        self.configs.get(usize::from(rotation))?.as_ref()?.decode(dcid)
    }
}
