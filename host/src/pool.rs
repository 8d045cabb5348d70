//! Buffers that carry block data, handed back after use so the hot path neither allocates nor
//! faults in fresh pages: a socket read's buffer after the engine took its bytes, a send's
//! after the socket took them, reused for the next socket or disk read.

use std::sync::Mutex;

/// Most buffers kept; beyond this they are freed (bounds what an idle session holds).
const MAX_KEPT: usize = 16;
/// Smaller buffers are messages, not block data: not worth keeping.
const MIN_CAPACITY: usize = 64 * 1024;
/// Larger ones are rare; keeping them would pin memory.
const MAX_CAPACITY: usize = 4 << 20;

/// A bounded stack of reusable buffers, shared by a session's tasks.
#[derive(Default)]
pub(crate) struct BufPool {
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufPool {
    /// A buffer to reuse (its contents are stale), or an empty one.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.free.lock().map(|mut f| f.pop()).ok().flatten().unwrap_or_default()
    }

    /// Hands a buffer back.
    pub(crate) fn put(&self, buf: Vec<u8>) {
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&buf.capacity()) {
            return;
        }
        if let Ok(mut free) = self.free.lock() {
            if free.len() < MAX_KEPT {
                free.push(buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_block_sized_buffers_up_to_a_bound() {
        let pool = BufPool::default();
        pool.put(vec![0; 100]);
        assert!(pool.take().is_empty(), "message-sized buffers are not kept");
        for _ in 0..MAX_KEPT + 5 {
            pool.put(vec![7; 256 * 1024]);
        }
        let mut kept = 0;
        while pool.take().len() == 256 * 1024 {
            kept += 1;
        }
        assert_eq!(kept, MAX_KEPT);
    }
}
