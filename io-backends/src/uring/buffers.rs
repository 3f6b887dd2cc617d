//! The provided-buffer ring: the buffers the kernel fills with datagrams
//! (see the memory protocol in the module above).

use std::alloc::{self, Layout};
use std::io;
use std::mem::{offset_of, size_of};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

/// One descriptor of the provided-buffer ring, `struct io_uring_buf`: the
/// kernel reads them; the `resv` field of entry 0 is the ring's tail, which
/// only we write (`struct io_uring_buf_ring`).
#[repr(C)]
pub(super) struct PbufEntry {
    pub(super) addr: u64,
    pub(super) len: u32,
    pub(super) bid: u16,
    pub(super) resv: u16,
}

// The layout the kernel (and the crate's own view of it) expects.
const _: () = assert!(size_of::<PbufEntry>() == size_of::<BufRingEntry>());
const _: () = assert!(size_of::<PbufEntry>() == 16);
const _: () = assert!(offset_of!(PbufEntry, resv) == 14);

/// The buffers a multishot receive fills and the ring that offers them.
pub(super) struct ProvidedBuffers {
    /// `count` descriptors, page aligned (the kernel maps the ring's pages).
    pub(super) ring: NonNull<PbufEntry>,
    pub(super) ring_layout: Layout,
    /// `count` buffers of `buf_size` bytes.
    pub(super) mem: NonNull<u8>,
    pub(super) mem_layout: Layout,
    pub(super) count: u16,
    pub(super) buf_size: usize,
    /// Next descriptor slot to fill (free-running, wraps at 2^16 like the
    /// kernel's head).
    pub(super) tail: u16,
    /// Buffers offered to the kernel and not yet handed back by a
    /// completion.
    pub(super) in_kernel: u32,
    /// The kernel may still write into the buffers: never free them.
    pub(super) leak: bool,
}

impl ProvidedBuffers {
    pub(super) fn new(count: u16, buf_size: usize) -> io::Result<Self> {
        let nomem = || io::Error::from_raw_os_error(libc::ENOMEM);
        let ring_bytes = usize::from(count) * size_of::<PbufEntry>();
        let ring_layout = Layout::from_size_align(ring_bytes.max(4096), 4096).map_err(|_| nomem())?;
        let mem_bytes = usize::from(count).checked_mul(buf_size).ok_or_else(nomem)?;
        let mem_layout = Layout::from_size_align(mem_bytes.max(1), 4096).map_err(|_| nomem())?;
        // SAFETY: both layouts have a non-zero size.
        let ring = NonNull::new(unsafe { alloc::alloc_zeroed(ring_layout) }.cast::<PbufEntry>()).ok_or_else(nomem)?;
        // SAFETY: as above. Zeroed so every byte lent out is initialised
        // even if the kernel wrote fewer.
        let Some(mem) = NonNull::new(unsafe { alloc::alloc_zeroed(mem_layout) }) else {
            // SAFETY: `ring` was allocated just above with `ring_layout`.
            unsafe { alloc::dealloc(ring.as_ptr().cast(), ring_layout) };
            return Err(nomem());
        };
        Ok(ProvidedBuffers { ring, ring_layout, mem, mem_layout, count, buf_size, tail: 0, in_kernel: 0, leak: false })
    }

    /// Offers buffer `bid` to the kernel (visible after `publish`). The
    /// caller guarantees `bid` is not in the kernel's hands already.
    pub(super) fn push(&mut self, bid: u16) {
        if bid >= self.count || self.in_kernel >= u32::from(self.count) {
            return;
        }
        let slot = usize::from(self.tail & (self.count - 1));
        let addr = self.mem.as_ptr() as u64 + (usize::from(bid) * self.buf_size) as u64;
        // SAFETY: `slot` < count, inside the ring allocation. The slot is
        // not one the kernel may read: fewer than `count` buffers are in
        // its hands and the tail has not been published past this slot.
        // Field writes through raw pointers leave `resv` (entry 0's is the
        // tail the kernel reads) untouched.
        unsafe {
            let e = self.ring.as_ptr().add(slot);
            ptr::addr_of_mut!((*e).addr).write(addr);
            ptr::addr_of_mut!((*e).len).write(u32::try_from(self.buf_size).unwrap_or(u32::MAX));
            ptr::addr_of_mut!((*e).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        self.in_kernel += 1;
    }

    /// Makes the pushed descriptors visible to the kernel.
    pub(super) fn publish(&self) {
        // SAFETY: entry 0's `resv` is the ring tail (struct
        // io_uring_buf_ring); u16-aligned, inside the allocation, and the
        // kernel reads it concurrently, hence the atomic. Release orders
        // the descriptor writes before it.
        let tail = unsafe { &*ptr::addr_of!((*self.ring.as_ptr()).resv).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }

    /// Start of buffer `bid`.
    pub(super) fn buffer(&self, bid: u16) -> Option<*mut u8> {
        (bid < self.count).then(|| self.mem.as_ptr().wrapping_add(usize::from(bid) * self.buf_size))
    }
}

impl Drop for ProvidedBuffers {
    fn drop(&mut self) {
        if self.leak {
            return;
        }
        // SAFETY: allocated in `new` with these layouts; the owner stopped
        // the kernel's use of both (see `Core::drop`).
        unsafe {
            alloc::dealloc(self.ring.as_ptr().cast(), self.ring_layout);
            alloc::dealloc(self.mem.as_ptr(), self.mem_layout);
        }
    }
}
