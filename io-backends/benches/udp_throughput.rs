//! Datagrams per second over loopback, 1200-byte datagrams, one thread
//! sending and receiving in chunks of 64 (so the receive queue never
//! overflows): `sendto`/`recvfrom` one by one, `sendmmsg`/`recvmmsg` batches,
//! GSO sends received with GRO; and the same two with io_uring (multishot
//! recvmsg into provided buffers, linked SENDMSG batches).
//!
//! Each iteration moves 1024 datagrams; a chunk whose datagrams do not all
//! arrive within 1 s is counted as lost and the run goes on.

use std::hint::black_box;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use io_backends::{Backend, EpollBackend, Interest, Transmit, UdpConfig, UringBackend, UringConfig};

const SIZE: usize = 1200;
const CHUNK: usize = 64;
const PER_ITER: usize = 1024;
const WAIT: Duration = Duration::from_secs(1);

fn one_by_one(tx: &UdpSocket, rx: &UdpSocket, dest: SocketAddr, data: &[u8], buf: &mut [u8]) -> usize {
    let mut lost = 0;
    for _ in 0..PER_ITER / CHUNK {
        for seg in data.chunks(SIZE) {
            if tx.send_to(seg, dest).is_err() {
                lost += 1;
            }
        }
        for _ in 0..CHUNK {
            match rx.recv_from(buf) {
                Ok((n, _)) => {
                    black_box(n);
                }
                Err(_) => lost += 1,
            }
        }
    }
    lost
}

/// Sends one chunk as 64 plain transmits (`segment`: None) or one segmented
/// transmit, and receives until the 64 datagrams are in.
fn batched(tx: &mut dyn Backend, rx: &mut dyn Backend, dest: SocketAddr, data: &[u8], gso: bool) -> usize {
    let mut lost = 0;
    for _ in 0..PER_ITER / CHUNK {
        let mut plain: [Transmit<'_>; CHUNK] = [Transmit { destination: dest, source: None, ecn: None, segment_size: None, contents: &[] }; CHUNK];
        let mut one = [Transmit { destination: dest, source: None, ecn: None, segment_size: Some(SIZE), contents: data }];
        let transmits: &mut [Transmit<'_>] = if gso {
            &mut one
        } else {
            for (t, seg) in plain.iter_mut().zip(data.chunks(SIZE)) {
                t.contents = seg;
            }
            &mut plain
        };
        let mut done = 0;
        while done < transmits.len() {
            match tx.send(&mut transmits[done..]) {
                Ok(n) => done += n,
                Err(_) => break,
            }
            if done < transmits.len() && tx.wait(Interest::WRITABLE, Some(WAIT)).is_err() {
                break;
            }
        }
        let mut got = 0;
        while got < CHUNK {
            match rx.wait(Interest::READABLE, Some(WAIT)) {
                Ok(r) if r.readable => {}
                _ => break,
            }
            let Ok(mut batch) = rx.recv() else { break };
            while let Some((meta, buf)) = batch.next_buffer() {
                got += meta.datagram_count();
                black_box(buf);
            }
        }
        lost += CHUNK.saturating_sub(got);
    }
    lost
}

fn bench(c: &mut Criterion) {
    let data: Vec<u8> = (0..SIZE * CHUNK).map(|i| i as u8).collect();
    let mut g = c.benchmark_group("loopback_1200B");
    g.throughput(Throughput::Elements(PER_ITER as u64));
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));

    {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_read_timeout(Some(WAIT)).expect("timeout");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let dest = rx.local_addr().expect("addr");
        let mut buf = vec![0u8; 65536];
        let mut lost = 0;
        g.bench_function("sendto_recvfrom", |b| b.iter(|| lost += one_by_one(&tx, &rx, dest, &data, &mut buf)));
        eprintln!("sendto_recvfrom: {lost} datagrams lost");
    }

    let plain = UdpConfig { gso: false, gro: false, ..UdpConfig::default() };
    {
        let mut rx = EpollBackend::open("127.0.0.1:0".parse().expect("addr"), &plain).expect("open");
        let mut tx = EpollBackend::open("127.0.0.1:0".parse().expect("addr"), &plain).expect("open");
        let dest = rx.local_addr();
        let mut lost = 0;
        g.bench_function("sendmmsg_recvmmsg", |b| b.iter(|| lost += batched(&mut tx, &mut rx, dest, &data, false)));
        eprintln!("sendmmsg_recvmmsg: {lost} datagrams lost; tx {:?}; rx {:?}", tx.stats(), rx.stats());
    }

    {
        let cfg = UdpConfig::default();
        let mut rx = EpollBackend::open("127.0.0.1:0".parse().expect("addr"), &cfg).expect("open");
        let mut tx = EpollBackend::open("127.0.0.1:0".parse().expect("addr"), &cfg).expect("open");
        let dest = rx.local_addr();
        let caps = (tx.capabilities().gso, rx.capabilities().gro);
        let mut lost = 0;
        g.bench_function("gso_gro", |b| b.iter(|| lost += batched(&mut tx, &mut rx, dest, &data, true)));
        eprintln!("gso_gro (gso, gro) = {caps:?}: {lost} datagrams lost; tx {:?}; rx {:?}", tx.stats(), rx.stats());
    }
    let uring_with = |cfg: &UdpConfig, buffers: u16| {
        UringBackend::open("127.0.0.1:0".parse().expect("addr"), cfg, &UringConfig { buffers, ..UringConfig::default() }).expect("io_uring")
    };
    let uring = |cfg: &UdpConfig| uring_with(cfg, UringConfig::default().buffers);
    {
        let mut rx = uring(&plain);
        let mut tx = uring(&plain);
        let dest = rx.local_addr();
        let mut lost = 0;
        g.bench_function("io_uring_recvmsg_multi_sendmsg", |b| b.iter(|| lost += batched(&mut tx, &mut rx, dest, &data, false)));
        eprintln!(
            "io_uring_recvmsg_multi_sendmsg: {lost} datagrams lost; tx {:?} {:?}; rx {:?} {:?}",
            tx.stats(),
            tx.uring_stats(),
            rx.stats(),
            rx.uring_stats()
        );
    }

    {
        let cfg = UdpConfig::default();
        let mut rx = uring(&cfg);
        let mut tx = uring(&cfg);
        let dest = rx.local_addr();
        let caps = (tx.capabilities().gso, rx.capabilities().gro);
        let mut lost = 0;
        g.bench_function("io_uring_gso_gro", |b| b.iter(|| lost += batched(&mut tx, &mut rx, dest, &data, true)));
        eprintln!(
            "io_uring_gso_gro (gso, gro) = {caps:?}: {lost} datagrams lost; tx {:?} {:?}; rx {:?} {:?}",
            tx.stats(),
            tx.uring_stats(),
            rx.stats(),
            rx.uring_stats()
        );
    }
    {
        // Few buffers: each GRO buffer is filled to 64 KiB here, and the
        // ring hands buffers out in FIFO order, so 256 of them would cycle
        // 17 MB through the cache where 16 stay warm. The default backend
        // shrinks its window of offered buffers to 16 after warm-up; this
        // one has only 16 from the start.
        let cfg = UdpConfig::default();
        let mut rx = uring_with(&cfg, 16);
        let mut tx = uring_with(&cfg, 16);
        let dest = rx.local_addr();
        let mut lost = 0;
        g.bench_function("io_uring_gso_gro_16_buffers", |b| b.iter(|| lost += batched(&mut tx, &mut rx, dest, &data, true)));
        eprintln!("io_uring_gso_gro_16_buffers: {lost} datagrams lost; rx {:?}", rx.uring_stats());
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
