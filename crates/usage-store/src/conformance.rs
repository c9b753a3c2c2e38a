//! The behaviour every [`UsageStore`] must show, as checks that take a fresh,
//! empty store. `usage_conformance_tests!(fresh)` turns them into one test
//! each for an implementation, where `fresh().await` returns `(guard, store)`
//! and the guard keeps the store's backing resources alive.

use std::collections::{BTreeMap, HashSet};

use super::{Bucket, GroupBy, UsageFilter, UsageRecord, UsageRow, UsageStore};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// A UTC midnight (2024-10-04).
const T0: i64 = 20_000 * DAY;

/// Generates one `#[tokio::test]` per conformance check.
macro_rules! usage_conformance_tests {
    ($fresh:path) => {
        $crate::conformance::usage_conformance_tests!(@each $fresh:
            same_event_twice_is_stored_once,
            duplicates_within_one_batch_count_once,
            empty_batch_writes_nothing,
            large_batch_is_written_whole,
            groups_by_every_dimension,
            model_groups_by_requested_model,
            counts_errors_from_status_400,
            buckets_by_utc_hour_and_day,
            time_range_is_start_inclusive_end_exclusive,
            account_filter_restricts_rows,
            tokens_by_account_since_sums_prompt_and_completion,
            tokens_by_key_since_counts_whole_and_partial_hours,
            rollup_answers_equal_a_recount_of_the_events,
            token_details_and_unpriced_requests_are_kept,
            redelivery_leaves_rollup_totals_unchanged,
            delete_before_removes_old_events_and_rollup_hours,
        );
    };
    (@each $fresh:path: $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let (_guard, store) = $fresh().await;
                $crate::conformance::$check(&store).await;
            }
        )*
    };
}
pub(crate) use usage_conformance_tests;

fn event(request_id: &str, started_at_ms: i64) -> UsageRecord {
    UsageRecord {
        request_id: request_id.to_owned(),
        started_at_ms,
        finished_at_ms: started_at_ms + 250,
        key_id: "key-a".into(),
        profile: "default".into(),
        account_id: "acct-1".into(),
        provider: "openai".into(),
        requested_model: "gpt-4o".into(),
        upstream_model: "gpt-4o-2024-08-06".into(),
        prompt_tokens: 10,
        completion_tokens: 5,
        cached_tokens: 2,
        cache_write_5m_tokens: 0,
        cache_write_1h_tokens: 0,
        reasoning_tokens: 0,
        cost_micro_usd: 100,
        priced: true,
        latency_ms: 250,
        ttft_ms: 0,
        status: 200,
        error_code: String::new(),
        attempts: 1,
        streamed: false,
    }
}

async fn rows(store: &dyn UsageStore, filter: UsageFilter) -> Vec<UsageRow> {
    store.query(&filter).await.unwrap()
}

/// `(group, requests)` of each row, in order.
fn requests(rows: &[UsageRow]) -> Vec<(&str, u64)> {
    rows.iter()
        .map(|row| (row.group.as_str(), row.requests))
        .collect()
}

pub(crate) async fn same_event_twice_is_stored_once(store: &dyn UsageStore) {
    let a = event("req-a", T0);
    let b = event("req-b", T0 + 1);
    let first = store.insert_batch(&[a.clone(), b]).await.unwrap();
    assert_eq!((first.written, first.duplicates), (2, 0));

    let again = store.insert_batch(std::slice::from_ref(&a)).await.unwrap();
    assert_eq!((again.written, again.duplicates), (0, 1));

    let mixed = store
        .insert_batch(&[a, event("req-c", T0 + 2)])
        .await
        .unwrap();
    assert_eq!((mixed.written, mixed.duplicates), (1, 1));

    let all = rows(store, UsageFilter::new(GroupBy::Key)).await;
    assert_eq!(requests(&all), [("key-a", 3)]);
    assert_eq!(all[0].prompt_tokens, 30);
}

pub(crate) async fn duplicates_within_one_batch_count_once(store: &dyn UsageStore) {
    let outcome = store
        .insert_batch(&[event("req-x", T0), event("req-x", T0), event("req-y", T0)])
        .await
        .unwrap();
    assert_eq!((outcome.written, outcome.duplicates), (2, 1));
    let all = rows(store, UsageFilter::new(GroupBy::Key)).await;
    assert_eq!(requests(&all), [("key-a", 2)]);
}

pub(crate) async fn empty_batch_writes_nothing(store: &dyn UsageStore) {
    let outcome = store.insert_batch(&[]).await.unwrap();
    assert_eq!((outcome.written, outcome.duplicates), (0, 0));
    assert!(rows(store, UsageFilter::new(GroupBy::Key)).await.is_empty());
}

pub(crate) async fn large_batch_is_written_whole(store: &dyn UsageStore) {
    let batch: Vec<_> = (0..1_234)
        .map(|i| event(&format!("req-{i}"), T0 + i))
        .collect();
    let outcome = store.insert_batch(&batch).await.unwrap();
    assert_eq!((outcome.written, outcome.duplicates), (1_234, 0));
    let outcome = store.insert_batch(&batch).await.unwrap();
    assert_eq!((outcome.written, outcome.duplicates), (0, 1_234));
    let all = rows(store, UsageFilter::new(GroupBy::Account)).await;
    assert_eq!(requests(&all), [("acct-1", 1_234)]);
    assert_eq!(all[0].cost_micro_usd, 123_400);
}

pub(crate) async fn groups_by_every_dimension(store: &dyn UsageStore) {
    let mut first = event("req-1", T0);
    first.prompt_tokens = 100;
    first.completion_tokens = 40;
    first.cost_micro_usd = 7;
    let mut second = event("req-2", T0 + 1);
    second.key_id = "key-b".into();
    second.profile = "team-x".into();
    second.account_id = "acct-2".into();
    second.provider = "anthropic".into();
    second.requested_model = "claude-sonnet".into();
    let third = event("req-3", T0 + 2);
    store.insert_batch(&[first, second, third]).await.unwrap();

    let expected = [
        (GroupBy::Key, ["key-a", "key-b"]),
        (GroupBy::Account, ["acct-1", "acct-2"]),
        (GroupBy::Model, ["claude-sonnet", "gpt-4o"]),
        (GroupBy::Profile, ["default", "team-x"]),
        (GroupBy::Provider, ["anthropic", "openai"]),
    ];
    for (group_by, groups) in expected {
        let report = rows(store, UsageFilter::new(group_by)).await;
        let names: Vec<_> = report.iter().map(|row| row.group.as_str()).collect();
        assert_eq!(names, groups, "{group_by:?}");
        let big = report.iter().find(|row| row.requests == 2).unwrap();
        let small = report.iter().find(|row| row.requests == 1).unwrap();
        assert_eq!(
            big,
            &UsageRow {
                group: big.group.clone(),
                bucket_start_ms: 0,
                requests: 2,
                errors: 0,
                prompt_tokens: 110,
                completion_tokens: 45,
                total_tokens: 155,
                cached_tokens: 4,
                cost_micro_usd: 107,
                ..UsageRow::default()
            },
            "{group_by:?}"
        );
        assert_eq!(
            (
                small.prompt_tokens,
                small.total_tokens,
                small.cost_micro_usd
            ),
            (10, 15, 100)
        );
    }
}

pub(crate) async fn model_groups_by_requested_model(store: &dyn UsageStore) {
    let mut alias = event("req-1", T0);
    alias.requested_model = "fast".into();
    alias.upstream_model = "gpt-4o-mini".into();
    let mut direct = event("req-2", T0);
    direct.requested_model = "openai/gpt-4o-mini".into();
    direct.upstream_model = "gpt-4o-mini".into();
    store.insert_batch(&[alias, direct]).await.unwrap();
    let report = rows(store, UsageFilter::new(GroupBy::Model)).await;
    assert_eq!(requests(&report), [("fast", 1), ("openai/gpt-4o-mini", 1)]);
}

pub(crate) async fn counts_errors_from_status_400(store: &dyn UsageStore) {
    let statuses = [200, 201, 399, 400, 429, 500, 503];
    let batch: Vec<_> = statuses
        .iter()
        .enumerate()
        .map(|(i, &status)| {
            let mut record = event(&format!("req-{i}"), T0);
            record.status = status;
            record
        })
        .collect();
    store.insert_batch(&batch).await.unwrap();
    let report = rows(store, UsageFilter::new(GroupBy::Key)).await;
    assert_eq!((report[0].requests, report[0].errors), (7, 4));
}

pub(crate) async fn buckets_by_utc_hour_and_day(store: &dyn UsageStore) {
    let mut other_key = event("req-4", T0 + 30 * 60_000);
    other_key.key_id = "key-b".into();
    let batch = [
        event("req-1", T0),
        event("req-2", T0 + HOUR - 1),
        event("req-3", T0 + HOUR),
        other_key,
        event("req-5", T0 + DAY + 5 * HOUR),
    ];
    store.insert_batch(&batch).await.unwrap();

    let hourly = rows(
        store,
        UsageFilter {
            bucket: Some(Bucket::Hour),
            ..UsageFilter::new(GroupBy::Key)
        },
    )
    .await;
    let cells: Vec<_> = hourly
        .iter()
        .map(|row| (row.bucket_start_ms, row.group.as_str(), row.requests))
        .collect();
    assert_eq!(
        cells,
        [
            (T0, "key-a", 2),
            (T0, "key-b", 1),
            (T0 + HOUR, "key-a", 1),
            (T0 + DAY + 5 * HOUR, "key-a", 1),
        ]
    );

    let daily = rows(
        store,
        UsageFilter {
            bucket: Some(Bucket::Day),
            ..UsageFilter::new(GroupBy::Account)
        },
    )
    .await;
    let cells: Vec<_> = daily
        .iter()
        .map(|row| (row.bucket_start_ms, row.group.as_str(), row.requests))
        .collect();
    assert_eq!(cells, [(T0, "acct-1", 4), (T0 + DAY, "acct-1", 1)]);
    assert_eq!(daily[0].total_tokens, 60);
}

pub(crate) async fn time_range_is_start_inclusive_end_exclusive(store: &dyn UsageStore) {
    let batch = [
        event("req-1", T0 - 1),
        event("req-2", T0),
        event("req-3", T0 + HOUR - 1),
        event("req-4", T0 + HOUR),
    ];
    store.insert_batch(&batch).await.unwrap();
    let within = |from_ms, to_ms| UsageFilter {
        from_ms,
        to_ms,
        ..UsageFilter::new(GroupBy::Key)
    };
    let count = |report: Vec<UsageRow>| report.first().map_or(0, |row| row.requests);

    assert_eq!(
        count(rows(store, within(Some(T0), Some(T0 + HOUR))).await),
        2
    );
    assert_eq!(count(rows(store, within(Some(T0), None)).await), 3);
    assert_eq!(count(rows(store, within(None, Some(T0))).await), 1);
    assert_eq!(count(rows(store, within(None, None)).await), 4);
    assert!(rows(store, within(Some(T0 + DAY), None)).await.is_empty());
}

pub(crate) async fn account_filter_restricts_rows(store: &dyn UsageStore) {
    let mut other = event("req-2", T0);
    other.account_id = "acct-2".into();
    other.requested_model = "claude-sonnet".into();
    let mut unleased = event("req-3", T0);
    unleased.account_id = String::new();
    unleased.status = 429;
    store
        .insert_batch(&[event("req-1", T0), other, unleased])
        .await
        .unwrap();

    let only = |account: &str| UsageFilter {
        account_id: Some(account.to_owned()),
        ..UsageFilter::new(GroupBy::Model)
    };
    let report = rows(store, only("acct-2")).await;
    assert_eq!(requests(&report), [("claude-sonnet", 1)]);
    assert!(rows(store, only("acct-9")).await.is_empty());

    let by_account = rows(store, UsageFilter::new(GroupBy::Account)).await;
    assert_eq!(
        requests(&by_account),
        [("", 1), ("acct-1", 1), ("acct-2", 1)]
    );
    assert_eq!(by_account[0].errors, 1);
}

/// Key totals from a start inside an hour (the raw events) and from the
/// whole hours after it (the rollup) add up; keyless requests are left out.
pub(crate) async fn tokens_by_key_since_counts_whole_and_partial_hours(store: &dyn UsageStore) {
    let mut big = event("req-2", T0 + 2 * HOUR + 5);
    big.prompt_tokens = 1_000;
    big.completion_tokens = 234;
    let mut other = event("req-3", T0 + 30);
    other.key_id = "key-0".into();
    let mut keyless = event("req-4", T0 + 40);
    keyless.key_id = String::new();
    let batch = [
        event("req-1", T0 - 1),
        event("req-0", T0 + 10),
        big,
        other,
        keyless,
    ];
    store.insert_batch(&batch).await.unwrap();

    for since in [T0, T0 + 10] {
        assert_eq!(
            store.tokens_by_key_since(since).await.unwrap(),
            [("key-0".to_owned(), 15), ("key-a".to_owned(), 1_249)],
            "since {since}"
        );
    }
    assert_eq!(
        store.tokens_by_key_since(T0 + 11).await.unwrap(),
        [("key-0".to_owned(), 15), ("key-a".to_owned(), 1_234)]
    );
    assert_eq!(
        store.tokens_by_key_since(T0 - HOUR).await.unwrap(),
        [("key-0".to_owned(), 15), ("key-a".to_owned(), 1_264)]
    );
    assert!(
        store
            .tokens_by_key_since(T0 + DAY)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(crate) async fn tokens_by_account_since_sums_prompt_and_completion(store: &dyn UsageStore) {
    let mut big = event("req-2", T0 + 10);
    big.prompt_tokens = 1_000;
    big.completion_tokens = 234;
    let mut other = event("req-3", T0 + 20);
    other.account_id = "acct-0".into();
    let mut unleased = event("req-4", T0 + 30);
    unleased.account_id = String::new();
    let batch = [
        event("req-1", T0 - 1),
        event("req-0", T0),
        big,
        other,
        unleased,
    ];
    store.insert_batch(&batch).await.unwrap();

    let totals = store.tokens_by_account_since(T0).await.unwrap();
    assert_eq!(
        totals,
        [("acct-0".to_owned(), 15), ("acct-1".to_owned(), 1_249)]
    );
    assert!(
        store
            .tokens_by_account_since(T0 + DAY)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A varied set of events over three days around `T0`: several keys,
/// accounts, profiles, providers and models, error statuses, and start times
/// on and next to hour boundaries.
fn varied_events(count: u64) -> Vec<UsageRecord> {
    // A fixed linear congruential sequence: varied, and the same every run.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |modulus: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % modulus
    };
    let pick = |names: &[&str], index: u64| names[index as usize % names.len()].to_owned();
    (0..count)
        .map(|i| {
            let hour = i64::try_from(next(72)).unwrap() - 24;
            let within = match next(4) {
                0 => 0,
                1 => HOUR - 1,
                _ => i64::try_from(next(3_600_000)).unwrap(),
            };
            let mut record = event(&format!("req-{i:05}"), T0 + hour * HOUR + within);
            record.key_id = pick(&["key-a", "key-b", "key-c", "Key-Z"], next(4));
            record.account_id = pick(&["acct-1", "acct-2", "", "acct-3"], next(4));
            record.profile = pick(&["default", "team-x"], next(2));
            record.provider = pick(&["openai", "anthropic", "mock"], next(3));
            record.requested_model = pick(&["gpt-4o", "fast", "claude-sonnet"], next(3));
            record.prompt_tokens = u32::try_from(next(5_000)).unwrap();
            record.completion_tokens = u32::try_from(next(2_000)).unwrap();
            record.cached_tokens = u32::try_from(next(100)).unwrap();
            record.cache_write_5m_tokens = u32::try_from(next(50)).unwrap();
            record.cache_write_1h_tokens = u32::try_from(next(50)).unwrap();
            record.reasoning_tokens = u32::try_from(next(300)).unwrap();
            record.priced = next(4) != 0;
            record.cost_micro_usd = if record.priced {
                i64::try_from(next(1_000_000)).unwrap()
            } else {
                0
            };
            record.status = [200, 200, 200, 429, 500, 400][usize::try_from(next(6)).unwrap()];
            record
        })
        .collect()
}

/// The answer to `filter`, counted in memory from `events` (each request id
/// once, its first copy).
fn recount(events: &[UsageRecord], filter: &UsageFilter) -> Vec<UsageRow> {
    let mut seen = HashSet::new();
    let mut cells: BTreeMap<(i64, String), UsageRow> = BTreeMap::new();
    for record in events {
        if !seen.insert(record.request_id.as_str())
            || filter
                .from_ms
                .is_some_and(|from| record.started_at_ms < from)
            || filter.to_ms.is_some_and(|to| record.started_at_ms >= to)
            || filter
                .account_id
                .as_ref()
                .is_some_and(|account| *account != record.account_id)
        {
            continue;
        }
        let group = match filter.group_by {
            GroupBy::Key => &record.key_id,
            GroupBy::Account => &record.account_id,
            GroupBy::Model => &record.requested_model,
            GroupBy::Profile => &record.profile,
            GroupBy::Provider => &record.provider,
        };
        let start = filter
            .bucket
            .map_or(0, |bucket| bucket.start_of(record.started_at_ms));
        let row = cells
            .entry((start, group.clone()))
            .or_insert_with(|| UsageRow {
                group: group.clone(),
                bucket_start_ms: start,
                ..UsageRow::default()
            });
        let prompt = u64::from(record.prompt_tokens);
        let completion = u64::from(record.completion_tokens);
        row.requests += 1;
        row.errors += u64::from(record.status >= 400);
        row.prompt_tokens += prompt;
        row.completion_tokens += completion;
        row.total_tokens += prompt + completion;
        row.cached_tokens += u64::from(record.cached_tokens);
        row.cache_write_5m_tokens += u64::from(record.cache_write_5m_tokens);
        row.cache_write_1h_tokens += u64::from(record.cache_write_1h_tokens);
        row.reasoning_tokens += u64::from(record.reasoning_tokens);
        row.cost_micro_usd += record.cost_micro_usd;
        row.unpriced_requests += u64::from(!record.priced);
    }
    cells.into_values().collect()
}

/// Filters over every grouping and bucket, with ranges on hour boundaries
/// (answered by the rollup), unbounded, partly inside hours and within one
/// hour (answered in part or whole by the raw events), with and without an
/// account.
fn filters_to_compare() -> Vec<UsageFilter> {
    let ranges = [
        (None, None),
        (Some(T0 - 5 * HOUR), Some(T0 + 20 * HOUR)),
        (Some(T0), None),
        (None, Some(T0 + 7 * HOUR)),
        (Some(T0 - 3 * HOUR + 1), Some(T0 + 30 * HOUR - 1)),
        (Some(T0 + 2 * HOUR - 1), Some(T0 + 4 * HOUR + 1_234_567)),
        (Some(T0 + 1), None),
        (None, Some(T0 - 1)),
        (Some(T0 + HOUR + 1_000), Some(T0 + 2 * HOUR - 1_000)),
        (Some(T0 + 3 * HOUR + 5), Some(T0 + 4 * HOUR)),
    ];
    let mut filters = Vec::new();
    for group_by in GroupBy::ALL {
        for bucket in [None, Some(Bucket::Hour), Some(Bucket::Day)] {
            for (from_ms, to_ms) in ranges {
                for account_id in [None, Some("acct-2".to_owned())] {
                    filters.push(UsageFilter {
                        group_by,
                        from_ms,
                        to_ms,
                        bucket,
                        account_id,
                    });
                }
            }
        }
    }
    filters
}

pub(crate) async fn rollup_answers_equal_a_recount_of_the_events(store: &dyn UsageStore) {
    let events = varied_events(600);
    // In several batches, with redeliveries across and within batches.
    let mut batches: Vec<Vec<UsageRecord>> = events.chunks(150).map(<[_]>::to_vec).collect();
    batches[1].extend_from_slice(&events[..40]);
    batches[2].extend_from_slice(&events[300..310]);
    batches.push(events[100..260].to_vec());
    let mut written = 0;
    for batch in &batches {
        written += store.insert_batch(batch).await.unwrap().written;
    }
    assert_eq!(written, 600);

    for filter in filters_to_compare() {
        assert_eq!(
            rows(store, filter.clone()).await,
            recount(&events, &filter),
            "{filter:?}"
        );
    }
}

pub(crate) async fn token_details_and_unpriced_requests_are_kept(store: &dyn UsageStore) {
    let mut cached = event("req-cached", T0 + 10);
    cached.prompt_tokens = 1_000;
    cached.completion_tokens = 300;
    cached.cached_tokens = 400;
    cached.cache_write_5m_tokens = 200;
    cached.cache_write_1h_tokens = 100;
    cached.reasoning_tokens = 120;
    cached.cost_micro_usd = 4_321;
    let mut unpriced = event("req-unpriced", T0 + HOUR + 10);
    unpriced.upstream_model = "house-model".into();
    unpriced.cached_tokens = 0;
    unpriced.cost_micro_usd = 0;
    unpriced.priced = false;
    store.insert_batch(&[cached, unpriced]).await.unwrap();

    let details = |row: &UsageRow| {
        (
            row.requests,
            row.cached_tokens,
            row.cache_write_5m_tokens,
            row.cache_write_1h_tokens,
            row.reasoning_tokens,
            row.cost_micro_usd,
            row.unpriced_requests,
        )
    };
    // Whole hours (the rollup), and a range with partial hours at both
    // edges (the raw events), give the same totals.
    for (from_ms, to_ms) in [(None, None), (Some(T0 + 5), Some(T0 + HOUR + 20))] {
        let filter = UsageFilter {
            from_ms,
            to_ms,
            ..UsageFilter::new(GroupBy::Key)
        };
        let all = rows(store, filter).await;
        assert_eq!(all.len(), 1);
        assert_eq!(details(&all[0]), (2, 400, 200, 100, 120, 4_321, 1));
    }
    let hourly = rows(
        store,
        UsageFilter {
            bucket: Some(Bucket::Hour),
            ..UsageFilter::new(GroupBy::Key)
        },
    )
    .await;
    let hours: Vec<_> = hourly.iter().map(details).collect();
    assert_eq!(
        hours,
        [(1, 400, 200, 100, 120, 4_321, 0), (1, 0, 0, 0, 0, 0, 1)]
    );
}

pub(crate) async fn redelivery_leaves_rollup_totals_unchanged(store: &dyn UsageStore) {
    let events = varied_events(200);
    store.insert_batch(&events).await.unwrap();
    let filters = filters_to_compare();
    let mut before = Vec::new();
    for filter in &filters {
        before.push(rows(store, filter.clone()).await);
    }

    // The whole batch again, then part of it twice over in one batch.
    let again = store.insert_batch(&events).await.unwrap();
    assert_eq!((again.written, again.duplicates), (0, 200));
    let mut doubled = events[50..120].to_vec();
    doubled.extend_from_slice(&events[60..90]);
    let again = store.insert_batch(&doubled).await.unwrap();
    assert_eq!((again.written, again.duplicates), (0, 100));
    for (filter, expected) in filters.iter().zip(&before) {
        assert_eq!(&rows(store, filter.clone()).await, expected, "{filter:?}");
    }

    // A redelivery mixed with one new event adds exactly that event.
    let mut extra = event("req-new", T0 + 2 * HOUR);
    extra.account_id = "acct-2".into();
    let mixed = store
        .insert_batch(&[events[7].clone(), extra.clone(), events[8].clone()])
        .await
        .unwrap();
    assert_eq!((mixed.written, mixed.duplicates), (1, 2));
    let mut all = events;
    all.push(extra);
    for filter in &filters {
        assert_eq!(
            rows(store, filter.clone()).await,
            recount(&all, filter),
            "{filter:?}"
        );
    }
}

/// Retention at a day-aligned cutoff: the days before it are gone from raw
/// queries (partial hours), whole-hour queries and account totals alike;
/// the days from it on are untouched; a second run finds nothing.
pub(crate) async fn delete_before_removes_old_events_and_rollup_hours(store: &dyn UsageStore) {
    let batch = [
        event("req-3-days", T0 - 3 * DAY + 5 * HOUR),
        event("req-last-ms", T0 - 1),
        event("req-cutoff", T0),
        event("req-later", T0 + DAY + 30 * 60_000),
    ];
    store.insert_batch(&batch).await.unwrap();

    let outcome = store.delete_before(T0).await.unwrap();
    assert_eq!(outcome.rollup_rows_deleted, 2, "{outcome:?}");
    assert_eq!(
        outcome.partitions_dropped + outcome.rows_deleted,
        2,
        "{outcome:?}"
    );
    let all = rows(store, UsageFilter::new(GroupBy::Key)).await;
    assert_eq!(requests(&all), [("key-a", 2)]);
    // A range with partial hours at both edges reads the raw events.
    let ragged = UsageFilter {
        from_ms: Some(T0 - 3 * DAY + 1),
        to_ms: Some(T0 + DAY + HOUR - 1),
        ..UsageFilter::new(GroupBy::Key)
    };
    assert_eq!(requests(&rows(store, ragged).await), [("key-a", 2)]);
    let totals = store.tokens_by_account_since(T0 - 10 * DAY).await.unwrap();
    assert_eq!(totals, [("acct-1".to_owned(), 30)]);

    let again = store.delete_before(T0).await.unwrap();
    assert_eq!(again, super::RetentionOutcome::default());
    // Late events for a deleted day can still be written.
    store
        .insert_batch(&[event("req-late", T0 - 2 * DAY)])
        .await
        .unwrap();
    let all = rows(store, UsageFilter::new(GroupBy::Key)).await;
    assert_eq!(requests(&all), [("key-a", 3)]);
}
