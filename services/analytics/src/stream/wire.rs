//! Reading the replies of the stream commands (`XREADGROUP`, `XAUTOCLAIM`,
//! `XINFO GROUPS`) out of raw Redis values, in RESP2 and RESP3 shapes.

use redis::Value;

use super::PAYLOAD_FIELD;

/// One stream entry as delivered to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub id: String,
    /// The [`PAYLOAD_FIELD`] bytes; `None` when the entry has no such field
    /// or was trimmed away while pending.
    pub payload: Option<Vec<u8>>,
}

/// A reply that is not shaped as the command documents.
#[derive(Debug, thiserror::Error)]
#[error("unexpected reply to {0}")]
pub(crate) struct UnexpectedReply(pub &'static str);

/// Entries of an `XREADGROUP` reply over one stream (nil: none).
pub(crate) fn read_reply(value: Value) -> Result<Vec<Entry>, UnexpectedReply> {
    const COMMAND: &str = "XREADGROUP";
    let streams = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(pairs) => pairs.into_iter().map(|(_key, entries)| entries).collect(),
        Value::Array(streams) => streams
            .into_iter()
            .map(|stream| match list(stream) {
                Some(mut pair) if pair.len() == 2 => pair.pop().ok_or(UnexpectedReply(COMMAND)),
                _ => Err(UnexpectedReply(COMMAND)),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(UnexpectedReply(COMMAND)),
    };
    let mut entries = Vec::new();
    for stream in streams {
        entries.extend(entry_list(stream, COMMAND)?);
    }
    Ok(entries)
}

/// The next cursor and the entries of an `XAUTOCLAIM` reply.
pub(crate) fn autoclaim_reply(value: Value) -> Result<(String, Vec<Entry>), UnexpectedReply> {
    const COMMAND: &str = "XAUTOCLAIM";
    let mut parts = list(value).ok_or(UnexpectedReply(COMMAND))?.into_iter();
    let cursor = parts
        .next()
        .and_then(text)
        .ok_or(UnexpectedReply(COMMAND))?;
    let entries = entry_list(parts.next().ok_or(UnexpectedReply(COMMAND))?, COMMAND)?;
    Ok((cursor, entries))
}

/// Entries of `group` not yet stored, from an `XINFO GROUPS` reply: those
/// never delivered (`lag`, when the server knows it) plus those delivered
/// and not acknowledged (`pending`). `None` when the group is not listed.
pub(crate) fn group_backlog(value: Value, group: &str) -> Option<u64> {
    list(value)?.into_iter().find_map(|info| {
        let fields = fields(info)?;
        let field = |name: &str| {
            fields
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value)
        };
        if field("name").cloned().and_then(text).as_deref() != Some(group) {
            return None;
        }
        let number = |name: &str| match field(name) {
            Some(Value::Int(count)) => u64::try_from(*count).ok(),
            _ => None,
        };
        Some(
            number("lag")
                .unwrap_or(0)
                .saturating_add(number("pending").unwrap_or(0)),
        )
    })
}

fn entry_list(value: Value, command: &'static str) -> Result<Vec<Entry>, UnexpectedReply> {
    let entries = match value {
        Value::Nil => return Ok(Vec::new()),
        other => list(other).ok_or(UnexpectedReply(command))?,
    };
    entries
        .into_iter()
        .map(|entry| {
            let mut parts = list(entry).ok_or(UnexpectedReply(command))?.into_iter();
            let id = parts
                .next()
                .and_then(text)
                .ok_or(UnexpectedReply(command))?;
            let payload = parts.next().and_then(fields).and_then(|fields| {
                fields
                    .into_iter()
                    .find(|(name, _)| name == PAYLOAD_FIELD)
                    .and_then(|(_, value)| bytes(value))
            });
            Ok(Entry { id, payload })
        })
        .collect()
}

/// Field/value pairs of a flat array or a map (keys as text).
fn fields(value: Value) -> Option<Vec<(String, Value)>> {
    let pairs = match value {
        Value::Map(pairs) => pairs,
        Value::Array(flat) => {
            let mut pairs = Vec::with_capacity(flat.len() / 2);
            let mut items = flat.into_iter();
            while let (Some(key), Some(value)) = (items.next(), items.next()) {
                pairs.push((key, value));
            }
            pairs
        }
        _ => return None,
    };
    Some(
        pairs
            .into_iter()
            .filter_map(|(key, value)| Some((text(key)?, value)))
            .collect(),
    )
}

fn list(value: Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.into_bytes()),
        _ => None,
    }
}

fn text(value: Value) -> Option<String> {
    bytes(value).and_then(|bytes| String::from_utf8(bytes).ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn entry(id: &str, payload: &str) -> Value {
        Value::Array(vec![bulk(id), Value::Array(vec![bulk("e"), bulk(payload)])])
    }

    #[test]
    fn reads_resp2_and_resp3_xreadgroup_replies() {
        let entries = Value::Array(vec![
            entry("1-0", "a"),
            Value::Array(vec![bulk("2-0"), Value::Nil]),
        ]);
        let expected = vec![
            Entry {
                id: "1-0".into(),
                payload: Some(b"a".to_vec()),
            },
            Entry {
                id: "2-0".into(),
                payload: None,
            },
        ];
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("k"), entries.clone()])]);
        assert_eq!(read_reply(resp2).unwrap(), expected);
        let resp3 = Value::Map(vec![(bulk("k"), entries)]);
        assert_eq!(read_reply(resp3).unwrap(), expected);
        assert!(read_reply(Value::Nil).unwrap().is_empty());
        assert!(read_reply(Value::Int(3)).is_err());
    }

    #[test]
    fn reads_an_xautoclaim_reply() {
        let reply = Value::Array(vec![
            bulk("5-0"),
            Value::Array(vec![entry("3-0", "x")]),
            Value::Array(vec![]),
        ]);
        let (cursor, entries) = autoclaim_reply(reply).unwrap();
        assert_eq!(cursor, "5-0");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].payload.as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn sums_lag_and_pending_of_the_named_group() {
        let group = |name: &str, lag: Value, pending: i64| {
            Value::Array(vec![
                bulk("name"),
                bulk(name),
                bulk("pending"),
                Value::Int(pending),
                bulk("lag"),
                lag,
            ])
        };
        let reply = Value::Array(vec![
            group("other", Value::Int(100), 100),
            group("analytics", Value::Int(7), 3),
        ]);
        assert_eq!(group_backlog(reply.clone(), "analytics"), Some(10));
        assert_eq!(group_backlog(reply, "missing"), None);
        let unknown_lag = Value::Array(vec![group("analytics", Value::Nil, 2)]);
        assert_eq!(group_backlog(unknown_lag, "analytics"), Some(2));
    }
}
