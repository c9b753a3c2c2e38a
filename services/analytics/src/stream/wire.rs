//! Reading the replies of the stream commands (`XREADGROUP`, `XAUTOCLAIM`,
//! `XINFO GROUPS`, `XPENDING`, `XRANGE`) out of raw Redis values, in RESP2
//! and RESP3 shapes.

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

/// One page of an `XAUTOCLAIM` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claimed {
    /// Where the next page starts (`0-0`: done).
    pub cursor: String,
    pub entries: Vec<Entry>,
    /// Ids that were pending but are no longer in the stream (trimmed):
    /// Redis dropped them from the pending list.
    pub deleted: Vec<String>,
}

/// The next cursor, the entries and the deleted ids of an `XAUTOCLAIM`
/// reply (servers before Redis 7 send no deleted ids).
pub(crate) fn autoclaim_reply(value: Value) -> Result<Claimed, UnexpectedReply> {
    const COMMAND: &str = "XAUTOCLAIM";
    let mut parts = list(value).ok_or(UnexpectedReply(COMMAND))?.into_iter();
    let cursor = parts
        .next()
        .and_then(text)
        .ok_or(UnexpectedReply(COMMAND))?;
    let entries = entry_list(parts.next().ok_or(UnexpectedReply(COMMAND))?, COMMAND)?;
    let deleted = match parts.next() {
        None | Some(Value::Nil) => Vec::new(),
        Some(ids) => list(ids)
            .ok_or(UnexpectedReply(COMMAND))?
            .into_iter()
            .map(|id| text(id).ok_or(UnexpectedReply(COMMAND)))
            .collect::<Result<_, _>>()?,
    };
    Ok(Claimed {
        cursor,
        entries,
        deleted,
    })
}

/// Where a consumer group stands, from its `XINFO GROUPS` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupState {
    /// Entries not yet stored: those never delivered (`lag`, when the
    /// server knows it) plus those delivered and not acknowledged
    /// (`pending`).
    pub backlog: u64,
    /// The id of the last entry delivered to any consumer of the group.
    pub last_delivered_id: String,
}

/// The state of `group` in an `XINFO GROUPS` reply; `None` when the group
/// is not listed.
pub(crate) fn group_state(value: Value, group: &str) -> Option<GroupState> {
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
        Some(GroupState {
            backlog: number("lag")
                .unwrap_or(0)
                .saturating_add(number("pending").unwrap_or(0)),
            last_delivered_id: field("last-delivered-id")
                .cloned()
                .and_then(text)
                .unwrap_or_else(|| "0-0".to_owned()),
        })
    })
}

/// The id of the oldest pending entry, from the summary form of
/// `XPENDING` (`count`, smallest id, greatest id, consumers); `None` when
/// nothing is pending.
pub(crate) fn oldest_pending(value: Value) -> Result<Option<String>, UnexpectedReply> {
    const COMMAND: &str = "XPENDING";
    let mut parts = list(value).ok_or(UnexpectedReply(COMMAND))?.into_iter();
    match parts.next() {
        Some(Value::Int(0)) => Ok(None),
        Some(Value::Int(_)) => parts
            .next()
            .and_then(text)
            .map(Some)
            .ok_or(UnexpectedReply(COMMAND)),
        _ => Err(UnexpectedReply(COMMAND)),
    }
}

/// The id of the first entry of an `XRANGE` reply, if any.
pub(crate) fn first_id(value: Value) -> Result<Option<String>, UnexpectedReply> {
    Ok(entry_list(value, "XRANGE")?
        .into_iter()
        .next()
        .map(|entry| entry.id))
}

/// The unix milliseconds an entry id (`<ms>-<seq>`) was added at.
pub(crate) fn id_time_ms(id: &str) -> Option<i64> {
    id.split_once('-').map_or(id, |(ms, _)| ms).parse().ok()
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
            Value::Array(vec![bulk("4-0")]),
        ]);
        let claimed = autoclaim_reply(reply).unwrap();
        assert_eq!(claimed.cursor, "5-0");
        assert_eq!(claimed.entries.len(), 1);
        assert_eq!(claimed.entries[0].payload.as_deref(), Some(&b"x"[..]));
        assert_eq!(claimed.deleted, ["4-0"]);
        let before_redis_7 = Value::Array(vec![bulk("0-0"), Value::Array(vec![])]);
        assert!(autoclaim_reply(before_redis_7).unwrap().deleted.is_empty());
    }

    #[test]
    fn finds_the_oldest_waiting_entry_and_its_time() {
        let summary = Value::Array(vec![
            Value::Int(3),
            bulk("1700000000000-4"),
            bulk("1700000009000-0"),
            Value::Array(vec![]),
        ]);
        assert_eq!(
            oldest_pending(summary).unwrap().as_deref(),
            Some("1700000000000-4")
        );
        let none = Value::Array(vec![Value::Int(0), Value::Nil, Value::Nil, Value::Nil]);
        assert_eq!(oldest_pending(none).unwrap(), None);
        let range = Value::Array(vec![entry("1700000005000-0", "x")]);
        assert_eq!(first_id(range).unwrap().as_deref(), Some("1700000005000-0"));
        assert_eq!(first_id(Value::Array(vec![])).unwrap(), None);
        assert_eq!(id_time_ms("1700000005000-7"), Some(1_700_000_005_000));
        assert_eq!(id_time_ms("nonsense"), None);
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
        let backlog = |reply: Value, name: &str| group_state(reply, name).map(|g| g.backlog);
        assert_eq!(backlog(reply.clone(), "analytics"), Some(10));
        assert_eq!(backlog(reply, "missing"), None);
        let unknown_lag = Value::Array(vec![group("analytics", Value::Nil, 2)]);
        assert_eq!(backlog(unknown_lag, "analytics"), Some(2));
        let mut delivered = vec![bulk("name"), bulk("g"), bulk("last-delivered-id")];
        delivered.push(bulk("1700000000000-3"));
        let state = group_state(Value::Array(vec![Value::Array(delivered)]), "g").unwrap();
        assert_eq!(state.last_delivered_id, "1700000000000-3");
    }
}
