//! A newline-delimited JSON splitter over a byte stream: pieces arrive cut
//! anywhere; [`LineParser::next_line`] hands out each complete line (LF or
//! CRLF ended, blank lines skipped) without copying when it can.

use bytes::{Bytes, BytesMut};

use crate::sse::{EventTooLarge, MAX_EVENT_BYTES};

#[derive(Debug, Default)]
pub struct LineParser {
    buffer: BytesMut,
    /// Bytes at the front of `buffer` already searched for a line end.
    scanned: usize,
}

impl LineParser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, piece: &[u8]) {
        self.buffer.extend_from_slice(piece);
    }

    /// The next complete, non-blank line.
    pub fn next_line(&mut self) -> Result<Option<Bytes>, EventTooLarge> {
        loop {
            let Some(end) = self.buffer[self.scanned..]
                .iter()
                .position(|&byte| byte == b'\n')
            else {
                self.scanned = self.buffer.len();
                if self.buffer.len() > MAX_EVENT_BYTES {
                    return Err(EventTooLarge);
                }
                return Ok(None);
            };
            let end = self.scanned + end;
            let mut line = self.buffer.split_to(end + 1).freeze();
            self.scanned = 0;
            line.truncate(end);
            if line.ends_with(b"\r") {
                line.truncate(end - 1);
            }
            if !line.trim_ascii().is_empty() {
                return Ok(Some(line));
            }
        }
    }

    /// What is left once the stream has ended: a last line sent without
    /// its newline (blank space does not count).
    pub fn finish(&mut self) -> Option<Bytes> {
        let rest = std::mem::take(&mut self.buffer).freeze();
        self.scanned = 0;
        let rest = rest.slice(
            ..rest.len()
                - rest
                    .iter()
                    .rev()
                    .take_while(|b| b.is_ascii_whitespace())
                    .count(),
        );
        (!rest.is_empty()).then_some(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_cut_anywhere_come_out_whole() {
        let mut parser = LineParser::new();
        parser.push(b"{\"a\":1}\n{\"b\"");
        assert_eq!(
            parser.next_line().unwrap().as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        assert_eq!(parser.next_line().unwrap(), None);
        parser.push(b":2}\r\n\n\n{\"c\":3}");
        assert_eq!(
            parser.next_line().unwrap().as_deref(),
            Some(&b"{\"b\":2}"[..])
        );
        assert_eq!(parser.next_line().unwrap(), None);
        assert_eq!(parser.finish().as_deref(), Some(&b"{\"c\":3}"[..]));
        assert_eq!(parser.finish(), None);
        parser.push(b"  \r\n ");
        assert_eq!(parser.next_line().unwrap(), None);
        assert_eq!(parser.finish(), None);
    }
}
