//! What a bill may cost before it is refused (DESIGN.md §10, `[reconciliation] max_bill_bytes`):
//! the bytes downloaded, and per reading pass the bytes decompressed and the lines, so a
//! broken bill server, a tampered download or a gzip/ZIP bomb fills neither the disk nor the
//! CPU. A run that is dropped (its request cancelled or timed out) stops its reading thread
//! through the same readers.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A real bill row is well over this many bytes (WeChat's ~300, Alipay's ~250): the line bound
/// is `max_bill_bytes / MIN_LINE_BYTES`, far above any real bill's lines and far below what a
/// file of blank lines of that size holds.
pub const MIN_LINE_BYTES: u64 = 64;

/// The bounds of one run, from `[reconciliation] max_bill_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillLimits {
    /// Bytes downloaded, and bytes decompressed per reading pass.
    pub max_bytes: u64,
    /// Lines per reading pass.
    pub max_lines: u64,
}

impl BillLimits {
    pub fn from_max_bill_bytes(max_bytes: u64) -> BillLimits {
        BillLimits {
            max_bytes,
            max_lines: max_bytes / MIN_LINE_BYTES,
        }
    }
}

/// Which bound a bill went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Exceeded {
    #[error("the download is larger than max_bill_bytes ({0} bytes)")]
    Download(u64),
    #[error("the bill decompresses to more than max_bill_bytes ({0} bytes)")]
    Decompressed(u64),
    #[error("the bill has more than {0} lines (max_bill_bytes / {MIN_LINE_BYTES})")]
    Lines(u64),
}

/// The reading was stopped because its run was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the reconciliation was cancelled")]
pub struct Cancelled;

/// Set once the run that owns it is dropped; its readers fail at their next read.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A run's limits and its cancel flag, handed to the provider adapters.
#[derive(Debug, Clone)]
pub struct Bounds {
    pub limits: BillLimits,
    pub cancel: Cancel,
}

impl Bounds {
    pub fn new(limits: BillLimits) -> Bounds {
        Bounds {
            limits,
            cancel: Cancel::default(),
        }
    }

    /// `inner` (a decompressed stream) counted afresh for one reading pass: past the bounds, or
    /// once the run is cancelled, a read fails with an [`std::io::Error`] carrying
    /// [`Exceeded`] or [`Cancelled`], which the provider crates pass on as their read error.
    pub fn reader<R: Read>(&self, inner: R) -> BoundedRead<R> {
        BoundedRead {
            inner,
            limits: self.limits,
            cancel: self.cancel.clone(),
            bytes: 0,
            lines: 0,
        }
    }
}

pub struct BoundedRead<R> {
    inner: R,
    limits: BillLimits,
    cancel: Cancel,
    bytes: u64,
    lines: u64,
}

impl<R: Read> Read for BoundedRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(std::io::Error::other(Cancelled));
        }
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        self.lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        if self.bytes > self.limits.max_bytes {
            return Err(std::io::Error::other(Exceeded::Decompressed(
                self.limits.max_bytes,
            )));
        }
        if self.lines > self.limits.max_lines {
            return Err(std::io::Error::other(Exceeded::Lines(
                self.limits.max_lines,
            )));
        }
        Ok(n)
    }
}

/// Where a bill is downloaded to: a temporary file that refuses to grow past the limit, so
/// the download stops there (the providers' clients stream into it chunk by chunk).
pub struct BillSink {
    file: std::fs::File,
    bounds: Bounds,
    written: u64,
    exceeded: bool,
}

impl BillSink {
    pub fn new(file: std::fs::File, bounds: Bounds) -> BillSink {
        BillSink {
            file,
            bounds,
            written: 0,
            exceeded: false,
        }
    }

    pub fn file(&mut self) -> &mut std::fs::File {
        &mut self.file
    }

    pub fn bounds(&self) -> &Bounds {
        &self.bounds
    }

    /// Whether a write was refused for going past the limit: a failed download is then the
    /// bill's fault, not the provider's.
    pub fn exceeded(&self) -> Option<Exceeded> {
        self.exceeded
            .then_some(Exceeded::Download(self.bounds.limits.max_bytes))
    }

    pub fn into_file(self) -> std::fs::File {
        self.file
    }
}

impl Write for BillSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = self.bounds.limits.max_bytes - self.written;
        if buf.len() as u64 > room {
            self.exceeded = true;
            return Err(std::io::Error::other(Exceeded::Download(
                self.bounds.limits.max_bytes,
            )));
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The bound or the cancellation somewhere in `error`'s chain of causes, if that is why a
/// reading pass failed.
pub fn why_stopped(error: &(dyn std::error::Error + 'static)) -> Option<Stopped> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            if let Some(x) = inner.downcast_ref::<Exceeded>() {
                return Some(Stopped::Exceeded(*x));
            }
            if inner.downcast_ref::<Cancelled>().is_some() {
                return Some(Stopped::Cancelled);
            }
        }
        if let Some(x) = e.downcast_ref::<Exceeded>() {
            return Some(Stopped::Exceeded(*x));
        }
        next = e.source();
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Exceeded(Exceeded),
    Cancelled,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_bytes: u64) -> BillLimits {
        BillLimits::from_max_bill_bytes(max_bytes)
    }

    fn stopped(result: std::io::Result<u64>) -> Option<Stopped> {
        let error = result.expect_err("refused");
        why_stopped(&error)
    }

    #[test]
    fn a_pass_stops_past_its_bytes_or_its_lines() {
        let bounds = Bounds::new(limits(64 * 100));
        // Long lines: the bytes bound.
        let text = vec![b'x'; 64 * 100 + 1];
        assert_eq!(
            stopped(std::io::copy(
                &mut bounds.reader(&text[..]),
                &mut std::io::sink()
            )),
            Some(Stopped::Exceeded(Exceeded::Decompressed(6400)))
        );
        // Blank lines: the lines bound long before the bytes bound.
        let blank = [b'\n'; 101];
        assert_eq!(
            stopped(std::io::copy(
                &mut bounds.reader(&blank[..]),
                &mut std::io::sink()
            )),
            Some(Stopped::Exceeded(Exceeded::Lines(100)))
        );
        // Exactly at both bounds: read through, and a new pass counts afresh.
        let fits = [vec![b'x'; 6300], vec![b'\n'; 100]].concat();
        for _ in 0..2 {
            assert_eq!(
                std::io::copy(&mut bounds.reader(&fits[..]), &mut std::io::sink()).unwrap(),
                6400
            );
        }
    }

    #[test]
    fn a_cancelled_run_stops_its_readers() {
        let bounds = Bounds::new(limits(1 << 20));
        let mut reader = bounds.reader(&b"a\nb\n"[..]);
        let mut one = [0u8; 1];
        assert_eq!(reader.read(&mut one).unwrap(), 1);
        bounds.cancel.cancel();
        let error = reader.read(&mut one).unwrap_err();
        assert_eq!(why_stopped(&error), Some(Stopped::Cancelled));
    }

    #[test]
    fn the_sink_refuses_to_grow_past_the_limit() {
        let file = tempfile::tempfile().unwrap();
        let mut sink = BillSink::new(file, Bounds::new(limits(10)));
        sink.write_all(b"0123456789").unwrap();
        assert_eq!(sink.exceeded(), None);
        assert!(sink.write_all(b"x").is_err());
        assert_eq!(sink.exceeded(), Some(Exceeded::Download(10)));
        assert_eq!(sink.into_file().metadata().unwrap().len(), 10);
    }
}
