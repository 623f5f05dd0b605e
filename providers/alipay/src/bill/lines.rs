//! The lines of a bill entry, GBK-decoded one at a time into reused buffers, so memory stays
//! flat in the size of the file.

use std::io::{BufRead, BufReader, ErrorKind, Read};

use encoding_rs::{DecoderResult, GBK};

use super::BillError;

/// A longer line is refused rather than buffered: a row is a few hundred bytes, and memory must
/// stay flat whatever the file holds.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The entry's lines, decoded one at a time into a reused buffer.
pub(super) struct Lines<'a> {
    source: Box<dyn BufRead + 'a>,
    raw: Vec<u8>,
    text: String,
    /// The number of the line last read, from 1.
    pub(super) number: u64,
}

impl<'a> Lines<'a> {
    pub(super) fn new(reader: impl Read + 'a) -> Lines<'a> {
        Lines {
            source: Box::new(BufReader::with_capacity(64 * 1024, reader)),
            raw: Vec::new(),
            text: String::new(),
            number: 0,
        }
    }

    /// The next line's number and text, without its line end; `None` at the end of the entry.
    pub(super) fn next(&mut self) -> Result<Option<(u64, &str)>, BillError> {
        self.raw.clear();
        loop {
            let available = match self.source.fill_buf() {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(BillError::Read(e)),
            };
            if available.is_empty() {
                if self.raw.is_empty() {
                    return Ok(None);
                }
                break;
            }
            let (taken, complete) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if self.raw.len() + taken > MAX_LINE_BYTES {
                return Err(BillError::LineTooLong {
                    line: self.number + 1,
                });
            }
            self.raw.extend_from_slice(&available[..taken]);
            self.source.consume(taken);
            if complete {
                break;
            }
        }
        self.number += 1;
        let mut bytes = self.raw.as_slice();
        bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        // Splitting the raw bytes at `\n` before decoding is exact: in GBK (and GB18030, which
        // encoding_rs's GBK decoder is) every byte of a multi-byte character is ≥ 0x30, so 0x0A
        // is always a line end. A character cut by a line end is malformed and refused below.
        let mut decoder = GBK.new_decoder_without_bom_handling();
        self.text.clear();
        let capacity = decoder
            .max_utf8_buffer_length_without_replacement(bytes.len())
            .ok_or(BillError::LineTooLong { line: self.number })?;
        self.text.reserve(capacity);
        let (result, _) = decoder.decode_to_string_without_replacement(bytes, &mut self.text, true);
        match result {
            DecoderResult::InputEmpty => Ok(Some((self.number, &self.text))),
            DecoderResult::Malformed(..) | DecoderResult::OutputFull => {
                Err(BillError::Encoding { line: self.number })
            }
        }
    }
}
