//! A Server-Sent Events parser over a byte stream.
//!
//! Bytes arrive in pieces cut anywhere (inside a line, between CR and LF,
//! inside a UTF-8 sequence); [`SseParser::push`] takes each piece and
//! [`SseParser::next_event`] hands out every event completed so far. Lines
//! end with LF, CRLF or CR; `:` lines are comments; several `data:` lines
//! join with `\n`; an event without data is not dispatched. A single-line
//! payload is handed out without copying.

use bytes::{Buf, Bytes, BytesMut};

/// Appends one event named by its data's `type` field (`event: <type>`),
/// as Anthropic's and OpenAI's Responses streams name theirs.
pub fn write_named_event(out: &mut BytesMut, data: &serde_json::Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(data["type"].as_str().unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// The data of each event [`write_named_event`] wrote, for tests.
#[cfg(test)]
pub(crate) fn read_named_events(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(bytes)
        .split("\n\n")
        .filter(|frame| !frame.is_empty())
        .filter_map(|frame| frame.lines().find_map(|line| line.strip_prefix("data: ")))
        .map(|data| serde_json::from_str(data).unwrap_or_default())
        .collect()
}

/// The longest line or event payload accepted, so a broken upstream cannot
/// grow the buffer without bound.
pub const MAX_EVENT_BYTES: usize = 16 << 20;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, when the upstream named the event type.
    pub event: Option<Bytes>,
    /// The joined `data:` lines.
    pub data: Bytes,
}

/// A line or event over [`MAX_EVENT_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("server-sent event larger than {MAX_EVENT_BYTES} bytes")]
pub struct EventTooLarge;

#[derive(Debug, Default)]
pub struct SseParser {
    buffer: BytesMut,
    /// Bytes at the front of `buffer` already searched for a line end.
    scanned: usize,
    /// The last line ended with CR at the end of the input seen so far; an
    /// LF arriving next belongs to that line end.
    skip_lf: bool,
    /// Whether the start of the stream was checked for a byte order mark.
    started: bool,
    data: Option<Bytes>,
    /// `data` joined with later data lines, once there is more than one.
    joined: Option<BytesMut>,
    event: Option<Bytes>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the next piece of the stream.
    pub fn push(&mut self, piece: &[u8]) {
        self.buffer.extend_from_slice(piece);
    }

    /// The next complete event, if the input so far holds one.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, EventTooLarge> {
        if !self.started {
            if self.buffer.len() < BOM.len() && BOM.starts_with(&self.buffer) {
                return Ok(None);
            }
            if self.buffer.starts_with(BOM) {
                self.buffer.advance(BOM.len());
            }
            self.started = true;
        }
        while let Some(line) = self.next_line() {
            if let Some(event) = self.process_line(line)? {
                return Ok(Some(event));
            }
        }
        if self.buffer.len() > MAX_EVENT_BYTES {
            return Err(EventTooLarge);
        }
        Ok(None)
    }

    /// Whether bytes of an unfinished line or event are waiting.
    pub fn has_partial_event(&self) -> bool {
        !self.buffer.is_empty() || self.data.is_some() || self.event.is_some()
    }

    fn next_line(&mut self) -> Option<Bytes> {
        if self.skip_lf && !self.buffer.is_empty() {
            if self.buffer[0] == b'\n' {
                self.buffer.advance(1);
            }
            self.skip_lf = false;
        }
        let found = self.buffer[self.scanned..]
            .iter()
            .position(|&byte| byte == b'\n' || byte == b'\r');
        let Some(offset) = found else {
            self.scanned = self.buffer.len();
            return None;
        };
        let end = self.scanned + offset;
        self.scanned = 0;
        let line = self.buffer.split_to(end).freeze();
        let terminator = self.buffer[0];
        self.buffer.advance(1);
        if terminator == b'\r' {
            match self.buffer.first() {
                Some(b'\n') => self.buffer.advance(1),
                Some(_) => {}
                None => self.skip_lf = true,
            }
        }
        Some(line)
    }

    fn process_line(&mut self, line: Bytes) -> Result<Option<SseEvent>, EventTooLarge> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line[0] == b':' {
            return Ok(None);
        }
        let (field, value) = match line.iter().position(|&byte| byte == b':') {
            Some(colon) => {
                let skip = if line.get(colon + 1) == Some(&b' ') {
                    2
                } else {
                    1
                };
                (line.slice(..colon), line.slice(colon + skip..))
            }
            None => (line.clone(), Bytes::new()),
        };
        match &field[..] {
            b"data" => self.append_data(value)?,
            b"event" => self.event = Some(value),
            _ => {}
        }
        Ok(None)
    }

    fn append_data(&mut self, value: Bytes) -> Result<(), EventTooLarge> {
        if let Some(joined) = &mut self.joined {
            if joined.len() + 1 + value.len() > MAX_EVENT_BYTES {
                return Err(EventTooLarge);
            }
            joined.extend_from_slice(b"\n");
            joined.extend_from_slice(&value);
        } else if let Some(first) = self.data.take() {
            let mut joined = BytesMut::with_capacity(first.len() + 1 + value.len());
            joined.extend_from_slice(&first);
            joined.extend_from_slice(b"\n");
            joined.extend_from_slice(&value);
            self.joined = Some(joined);
        } else {
            self.data = Some(value);
        }
        Ok(())
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        let data = match (self.joined.take(), self.data.take()) {
            (Some(joined), _) => joined.freeze(),
            (None, Some(data)) => data,
            (None, None) => return None,
        };
        Some(SseEvent { event, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_of(pieces: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for piece in pieces {
            parser.push(piece);
            while let Some(event) = parser.next_event().unwrap() {
                events.push(event);
            }
        }
        events
    }

    fn data_of(pieces: &[&[u8]]) -> Vec<String> {
        events_of(pieces)
            .into_iter()
            .map(|event| String::from_utf8(event.data.to_vec()).unwrap())
            .collect()
    }

    const STREAM: &[u8] =
        b"data: {\"a\":1}\n\n: keep-alive\n\ndata: {\"b\":\"\xC3\xA9\"}\n\ndata: [DONE]\n\n";

    #[test]
    fn parses_whole_input() {
        assert_eq!(
            data_of(&[STREAM]),
            ["{\"a\":1}", "{\"b\":\"\u{e9}\"}", "[DONE]"]
        );
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let whole = data_of(&[STREAM]);
        for cut in 0..=STREAM.len() {
            assert_eq!(
                data_of(&[&STREAM[..cut], &STREAM[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(data_of(&bytes), whole);
    }

    #[test]
    fn crlf_and_lone_cr_end_lines_at_any_split() {
        let input = b"data: one\r\n\r\ndata: two\r\rdata: three\n\n";
        for cut in 0..=input.len() {
            assert_eq!(
                data_of(&[&input[..cut], &input[cut..]]),
                ["one", "two", "three"],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn joins_multi_line_data_and_keeps_event_names() {
        let events = events_of(&[b"event: message_delta\ndata: first\ndata:second\ndata\n\n"]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, Bytes::from_static(b"first\nsecond\n"));
        assert_eq!(events[0].event, Some(Bytes::from_static(b"message_delta")));
    }

    #[test]
    fn ignores_comments_unknown_fields_and_dataless_events() {
        assert_eq!(
            data_of(&[b": hello\nid: 7\nretry: 10\nevent: ping\n\ndata:x\n\n"]),
            ["x"]
        );
        assert_eq!(data_of(&[b"data:\n\n"]), [""]);
    }

    #[test]
    fn strips_a_leading_byte_order_mark_even_when_split() {
        assert_eq!(data_of(&[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"]), ["x"]);
    }

    #[test]
    fn holds_an_unfinished_event_until_its_blank_line() {
        let mut parser = SseParser::new();
        parser.push(b"data: partial");
        assert_eq!(parser.next_event().unwrap(), None);
        assert!(parser.has_partial_event());
        parser.push(b"\n");
        assert_eq!(parser.next_event().unwrap(), None);
        assert!(parser.has_partial_event());
        parser.push(b"\n");
        assert!(parser.next_event().unwrap().is_some());
        assert!(!parser.has_partial_event());
    }

    #[test]
    fn refuses_an_endless_line() {
        let mut parser = SseParser::new();
        parser.push(&vec![b'a'; MAX_EVENT_BYTES + 1]);
        assert_eq!(parser.next_event(), Err(EventTooLarge));
    }
}
