//! The connections with work since their transmits were last drained: the
//! ones a datagram, a timer or the application touched. `poll_transmit`
//! walks only these, so a turn's cost follows events, not the number of
//! connections held.

use super::ConnectionHandle;

#[derive(Debug, Default)]
pub(crate) struct ActiveSet {
    /// In the order they became active; `list[head..]` is the live part.
    list: Vec<ConnectionHandle>,
    head: usize,
    /// `member[h]`: `h` is in `list[head..]` (handles are slab indices).
    member: Vec<bool>,
}

impl ActiveSet {
    /// Adds `h` once.
    pub(crate) fn mark(&mut self, h: ConnectionHandle) {
        if h.0 >= self.member.len() {
            self.member.resize(h.0 + 1, false);
        }
        if let Some(m) = self.member.get_mut(h.0) {
            if !*m {
                *m = true;
                self.list.push(h);
            }
        }
    }

    pub(crate) fn as_slice(&self) -> &[ConnectionHandle] {
        self.list.get(self.head..).unwrap_or(&[])
    }

    pub(crate) fn front(&self) -> Option<ConnectionHandle> {
        self.list.get(self.head).copied()
    }

    /// Drops the front entry; the storage is reused once the list empties.
    pub(crate) fn pop_front(&mut self) {
        let Some(h) = self.front() else { return };
        if let Some(m) = self.member.get_mut(h.0) {
            *m = false;
        }
        self.head += 1;
        if self.head >= self.list.len() {
            self.list.clear();
            self.head = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_once_in_order_and_reuses_storage() {
        let mut a = ActiveSet::default();
        a.mark(ConnectionHandle(3));
        a.mark(ConnectionHandle(1));
        a.mark(ConnectionHandle(3));
        assert_eq!(a.as_slice(), &[ConnectionHandle(3), ConnectionHandle(1)]);
        a.pop_front();
        // Popped, so it may be marked again (at the back).
        a.mark(ConnectionHandle(3));
        assert_eq!(a.as_slice(), &[ConnectionHandle(1), ConnectionHandle(3)]);
        a.pop_front();
        a.pop_front();
        assert!(a.as_slice().is_empty());
        assert!(a.list.capacity() > 0);
        assert_eq!(a.head, 0);
    }
}
