//! A pod's log: guest stdout/stderr and host messages in a bounded ring of lines.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStream {
    /// The guest's standard output.
    Stdout,
    /// The guest's standard error.
    Stderr,
    /// The host, about the guest (for example a refused outbound request).
    Host,
}

impl LogStream {
    /// `stdout`, `stderr` or `host`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
            LogStream::Host => "host",
        }
    }
}

/// One line of a pod's log, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the line was completed.
    pub at: SystemTime,
    /// Which stream it was written to.
    pub stream: LogStream,
    /// The text, lossily decoded as UTF-8.
    pub text: String,
}

/// A pod's bounded in-memory log of lines: the guest's stdout and stderr (assembled
/// into lines across writes) and host messages about the guest. Cheap to clone: clones
/// share the same buffer.
///
/// Bounds hold whatever the guest does: at most `capacity_lines` lines and
/// [`PodLog::DEFAULT_MAX_BYTES`] bytes are kept (the oldest go first), lines longer than
/// [`PodLog::MAX_LINE_BYTES`] are split, and a token bucket admits at most
/// `capacity_lines` lines per second (with a burst of as many). Lines over the rate are
/// dropped before anything is allocated for them and counted in [`PodLog::dropped`], so a
/// guest printing in a tight loop costs a mutex and a newline count per write.
#[derive(Clone)]
pub struct PodLog {
    inner: Arc<Mutex<Ring>>,
}

struct Ring {
    lines: VecDeque<LogLine>,
    bytes: usize,
    capacity_lines: usize,
    max_bytes: usize,
    dropped: u64,
    bucket: TokenBucket,
}

/// Admits `rate` lines per second with a burst of `rate`.
struct TokenBucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: usize) -> Self {
        let rate = rate.max(1) as f64;
        TokenBucket { tokens: rate, rate, last: Instant::now() }
    }

    /// Takes up to `want` tokens; returns how many were granted.
    fn take(&mut self, want: usize) -> usize {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.last = now;
        let granted = (self.tokens.floor() as usize).min(want);
        self.tokens -= granted as f64;
        granted
    }
}

impl PodLog {
    /// Default number of lines kept.
    pub const DEFAULT_CAPACITY_LINES: usize = 1000;
    /// Default bound on the bytes of text kept.
    pub const DEFAULT_MAX_BYTES: usize = 1 << 20;
    /// Longest line kept as one; longer output is split into several lines.
    pub const MAX_LINE_BYTES: usize = 16 * 1024;

    /// A log keeping the last `capacity_lines` lines (at least 1) and at most
    /// [`Self::DEFAULT_MAX_BYTES`] bytes, admitting `capacity_lines` lines per second.
    pub fn new(capacity_lines: usize) -> Self {
        Self::with_max_bytes(capacity_lines, Self::DEFAULT_MAX_BYTES)
    }

    /// Like [`PodLog::new`] with an explicit bound on the bytes of text kept.
    pub fn with_max_bytes(capacity_lines: usize, max_bytes: usize) -> Self {
        let capacity_lines = capacity_lines.max(1);
        PodLog {
            inner: Arc::new(Mutex::new(Ring {
                lines: VecDeque::with_capacity(capacity_lines.min(1024)),
                bytes: 0,
                capacity_lines,
                max_bytes: max_bytes.max(1),
                dropped: 0,
                bucket: TokenBucket::new(capacity_lines),
            })),
        }
    }

    /// Appends one line (a trailing newline is trimmed; longer lines are split). Lines
    /// beyond the rate limit are dropped and counted.
    pub fn push(&self, stream: LogStream, text: impl AsRef<str>) {
        let text = text.as_ref();
        let text = text.strip_suffix('\n').unwrap_or(text);
        self.push_bytes(stream, text.as_bytes());
    }

    /// All lines kept, oldest first.
    pub fn lines(&self) -> Vec<LogLine> {
        self.ring().lines.iter().cloned().collect()
    }

    /// Number of lines dropped because they came faster than the rate limit.
    pub fn dropped(&self) -> u64 {
        self.ring().dropped
    }

    /// Maximum number of lines kept.
    pub fn capacity(&self) -> usize {
        self.ring().capacity_lines
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the ring inconsistent in a way that
        // matters for a log, so recover from poisoning.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends one line given as bytes, splitting it if it is too long.
    fn push_bytes(&self, stream: LogStream, line: &[u8]) {
        let chunks = line.len().div_ceil(Self::MAX_LINE_BYTES).max(1);
        let mut ring = self.ring();
        let granted = ring.bucket.take(chunks);
        ring.dropped += (chunks - granted) as u64;
        for chunk in line.chunks(Self::MAX_LINE_BYTES).take(granted) {
            ring.append(stream, chunk);
        }
        if line.is_empty() && granted == 1 {
            ring.append(stream, b"");
        }
    }

    /// Appends the complete lines of `segments` (each ends with `\n` or is the last
    /// segment of a too-long line), admitting as many as the rate limit allows.
    fn push_many(&self, stream: LogStream, lines: &[&[u8]]) {
        let mut ring = self.ring();
        let granted = ring.bucket.take(lines.len());
        ring.dropped += (lines.len() - granted) as u64;
        // Keep the most recent lines when only some are admitted.
        for line in &lines[lines.len() - granted..] {
            ring.append(stream, line);
        }
    }

    /// Counts lines that were dropped without being looked at.
    fn count_dropped(&self, lines: u64) {
        self.ring().dropped += lines;
    }

    /// Whether the rate limit currently admits at least one line.
    fn admits(&self) -> bool {
        let mut ring = self.ring();
        if ring.bucket.take(1) == 1 {
            ring.bucket.tokens += 1.0;
            true
        } else {
            false
        }
    }

    /// A stdout/stderr implementation for one request's guest, writing into this log.
    pub(crate) fn writer(&self, stream: LogStream) -> LogWriter {
        LogWriter {
            shared: Arc::new(WriterShared { log: self.clone(), stream, partial: Mutex::new(Vec::new()) }),
        }
    }
}

impl Ring {
    fn append(&mut self, stream: LogStream, text: &[u8]) {
        let text = String::from_utf8_lossy(text).into_owned();
        self.bytes += text.len();
        self.lines.push_back(LogLine { at: SystemTime::now(), stream, text });
        while self.lines.len() > self.capacity_lines || (self.bytes > self.max_bytes && self.lines.len() > 1)
        {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.text.len();
            }
        }
    }
}

impl std::fmt::Debug for PodLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ring = self.ring();
        f.debug_struct("PodLog")
            .field("lines", &ring.lines.len())
            .field("capacity_lines", &ring.capacity_lines)
            .field("dropped", &ring.dropped)
            .finish()
    }
}

impl Default for PodLog {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY_LINES)
    }
}

/// The guest's stdout or stderr for one request: assembles lines from writes and pushes
/// them into the [`PodLog`]. Every `get-stdout` of the guest gets a clone sharing the
/// partial line; what is left of it is pushed when the request's store is dropped.
#[derive(Clone)]
pub(crate) struct LogWriter {
    shared: Arc<WriterShared>,
}

struct WriterShared {
    log: PodLog,
    stream: LogStream,
    partial: Mutex<Vec<u8>>,
}

impl LogWriter {
    fn write_bytes(&self, mut bytes: &[u8]) {
        let shared = &self.shared;
        let mut partial = shared.partial.lock().unwrap_or_else(|p| p.into_inner());
        // Fast path for a guest spamming: when no line can be admitted, count the
        // completed lines and keep only the (bounded) unfinished one.
        if !shared.log.admits() {
            let newlines = bytes.iter().filter(|b| **b == b'\n').count();
            if newlines > 0 {
                shared.log.count_dropped(newlines as u64);
                partial.clear();
                if let Some(last) = bytes.iter().rposition(|b| *b == b'\n') {
                    bytes = &bytes[last + 1..];
                }
            }
            let room = PodLog::MAX_LINE_BYTES.saturating_sub(partial.len());
            partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
            return;
        }
        let mut complete: Vec<Vec<u8>> = Vec::new();
        while !bytes.is_empty() {
            match bytes.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    let mut line = std::mem::take(&mut *partial);
                    line.extend_from_slice(&bytes[..i]);
                    complete.push(line);
                    bytes = &bytes[i + 1..];
                }
                None => {
                    partial.extend_from_slice(bytes);
                    bytes = &[];
                }
            }
            if partial.len() >= PodLog::MAX_LINE_BYTES {
                complete.push(std::mem::take(&mut *partial));
            }
        }
        if !complete.is_empty() {
            let mut lines: Vec<&[u8]> = Vec::with_capacity(complete.len());
            for line in &complete {
                lines.extend(line.chunks(PodLog::MAX_LINE_BYTES));
                if line.is_empty() {
                    lines.push(b"");
                }
            }
            shared.log.push_many(shared.stream, &lines);
        }
    }
}

impl Drop for WriterShared {
    fn drop(&mut self) {
        let partial = self.partial.get_mut().unwrap_or_else(|p| p.into_inner());
        if !partial.is_empty() {
            self.log.push_bytes(self.stream, partial);
        }
    }
}

/// Bytes the guest may write per `check-write`.
const WRITE_PERMIT: usize = 64 * 1024;

impl OutputStream for LogWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogWriter {
    async fn ready(&mut self) {}
}

impl IsTerminal for LogWriter {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogWriter {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for LogWriter {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(log: &PodLog) -> Vec<String> {
        log.lines().into_iter().map(|l| l.text).collect()
    }

    #[test]
    fn keeps_the_last_lines_within_capacity() {
        let log = PodLog::new(3);
        for i in 0..3 {
            log.push(LogStream::Stdout, format!("line {i}\n"));
        }
        assert_eq!(texts(&log), ["line 0", "line 1", "line 2"]);
        assert_eq!(log.dropped(), 0);
        // The burst is spent: further lines are over the rate and dropped.
        log.push(LogStream::Stderr, "over");
        assert_eq!(log.lines().len(), 3);
        assert_eq!(log.dropped(), 1);
    }

    #[test]
    fn evicts_oldest_when_over_the_byte_bound() {
        let log = PodLog::with_max_bytes(100, 10);
        log.push(LogStream::Stdout, "12345");
        log.push(LogStream::Stdout, "67890");
        log.push(LogStream::Stdout, "abc");
        assert_eq!(texts(&log), ["67890", "abc"]);
    }

    #[test]
    fn writer_assembles_lines_across_writes_and_flushes_the_rest_on_drop() {
        let log = PodLog::new(10);
        {
            let writer = log.writer(LogStream::Stdout);
            let mut a = writer.p2_stream();
            a.write(Bytes::from_static(b"hel")).unwrap();
            let mut b = writer.p2_stream();
            b.write(Bytes::from_static(b"lo\nworld\n\npart")).unwrap();
            assert_eq!(texts(&log), ["hello", "world", ""]);
        }
        assert_eq!(texts(&log), ["hello", "world", "", "part"]);
        assert!(log.lines().iter().all(|l| l.stream == LogStream::Stdout));
    }

    #[test]
    fn writer_splits_overlong_lines() {
        let log = PodLog::new(10);
        let writer = log.writer(LogStream::Stderr);
        let mut s = writer.p2_stream();
        s.write(Bytes::from(vec![b'x'; PodLog::MAX_LINE_BYTES * 2 + 5])).unwrap();
        drop((s, writer));
        let lens: Vec<usize> = log.lines().iter().map(|l| l.text.len()).collect();
        assert_eq!(lens, [PodLog::MAX_LINE_BYTES, PodLog::MAX_LINE_BYTES, 5]);
    }

    #[test]
    fn spamming_is_bounded_and_counted() {
        let log = PodLog::new(100);
        let writer = log.writer(LogStream::Stdout);
        let mut s = writer.p2_stream();
        for _ in 0..10_000 {
            s.write(Bytes::from_static(b"spam spam spam\n")).unwrap();
        }
        assert!(log.lines().len() <= 100);
        assert!(log.dropped() >= 9_000, "dropped {}", log.dropped());
    }
}
