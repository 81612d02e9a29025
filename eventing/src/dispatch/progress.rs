//! Where a trigger stands in its broker's log: what it has read, what is under way, and so the
//! cursor it may commit.

use std::collections::{BTreeSet, VecDeque};

use crate::log::Entry;

/// A trigger's position. Every offset is, in turn, unread (at or after [`Progress::next_read`]),
/// buffered (read, not started), in flight, or finished; the cursor is the smallest offset that
/// is not finished, so that everything below it may be forgotten and everything from it on is
/// delivered again after a restart.
#[derive(Debug)]
pub(super) struct Progress {
    next_read: u64,
    buffer: VecDeque<Entry>,
    in_flight: BTreeSet<u64>,
}

impl Progress {
    /// Nothing finished from `cursor` on.
    pub(super) fn new(cursor: u64) -> Self {
        Progress { next_read: cursor, buffer: VecDeque::new(), in_flight: BTreeSet::new() }
    }

    /// Where the next read of the log starts.
    pub(super) fn next_read(&self) -> u64 {
        self.next_read
    }

    /// Take entries read from [`Progress::next_read`] on, in order. The log skips what
    /// retention removed, so the first may be further on.
    pub(super) fn push(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            if entry.offset < self.next_read {
                continue;
            }
            self.next_read = entry.offset + 1;
            self.buffer.push_back(entry);
        }
    }

    /// Nothing is left to read below `offset` (the broker's first offset: retention or a
    /// deletion of the broker removed the rest).
    pub(super) fn skip_to(&mut self, offset: u64) {
        self.next_read = self.next_read.max(offset);
    }

    pub(super) fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The oldest buffered entry. It counts as finished unless [`Progress::start`]ed.
    pub(super) fn take(&mut self) -> Option<Entry> {
        self.buffer.pop_front()
    }

    /// The delivery of a taken entry began.
    pub(super) fn start(&mut self, offset: u64) {
        self.in_flight.insert(offset);
    }

    /// The delivery of `offset` finished.
    pub(super) fn finish(&mut self, offset: u64) {
        self.in_flight.remove(&offset);
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The smallest offset not finished: the cursor to commit.
    pub(super) fn cursor(&self) -> u64 {
        let buffered = self.buffer.front().map(|entry| entry.offset);
        let in_flight = self.in_flight.first().copied();
        [Some(self.next_read), buffered, in_flight].into_iter().flatten().min().unwrap_or(self.next_read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use time::OffsetDateTime;

    fn entries(offsets: impl IntoIterator<Item = u64>) -> Vec<Entry> {
        offsets
            .into_iter()
            .map(|offset| Entry { offset, appended_at: OffsetDateTime::UNIX_EPOCH, event: Bytes::new() })
            .collect()
    }

    #[test]
    fn the_cursor_is_the_smallest_unfinished_offset() {
        let mut progress = Progress::new(10);
        assert_eq!(progress.cursor(), 10);
        progress.push(entries(10..15));
        assert_eq!((progress.next_read(), progress.buffered(), progress.cursor()), (15, 5, 10));

        // 10 and 11 start, 12 is filtered out (taken, never started), 13 starts.
        for _ in 0..4 {
            let entry = progress.take().unwrap();
            if entry.offset != 12 {
                progress.start(entry.offset);
            }
        }
        assert_eq!((progress.in_flight(), progress.cursor()), (3, 10));
        progress.finish(11);
        assert_eq!(progress.cursor(), 10, "10 is still under way");
        progress.finish(10);
        assert_eq!(progress.cursor(), 13, "12 was finished when it was filtered out");
        progress.finish(13);
        assert_eq!(progress.cursor(), 14, "14 is buffered");
        progress.take().unwrap();
        assert_eq!(progress.cursor(), 15);
        assert!(progress.take().is_none());
    }

    #[test]
    fn reads_that_skip_compacted_offsets_move_on() {
        let mut progress = Progress::new(3);
        progress.push(entries([7, 8]));
        assert_eq!((progress.cursor(), progress.next_read()), (7, 9));
        progress.take();
        progress.take();
        assert_eq!(progress.cursor(), 9);
        progress.skip_to(20);
        assert_eq!(progress.cursor(), 20);
        progress.skip_to(5);
        assert_eq!(progress.cursor(), 20, "never backwards");
        progress.push(entries([19, 20]));
        assert_eq!(
            (progress.buffered(), progress.next_read()),
            (1, 21),
            "an entry already passed is ignored"
        );
    }
}
