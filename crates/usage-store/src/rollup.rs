//! Hourly rollups: per-hour totals of usage, kept beside the raw events so
//! usage queries read a few rows per hour instead of every request.
//!
//! The stores keep one rollup row per UTC hour and (key, account, profile,
//! provider, requested model), added to in the transaction that inserts the
//! raw rows, from the rows that insert actually wrote. This module holds the
//! I/O-free parts: adding up written records ([`HourlyRollup`]) and splitting
//! a query's time range into what the rollup can answer and what only the
//! raw table can ([`plan_range`]).

use std::collections::{BTreeMap, HashMap};

use super::{Bucket, UsageRecord};

/// One rollup row's identity. Field order is the sort (and lock) order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct HourKey<'a> {
    pub hour_start_ms: i64,
    pub key_id: &'a str,
    pub account_id: &'a str,
    pub profile: &'a str,
    pub provider: &'a str,
    pub requested_model: &'a str,
}

/// One rollup row's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct HourTotals {
    pub requests: i64,
    /// Requests answered with a status of 400 or more.
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub cache_write_5m_tokens: i64,
    pub cache_write_1h_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_micro_usd: i64,
    /// Requests the catalog did not price.
    pub unpriced_requests: i64,
}

impl HourTotals {
    fn add(&mut self, record: &UsageRecord) {
        self.requests = self.requests.saturating_add(1);
        self.errors = self.errors.saturating_add(i64::from(record.status >= 400));
        self.prompt_tokens = self
            .prompt_tokens
            .saturating_add(i64::from(record.prompt_tokens));
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(i64::from(record.completion_tokens));
        self.cached_tokens = self
            .cached_tokens
            .saturating_add(i64::from(record.cached_tokens));
        self.cache_write_5m_tokens = self
            .cache_write_5m_tokens
            .saturating_add(i64::from(record.cache_write_5m_tokens));
        self.cache_write_1h_tokens = self
            .cache_write_1h_tokens
            .saturating_add(i64::from(record.cache_write_1h_tokens));
        self.reasoning_tokens = self
            .reasoning_tokens
            .saturating_add(i64::from(record.reasoning_tokens));
        self.cost_micro_usd = self.cost_micro_usd.saturating_add(record.cost_micro_usd);
        self.unpriced_requests = self
            .unpriced_requests
            .saturating_add(i64::from(!record.priced));
    }
}

/// The rollup increments of one batch, sorted by [`HourKey`] so concurrent
/// writers upsert (and lock) rollup rows in the same order.
#[derive(Debug, Default)]
pub(crate) struct HourlyRollup<'a> {
    rows: BTreeMap<HourKey<'a>, HourTotals>,
}

impl<'a> HourlyRollup<'a> {
    /// Adds up the records whose request id is among `written_ids` (the ids
    /// the raw insert reported as newly stored). When a request id occurs
    /// several times in `records`, its first copy is the one counted, as it
    /// is the one the stores write.
    pub(crate) fn of_written<'i>(
        records: &[&'a UsageRecord],
        written_ids: impl IntoIterator<Item = &'i str>,
    ) -> Self {
        let mut by_id: HashMap<&str, &'a UsageRecord> = HashMap::with_capacity(records.len());
        for record in records {
            by_id.entry(record.request_id.as_str()).or_insert(record);
        }
        let mut rollup = Self::default();
        for id in written_ids {
            // Each id once, even if a store reported it twice.
            if let Some(record) = by_id.remove(id) {
                rollup.add(record);
            }
        }
        rollup
    }

    fn add(&mut self, record: &'a UsageRecord) {
        let key = HourKey {
            hour_start_ms: hour_start(record.started_at_ms),
            key_id: &record.key_id,
            account_id: &record.account_id,
            profile: &record.profile,
            provider: &record.provider,
            requested_model: &record.requested_model,
        };
        self.rows.entry(key).or_default().add(record);
    }

    /// The rows to upsert, in key order.
    pub(crate) fn rows(&self) -> Vec<(&HourKey<'a>, &HourTotals)> {
        self.rows.iter().collect()
    }
}

/// The start of the UTC hour holding `at_ms` (saturating at the far past
/// instead of overflowing).
pub(crate) fn hour_start(at_ms: i64) -> i64 {
    at_ms.saturating_sub(at_ms.rem_euclid(Bucket::Hour.width_ms()))
}

/// A half-open time range `[from_ms, to_ms)`; `None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// Where a query's rows come from: whole hours from the rollup, the partial
/// hours at the edges from the raw table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RangePlan {
    pub rollup: Option<Span>,
    pub raw: Vec<Span>,
}

/// Splits `[from_ms, to_ms)` into the whole hours inside it (answered by the
/// rollup) and the rest (at most two partial hours, or the whole range when
/// it holds no whole hour), answered by the raw table.
pub(crate) fn plan_range(from_ms: Option<i64>, to_ms: Option<i64>) -> RangePlan {
    let whole_range = RangePlan {
        rollup: None,
        raw: vec![Span { from_ms, to_ms }],
    };
    // First hour start at or after `from_ms`, last one at or before `to_ms`.
    let first_hour = match from_ms {
        None => None,
        Some(from) => {
            let start = hour_start(from);
            if start == from {
                Some(from)
            } else {
                match start.checked_add(Bucket::Hour.width_ms()) {
                    Some(next) => Some(next),
                    None => return whole_range,
                }
            }
        }
    };
    let last_hour = to_ms.map(hour_start);
    if let (Some(first), Some(last)) = (first_hour, last_hour)
        && first >= last
    {
        return whole_range;
    }
    let mut raw = Vec::new();
    if let (Some(from), Some(first)) = (from_ms, first_hour)
        && from < first
    {
        raw.push(Span {
            from_ms: Some(from),
            to_ms: Some(first),
        });
    }
    if let (Some(last), Some(to)) = (last_hour, to_ms)
        && last < to
    {
        raw.push(Span {
            from_ms: Some(last),
            to_ms: Some(to),
        });
    }
    RangePlan {
        rollup: Some(Span {
            from_ms: first_hour,
            to_ms: last_hour,
        }),
        raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn span(from_ms: Option<i64>, to_ms: Option<i64>) -> Span {
        Span { from_ms, to_ms }
    }

    #[test]
    fn aligned_and_unbounded_ranges_read_only_the_rollup() {
        for (from, to) in [
            (None, None),
            (Some(HOUR), None),
            (None, Some(3 * HOUR)),
            (Some(-HOUR), Some(5 * HOUR)),
        ] {
            assert_eq!(
                plan_range(from, to),
                RangePlan {
                    rollup: Some(span(from, to)),
                    raw: vec![]
                }
            );
        }
    }

    #[test]
    fn partial_hours_at_the_edges_read_the_raw_table() {
        assert_eq!(
            plan_range(Some(HOUR + 5), Some(4 * HOUR + 7)),
            RangePlan {
                rollup: Some(span(Some(2 * HOUR), Some(4 * HOUR))),
                raw: vec![
                    span(Some(HOUR + 5), Some(2 * HOUR)),
                    span(Some(4 * HOUR), Some(4 * HOUR + 7)),
                ],
            }
        );
        assert_eq!(
            plan_range(None, Some(HOUR - 1)),
            RangePlan {
                rollup: Some(span(None, Some(0))),
                raw: vec![span(Some(0), Some(HOUR - 1))],
            }
        );
        assert_eq!(
            plan_range(Some(-1), None),
            RangePlan {
                rollup: Some(span(Some(0), None)),
                raw: vec![span(Some(-1), Some(0))],
            }
        );
    }

    #[test]
    fn ranges_without_a_whole_hour_read_only_the_raw_table() {
        for (from, to) in [
            (Some(HOUR + 1), Some(2 * HOUR - 1)),
            (Some(HOUR + 1), Some(2 * HOUR)),
            (Some(HOUR), Some(HOUR + 1)),
            (Some(HOUR), Some(HOUR)),
            (Some(5 * HOUR), Some(HOUR)),
            (Some(i64::MAX - 3), None),
        ] {
            assert_eq!(
                plan_range(from, to),
                RangePlan {
                    rollup: None,
                    raw: vec![span(from, to)]
                },
                "{from:?}..{to:?}"
            );
        }
    }

    fn record(id: &str, started_at_ms: i64, key_id: &str, status: u32) -> UsageRecord {
        UsageRecord {
            request_id: id.into(),
            started_at_ms,
            key_id: key_id.into(),
            prompt_tokens: 10,
            completion_tokens: 3,
            cached_tokens: 1,
            cache_write_5m_tokens: 2,
            cache_write_1h_tokens: 3,
            reasoning_tokens: 4,
            cost_micro_usd: 7,
            priced: status < 500,
            status,
            ..UsageRecord::default()
        }
    }

    #[test]
    fn adds_up_only_written_records_once_each_by_hour_and_dimensions() {
        let records = [
            record("a", HOUR + 1, "k1", 200),
            record("b", 2 * HOUR - 1, "k1", 500),
            record("c", 2 * HOUR, "k1", 200),
            record("d", HOUR + 2, "k2", 200),
            record("a", 9 * HOUR, "k9", 200),
            record("skipped", HOUR, "k1", 200),
        ];
        let refs: Vec<&UsageRecord> = records.iter().collect();
        let rollup = HourlyRollup::of_written(&refs, ["a", "b", "c", "d", "a"]);
        let cells: Vec<_> = rollup
            .rows()
            .into_iter()
            .map(|(key, totals)| {
                (
                    key.hour_start_ms,
                    key.key_id,
                    totals.requests,
                    totals.errors,
                    totals.prompt_tokens,
                    totals.cached_tokens,
                    (
                        totals.cache_write_5m_tokens,
                        totals.cache_write_1h_tokens,
                        totals.reasoning_tokens,
                    ),
                    totals.cost_micro_usd,
                    totals.unpriced_requests,
                )
            })
            .collect();
        assert_eq!(
            cells,
            [
                (HOUR, "k1", 2, 1, 20, 2, (4, 6, 8), 14, 1),
                (HOUR, "k2", 1, 0, 10, 1, (2, 3, 4), 7, 0),
                (2 * HOUR, "k1", 1, 0, 10, 1, (2, 3, 4), 7, 0),
            ]
        );
        assert!(HourlyRollup::of_written(&refs, []).rows().is_empty());
    }
}
