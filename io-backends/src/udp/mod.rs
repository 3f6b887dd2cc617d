//! Kernel UDP sockets: setup, ancillary data, batched receive and send.

mod addr;
mod cmsg;
mod hook;
mod recv;
mod send;
mod socket;
mod sockopt;

pub(crate) use addr::{read_sockaddr, zeroed_storage};
#[cfg(test)]
pub(crate) use cmsg::CmsgWriter;
pub(crate) use cmsg::RECV_SPACE;
pub use hook::SocketHook;
pub(crate) use recv::{parse_control, RecvRing};
pub(crate) use send::{SendRing, Transport};
pub use socket::{open_udp_socket, BufferSize, UdpConfig, UdpSocketInfo, DEFAULT_GSO_SEGMENTS, MAX_UDP_PAYLOAD};
pub(crate) use sockopt::{set_int, SO_BUSY_POLL, SO_BUSY_POLL_BUDGET, SO_PREFER_BUSY_POLL};
