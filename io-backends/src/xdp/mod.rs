//! AF_XDP: one worker per NIC queue, packets handed from the driver to a
//! UMEM shared with this process, no kernel UDP stack on the data path.
//!
//! - [`frame`]: Ethernet/IP/UDP parsing and building (pure functions).
//! - [`peers`]: the MAC (and VLAN, and our address) to answer each peer with.
//! - [`steering`]: the XDP program, attached once per interface and shared
//!   by the workers of the process.
//!
//! Per worker ([`AfXdpBackend`]): a UMEM with fill, completion, RX and TX
//! rings (xsk-rs) bound to (interface, queue = worker id), registered in the
//! program's XSKMAP; and a kernel UDP socket bound to the same port
//! (SO_REUSEPORT group of the workers). The UDP socket keeps the port ours,
//! receives what the program passes to the kernel (CID naming another
//! worker, IP options, no socket on a queue) and sends to peers whose MAC
//! is not known yet or that are not behind the XDP interface.
//!
//! Why a worker only sees its own queue: an XSKMAP redirect delivers only to
//! a socket bound to the (device, queue) the packet arrived on, so the
//! worker on queue q issues CIDs carrying q and RSS keeps a 4-tuple on q
//! (see `bpf/src/bpf/xdp.bpf.c`).

pub mod frame;
pub mod peers;
pub mod steering;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bpf::xdp::{XdpError, XdpMode, XdpSteering};
use quic_core::connection::EcnCodepoint;
use xsk_rs::config::{BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig, XdpFlags};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

use crate::backend::{Backend, BackendError, BackendKind, BackendStats, Capabilities, Interest, Readiness, RecvBatch, RecvEntry, RecvMeta, Transmit};
use crate::busy_poll::OptOutcome;
use crate::epoll::UdpIo;
use crate::udp::{set_int, UdpConfig, SO_BUSY_POLL, SO_BUSY_POLL_BUDGET, SO_PREFER_BUSY_POLL};
use frame::{header_len, parse, write_headers, Outgoing};
use peers::PeerTable;

/// AF_XDP parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfXdpConfig {
    pub ifname: String,
    /// NIC queue to bind (the worker id).
    pub queue: u32,
    pub mode: XdpMode,
    /// UMEM frames; half feed the fill ring, half carry sends.
    pub frames: u32,
    /// 2048 or 4096 bytes (one Ethernet frame each; no multi-buffer).
    pub frame_size: u32,
    /// Descriptors per ring (power of two).
    pub ring_size: u32,
    /// Frames taken from the RX ring per `recv`, and sent per TX wake-up.
    pub batch: usize,
    /// SO_BUSY_POLL on the XSK and a spinning `wait`, in µs (0: off).
    pub busy_poll_us: u32,
    pub busy_poll_budget: u16,
    /// Peers remembered for the link layer.
    pub peer_table: usize,
}

impl AfXdpConfig {
    pub fn new(ifname: &str, queue: u32) -> Self {
        AfXdpConfig {
            ifname: ifname.to_owned(),
            queue,
            mode: XdpMode::Native,
            frames: 4096,
            frame_size: 2048,
            ring_size: 2048,
            batch: 64,
            busy_poll_us: 0,
            busy_poll_budget: 64,
            peer_table: 4096,
        }
    }
}

/// How the XSK was bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    ZeroCopy,
    /// The driver copies frames into the UMEM (veth, drivers without
    /// zero-copy support: bind with XDP_ZEROCOPY fails with EOPNOTSUPP).
    Copy,
}

impl fmt::Display for BindMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BindMode::ZeroCopy => "zero-copy",
            BindMode::Copy => "copy",
        })
    }
}

/// Counters of the AF_XDP path (the kernel-UDP side is in `BackendStats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AfXdpStats {
    pub rx_frames: u64,
    /// Frames that were not Ethernet/IP/UDP as expected (dropped).
    pub rx_unparsed: u64,
    pub tx_frames: u64,
    /// Datagrams too big for one frame (dropped, like an oversized send).
    pub tx_too_big: u64,
    /// Transmits sent through the kernel socket (peer MAC unknown).
    pub tx_via_udp: u64,
    /// Buffers received on the kernel socket (passed by XDP).
    pub udp_rx_buffers: u64,
    pub wakeups: u64,
}

/// Errors opening the AF_XDP backend.
#[derive(Debug)]
pub enum AfXdpError {
    Steering(XdpError),
    Umem(String),
    Socket { queue: u32, source: String },
    Udp(BackendError),
}

impl fmt::Display for AfXdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AfXdpError::Steering(e) => write!(f, "{e}"),
            AfXdpError::Umem(e) => write!(
                f,
                "af_xdp: UMEM: {e} (needs CAP_IPC_LOCK or a larger RLIMIT_MEMLOCK); unset QUICPRO_XDP to use the kernel UDP path"
            ),
            AfXdpError::Socket { queue, source } => write!(
                f,
                "af_xdp: socket on queue {queue}: {source} (does the interface have that many queues? one worker per queue); unset QUICPRO_XDP to use the kernel UDP path"
            ),
            AfXdpError::Udp(e) => write!(f, "af_xdp: kernel UDP socket: {e}"),
        }
    }
}

impl std::error::Error for AfXdpError {}

/// One worker's AF_XDP socket and kernel UDP socket.
pub struct AfXdpBackend {
    cfg: AfXdpConfig,
    steering: Arc<XdpSteering>,
    bind_mode: BindMode,
    busy_poll: OptOutcome,
    umem: Umem,
    fill: FillQueue,
    comp: CompQueue,
    rx: RxQueue,
    tx: TxQueue,
    xsk_fd: RawFd,
    udp: UdpIo,
    local: SocketAddr,
    ifindex: u32,
    peers: PeerTable,
    /// Frames free for sending.
    tx_free: Vec<FrameDesc>,
    /// Frames lent in the last batch (or unusable), going back to the fill ring.
    to_fill: Vec<FrameDesc>,
    scratch: Vec<FrameDesc>,
    tx_batch: Vec<FrameDesc>,
    entries: Vec<RecvEntry>,
    views: Vec<*mut [u8]>,
    /// Frames in the TX ring or the driver, not yet completed.
    tx_outstanding: usize,
    /// Alternate between the XSK and the kernel socket so neither starves.
    udp_turn: bool,
    stats: AfXdpStats,
    xsk_stats: BackendStats,
}

// SAFETY: the raw pointers in `views` point into the UMEM this backend owns
// and are only dereferenced through `&mut self`; xsk-rs's queues are Send.
unsafe impl Send for AfXdpBackend {}

impl fmt::Debug for AfXdpBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfXdpBackend")
            .field("ifname", &self.cfg.ifname)
            .field("queue", &self.cfg.queue)
            .field("bind_mode", &self.bind_mode)
            .field("local", &self.local)
            .finish()
    }
}

fn xsk_err(e: &dyn std::error::Error) -> (Option<i32>, String) {
    let errno = e.source().and_then(|s| s.downcast_ref::<io::Error>()).and_then(io::Error::raw_os_error);
    let text = match e.source() {
        Some(s) => format!("{e}: {s}"),
        None => e.to_string(),
    };
    (errno, text)
}

impl AfXdpBackend {
    /// Opens the kernel UDP socket on `bind`, attaches (or shares) the XDP
    /// program on `cfg.ifname` for its port, and binds an XSK to
    /// `cfg.queue`: zero-copy first, copy on EOPNOTSUPP.
    pub fn open(bind: SocketAddr, udp: &UdpConfig, cfg: &AfXdpConfig) -> Result<Self, AfXdpError> {
        let udp_io = UdpIo::open(bind, udp).map_err(AfXdpError::Udp)?;
        let local = udp_io.info.local_addr;
        let steering = steering::shared(&cfg.ifname, local.port(), cfg.mode).map_err(AfXdpError::Steering)?;
        let ifindex = u32::try_from(steering.ifindex()).unwrap_or(0);

        let q = |n: u32| QueueSize::new(n).map_err(|e| AfXdpError::Umem(e.to_string()));
        let umem_cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(cfg.frame_size).map_err(|e| AfXdpError::Umem(e.to_string()))?)
            .fill_queue_size(q(cfg.ring_size)?)
            .comp_queue_size(q(cfg.ring_size)?)
            .build()
            .map_err(|e| AfXdpError::Umem(e.to_string()))?;
        let frames = NonZeroU32::new(cfg.frames.max(2)).unwrap_or(NonZeroU32::MIN);
        let (umem, mut descs) = Umem::new(umem_cfg, frames, false).map_err(|e| AfXdpError::Umem(xsk_err(&e).1))?;
        let iface =
            Interface::new(std::ffi::CString::new(cfg.ifname.as_str()).map_err(|_| AfXdpError::Steering(XdpError::NoSuchInterface(cfg.ifname.clone())))?);
        let xdp_flags = match cfg.mode {
            XdpMode::Native => XdpFlags::XDP_FLAGS_DRV_MODE,
            XdpMode::Skb => XdpFlags::XDP_FLAGS_SKB_MODE,
        };
        let socket_cfg = |bind: BindFlags| -> Result<SocketConfig, AfXdpError> {
            Ok(SocketConfig::builder()
                .rx_queue_size(q(cfg.ring_size)?)
                .tx_queue_size(q(cfg.ring_size)?)
                // Our program is attached by `steering`; libxdp must not load its own.
                .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
                .xdp_flags(xdp_flags)
                .bind_flags(bind | BindFlags::XDP_USE_NEED_WAKEUP)
                .build())
        };
        // SAFETY: the UMEM outlives the socket (both owned by the backend,
        // and xsk-rs keeps its own reference to the UMEM in the socket).
        let created = unsafe { xsk_rs::Socket::new(socket_cfg(BindFlags::XDP_ZEROCOPY)?, &umem, &iface, cfg.queue) };
        let (created, bind_mode) = match created {
            Ok(s) => (s, BindMode::ZeroCopy),
            Err(e) => {
                let (errno, text) = xsk_err(&e);
                if errno != Some(libc::EOPNOTSUPP) {
                    return Err(AfXdpError::Socket { queue: cfg.queue, source: text });
                }
                // SAFETY: as above.
                let s = unsafe { xsk_rs::Socket::new(socket_cfg(BindFlags::XDP_COPY)?, &umem, &iface, cfg.queue) }
                    .map_err(|e| AfXdpError::Socket { queue: cfg.queue, source: xsk_err(&e).1 })?;
                (s, BindMode::Copy)
            }
        };
        let (tx, rx, rings) = created;
        let Some((mut fill, comp)) = rings else {
            return Err(AfXdpError::Socket { queue: cfg.queue, source: "UMEM already bound to another socket".into() });
        };
        let xsk_fd = rx.fd().as_raw_fd();

        // Half the frames receive, half send.
        let tx_free = descs.split_off(descs.len() / 2);
        // SAFETY: the frames are this UMEM's and none is in use.
        let filled = unsafe { fill.produce(&descs) };
        if filled != descs.len() {
            return Err(AfXdpError::Umem(format!("fill ring took {filled} of {} frames", descs.len())));
        }

        let busy_poll = if cfg.busy_poll_us > 0 {
            let us = libc::c_int::try_from(cfg.busy_poll_us).unwrap_or(libc::c_int::MAX);
            let r = set_int(xsk_fd, libc::SOL_SOCKET, SO_PREFER_BUSY_POLL, 1)
                .and_then(|()| set_int(xsk_fd, libc::SOL_SOCKET, SO_BUSY_POLL, us))
                .and_then(|()| set_int(xsk_fd, libc::SOL_SOCKET, SO_BUSY_POLL_BUDGET, libc::c_int::from(cfg.busy_poll_budget)));
            match r {
                Ok(()) => OptOutcome::Accepted,
                Err(e) => OptOutcome::Rejected(e.raw_os_error().unwrap_or(0)),
            }
        } else {
            OptOutcome::NotTried
        };

        steering.register_socket(cfg.queue, xsk_fd).map_err(AfXdpError::Steering)?;
        let batch = cfg.batch.max(1);
        Ok(AfXdpBackend {
            cfg: cfg.clone(),
            steering,
            bind_mode,
            busy_poll,
            umem,
            fill,
            comp,
            rx,
            tx,
            xsk_fd,
            udp: udp_io,
            local,
            ifindex,
            peers: PeerTable::new(cfg.peer_table),
            tx_free,
            to_fill: Vec::with_capacity(batch * 2),
            scratch: vec![FrameDesc::default(); batch],
            tx_batch: Vec::with_capacity(batch),
            entries: Vec::with_capacity(batch),
            views: Vec::with_capacity(batch),
            tx_outstanding: 0,
            udp_turn: false,
            stats: AfXdpStats::default(),
            xsk_stats: BackendStats::default(),
        })
    }

    pub fn bind_mode(&self) -> BindMode {
        self.bind_mode
    }

    pub fn queue(&self) -> u32 {
        self.cfg.queue
    }

    pub fn xdp_stats(&self) -> AfXdpStats {
        self.stats
    }

    pub fn steering(&self) -> &XdpSteering {
        &self.steering
    }

    /// The start-up line details.
    pub fn describe(&self) -> String {
        format!(
            "{} queue {} ({} bind, xdp {} mode, prog id {}), {}; busy-poll {}",
            self.cfg.ifname,
            self.cfg.queue,
            self.bind_mode,
            self.steering.mode().name(),
            self.steering.prog_id(),
            self.udp.info,
            self.busy_poll
        )
    }

    /// Gives lent frames back to the kernel and wakes it if it asks.
    fn refill(&mut self) {
        if self.to_fill.is_empty() {
            return;
        }
        // SAFETY: these frames came from this UMEM's RX ring and the batch
        // that lent them has ended (this needs `&mut self`).
        let n = unsafe { self.fill.produce(&self.to_fill) };
        if n == self.to_fill.len() {
            self.to_fill.clear();
        }
        if self.fill.needs_wakeup() {
            self.stats.wakeups += 1;
            let _ = self.fill.wakeup(self.rx.fd_mut(), 0);
        }
    }

    /// Frames whose transmission completed become free again.
    fn reap(&mut self) {
        loop {
            // SAFETY: completion descriptors are frames of this UMEM.
            let n = unsafe { self.comp.consume(&mut self.scratch) };
            if n == 0 {
                break;
            }
            self.tx_outstanding = self.tx_outstanding.saturating_sub(n);
            self.tx_free.extend_from_slice(self.scratch.get(..n).unwrap_or(&[]));
        }
    }

    /// Puts the built frames on the TX ring and kicks the kernel.
    fn flush_tx(&mut self) -> io::Result<()> {
        if self.tx_batch.is_empty() {
            return Ok(());
        }
        // SAFETY: the frames are this UMEM's, written and not in use.
        let n = unsafe { self.tx.produce(&self.tx_batch) };
        if n == self.tx_batch.len() {
            self.tx_outstanding += n;
            self.stats.tx_frames += n as u64;
            self.xsk_stats.send_messages += n as u64;
            self.tx_batch.clear();
        } else {
            // The ring is full (it is as large as the TX frame pool, so this
            // only happens if the kernel is behind): keep the frames free.
            self.tx_free.append(&mut self.tx_batch);
        }
        self.kick_tx()
    }

    /// Makes the kernel transmit what is on the TX ring. Copy mode
    /// transmits inside sendto, at most 32 frames per call (the kernel's
    /// TX_BATCH_SIZE), so it is called until the ring is drained (bounded);
    /// zero-copy drivers want the kick only when they sleep.
    fn kick_tx(&mut self) -> io::Result<()> {
        let size = self.cfg.ring_size;
        let copy = self.bind_mode == BindMode::Copy;
        for _ in 0..=(size / 16) {
            if self.tx.nb_free_exact() >= size || !(copy || self.tx.needs_wakeup()) {
                break;
            }
            self.stats.wakeups += 1;
            self.xsk_stats.send_calls += 1;
            self.tx.wakeup()?;
        }
        Ok(())
    }

    /// Takes a batch from the RX ring; returns how many buffers it lends
    /// (frames that did not parse are recycled, not lent).
    fn recv_xsk_counted(&mut self) -> usize {
        self.xsk_stats.recv_calls += 1;
        self.recv_xsk();
        self.entries.len()
    }

    fn recv_xsk(&mut self) -> usize {
        self.entries.clear();
        self.views.clear();
        // SAFETY: descriptors from the RX ring of this UMEM.
        let n = unsafe { self.rx.consume(&mut self.scratch) };
        for i in 0..n {
            let Some(desc) = self.scratch.get_mut(i) else { break };
            self.stats.rx_frames += 1;
            // SAFETY: the frame came out of the RX ring, so the kernel is
            // done with it until we put it in the fill ring again.
            let mut data = unsafe { self.umem.data_mut(desc) };
            let buf = data.contents_mut();
            match parse(buf) {
                Ok(p) => {
                    let dst_ip = p.destination.ip();
                    self.peers.learn(p.source.ip(), p.l2, dst_ip);
                    self.entries.push(RecvEntry {
                        offset: p.payload.start,
                        meta: RecvMeta {
                            source: p.source,
                            destination: Some(dst_ip),
                            ifindex: self.ifindex,
                            ecn: EcnCodepoint::from_bits(p.ecn),
                            len: p.payload.len(),
                            segment_size: None,
                        },
                    });
                    self.views.push(buf as *mut [u8]);
                }
                Err(_) => self.stats.rx_unparsed += 1,
            }
            // Every consumed frame goes back to the fill ring at the next turn.
            self.to_fill.push(*desc);
        }
        n
    }

    /// Sends one transmit's datagrams as frames. Returns `Ok(false)` when it
    /// ran out of frames (contents advanced past what left).
    fn send_frames(&mut self, t: &mut Transmit<'_>, route: peers::PeerRoute) -> io::Result<bool> {
        let seg = match t.segment_size {
            Some(s) if s > 0 => s,
            _ => t.contents.len().max(1),
        };
        let source = SocketAddr::new(t.source.unwrap_or(route.local), self.local.port());
        let out = Outgoing { l2: route.l2, source, destination: t.destination, ecn: t.ecn.map_or(0, EcnCodepoint::bits) };
        let hlen = header_len(t.destination.is_ipv6(), route.l2.vlan_tci.is_some());
        while !t.contents.is_empty() {
            let take = seg.min(t.contents.len());
            let (dgram, rest) = t.contents.split_at(take);
            if self.tx_free.is_empty() {
                self.reap();
            }
            let Some(mut desc) = self.tx_free.pop() else {
                return Ok(false);
            };
            // SAFETY: a free TX frame of this UMEM: not in any ring.
            let mut data = unsafe { self.umem.data_mut(&mut desc) };
            let mut cur = data.cursor();
            let cap = cur.buf_len();
            if hlen + dgram.len() > cap {
                self.stats.tx_too_big += 1;
                self.xsk_stats.send_dropped += 1;
                self.tx_free.push(desc);
                t.contents = rest;
                continue;
            }
            cur.set_pos(hlen + dgram.len());
            let buf = data.contents_mut();
            let built = match buf.get_mut(hlen..hlen + dgram.len()) {
                Some(dst) => {
                    dst.copy_from_slice(dgram);
                    write_headers(buf, &out, dgram.len())
                }
                None => Err(frame::FrameError::NoRoom),
            };
            match built {
                Ok(len) => {
                    data.cursor().set_pos(len);
                    self.tx_batch.push(desc);
                }
                Err(_) => {
                    self.xsk_stats.send_dropped += 1;
                    self.tx_free.push(desc);
                }
            }
            t.contents = rest;
            if self.tx_batch.len() >= self.cfg.batch {
                self.flush_tx()?;
            }
        }
        Ok(true)
    }

    fn ppoll(&mut self, xsk_events: i16, timeout: Option<Duration>) -> io::Result<Readiness> {
        let mut fds = [libc::pollfd { fd: self.xsk_fd, events: xsk_events, revents: 0 }, libc::pollfd { fd: self.udp.fd(), events: libc::POLLIN, revents: 0 }];
        let ts = timeout
            .map(|d| libc::timespec { tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX), tv_nsec: d.subsec_nanos() as libc::c_long });
        let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `fds` has 2 valid entries; the timespec lives across the call.
        let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, ts_ptr, std::ptr::null()) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(Readiness::default());
            }
            return Err(e);
        }
        let bad = libc::POLLERR | libc::POLLHUP;
        Ok(Readiness { readable: fds.iter().any(|f| f.revents & (libc::POLLIN | bad) != 0), writable: fds[0].revents & libc::POLLOUT != 0 })
    }
}

impl Drop for AfXdpBackend {
    fn drop(&mut self) {
        // Packets for this queue go to the kernel again before the socket
        // closes (the XSKMAP would drop its entry anyway on close).
        let _ = self.steering.unregister_socket(self.cfg.queue);
    }
}

impl AsRawFd for AfXdpBackend {
    fn as_raw_fd(&self) -> RawFd {
        self.xsk_fd
    }
}

impl Backend for AfXdpBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::AfXdp
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn capabilities(&self) -> Capabilities {
        let frame = self.cfg.frame_size as usize;
        Capabilities {
            gso: false,
            gro: false,
            max_gso_segments: 1,
            recv_batch: self.cfg.batch,
            send_batch: self.cfg.batch,
            recv_buffer_size: frame.saturating_sub(header_len(true, true)),
            recv_ecn: true,
            recv_destination: true,
        }
    }

    fn stats(&self) -> BackendStats {
        let u = self.udp.stats();
        BackendStats {
            recv_calls: self.xsk_stats.recv_calls + u.recv_calls,
            recv_buffers: self.stats.rx_frames - self.stats.rx_unparsed + u.recv_buffers,
            recv_truncated: u.recv_truncated,
            send_calls: self.xsk_stats.send_calls + u.send_calls,
            send_messages: self.xsk_stats.send_messages + u.send_messages,
            send_dropped: self.xsk_stats.send_dropped + u.send_dropped,
            gso_fallbacks: u.gso_fallbacks,
            gso_fallback_errno: u.gso_fallback_errno,
        }
    }

    fn recv(&mut self) -> io::Result<RecvBatch<'_>> {
        self.refill();
        // Alternate which source is asked first, so neither starves.
        self.udp_turn = !self.udp_turn;
        let fd = self.udp.fd();
        let use_udp = if self.udp_turn { self.udp.recv.fill(fd)? > 0 || self.recv_xsk_counted() == 0 } else { self.recv_xsk_counted() == 0 };
        if use_udp {
            let n = self.udp.recv.fill(fd)?;
            self.stats.udp_rx_buffers += n as u64;
            // Hands out the waiting batch (empty if none).
            return self.udp.recv.recv(fd);
        }
        // SAFETY: `*mut [u8]` and `&mut [u8]` have the same layout. Each view
        // is the data of one frame taken from the RX ring; the kernel does not
        // write it until `refill` puts it back in the fill ring, which needs
        // `&mut self` and so ends this borrow first. Frames do not overlap.
        let views: &mut [&mut [u8]] = unsafe { std::slice::from_raw_parts_mut(self.views.as_mut_ptr().cast::<&mut [u8]>(), self.views.len()) };
        Ok(RecvBatch::from_buffers(views, &self.entries))
    }

    fn send(&mut self, transmits: &mut [Transmit<'_>]) -> io::Result<usize> {
        self.refill();
        self.reap();
        let mut done = 0;
        for i in 0..transmits.len() {
            let Some(t) = transmits.get_mut(i) else { break };
            let route = match t.destination.ip() {
                ip if ip.is_loopback() => None,
                ip => self.peers.get(&ip),
            };
            let Some(route) = route else {
                // Unknown next hop: the kernel resolves it.
                self.flush_tx()?;
                let fd = self.udp.fd();
                let n = self.udp.send.send(fd, std::slice::from_mut(t))?;
                if n == 0 {
                    return Ok(done);
                }
                self.stats.tx_via_udp += 1;
                done += 1;
                continue;
            };
            if !self.send_frames(t, route)? {
                self.flush_tx()?;
                return Ok(done);
            }
            done += 1;
        }
        self.flush_tx()?;
        Ok(done)
    }

    fn wait(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Readiness> {
        self.refill();
        self.kick_tx()?;
        self.reap();
        let writable_now = interest.writable && !self.tx_free.is_empty();
        let readable_now = interest.readable && self.rx.nb_avail(1) > 0;
        if writable_now || readable_now {
            return Ok(Readiness { readable: readable_now, writable: writable_now });
        }
        if self.cfg.busy_poll_us > 0 && interest.readable {
            // Spin: each recvfrom on the XSK runs the driver's NAPI poll
            // (SO_BUSY_POLL / SO_PREFER_BUSY_POLL), then look at the ring.
            let start = Instant::now();
            let spin = Duration::from_micros(u64::from(self.cfg.busy_poll_us));
            let spin = timeout.map_or(spin, |t| t.min(spin));
            loop {
                // SAFETY: zero-length non-blocking recvfrom on our own fd.
                unsafe {
                    libc::recvfrom(self.xsk_fd, std::ptr::null_mut(), 0, libc::MSG_DONTWAIT, std::ptr::null_mut(), std::ptr::null_mut());
                }
                if self.rx.nb_avail(1) > 0 {
                    return Ok(Readiness { readable: true, writable: false });
                }
                if start.elapsed() >= spin {
                    break;
                }
                std::hint::spin_loop();
            }
            let remaining = timeout.map(|t| t.saturating_sub(start.elapsed()));
            return self.wait_poll(interest, remaining);
        }
        self.wait_poll(interest, timeout)
    }

    fn report(&self) -> Option<String> {
        let c = self.steering.counters().map(|c| c.to_string()).unwrap_or_else(|e| e.to_string());
        let s = self.stats;
        Some(format!(
            "af_xdp {} queue {} ({}): rx {} frames ({} unparsed), tx {} frames, {} via udp, {} too big, udp rx {} buffers; {}",
            self.cfg.ifname, self.cfg.queue, self.bind_mode, s.rx_frames, s.rx_unparsed, s.tx_frames, s.tx_via_udp, s.tx_too_big, s.udp_rx_buffers, c
        ))
    }
}

impl AfXdpBackend {
    fn wait_poll(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Readiness> {
        let mut events = 0i16;
        if interest.readable {
            events |= libc::POLLIN;
        }
        if interest.writable {
            events |= libc::POLLOUT;
        }
        // Out of TX frames: completions come quickly (copy mode completes in
        // sendto), so poll in short slices and reap in between.
        let slice = if interest.writable { Some(timeout.map_or(Duration::from_millis(1), |t| t.min(Duration::from_millis(1)))) } else { timeout };
        let mut r = self.ppoll(events, slice)?;
        if interest.writable {
            self.reap();
            r.writable = !self.tx_free.is_empty();
        }
        r.readable = r.readable && interest.readable || self.rx.nb_avail(1) > 0;
        Ok(r)
    }
}
