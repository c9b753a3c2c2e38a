//! The boundary between the wire messages and the usage store's domain types:
//! validation happens here, once.

use tollgate_core::GatewayError;
use tollgate_proto::v1::{UsageEvent, UsageQuery, UsageRow as WireRow};
use tollgate_usage_store::{Bucket, GroupBy, UsageFilter, UsageRecord, UsageRow};

/// The longest request id an event may carry (the edge's own ids are 36
/// bytes; this leaves room for other producers).
pub const MAX_REQUEST_ID_LEN: usize = 256;

/// Checks what the store relies on: a request id that is present and short.
pub fn validate_event(event: &UsageEvent) -> Result<(), GatewayError> {
    if event.request_id.is_empty() {
        return Err(GatewayError::invalid(
            "events.request_id",
            "every usage event needs a request_id",
        ));
    }
    if event.request_id.len() > MAX_REQUEST_ID_LEN {
        return Err(GatewayError::invalid(
            "events.request_id",
            format!("request_id must be at most {MAX_REQUEST_ID_LEN} bytes"),
        ));
    }
    Ok(())
}

/// A validated usage event as a store record.
pub fn record_from_event(event: UsageEvent) -> Result<UsageRecord, GatewayError> {
    validate_event(&event)?;
    Ok(UsageRecord {
        request_id: event.request_id,
        started_at_ms: event.started_at_ms,
        finished_at_ms: event.finished_at_ms,
        key_id: event.key_id,
        profile: event.profile,
        account_id: event.account_id,
        provider: event.provider,
        requested_model: event.requested_model,
        upstream_model: event.upstream_model,
        prompt_tokens: event.prompt_tokens,
        completion_tokens: event.completion_tokens,
        cached_tokens: event.cached_tokens,
        cache_write_5m_tokens: event.cache_write_5m_tokens,
        cache_write_1h_tokens: event.cache_write_1h_tokens,
        reasoning_tokens: event.reasoning_tokens,
        cost_micro_usd: event.cost_micro_usd,
        // An event with a cost was priced, also from a router older than
        // the `priced` field (which reads as false there).
        priced: event.priced || event.cost_micro_usd > 0,
        latency_ms: event.latency_ms,
        ttft_ms: event.ttft_ms,
        status: event.status,
        error_code: event.error_code,
        attempts: event.attempts,
        streamed: event.streamed,
    })
}

/// A time bound: 0 means unbounded, a negative time is refused.
fn bound(ms: i64, param: &str) -> Result<Option<i64>, GatewayError> {
    match ms {
        0 => Ok(None),
        ms if ms < 0 => Err(GatewayError::invalid(
            param,
            format!("{param} must not be before 1970-01-01T00:00:00Z"),
        )),
        ms => Ok(Some(ms)),
    }
}

/// A validated usage query as a store filter. The `param` of an error names
/// the admin API's query parameter (`group_by`, `bucket`, `from`, `to`).
pub fn filter_from_query(query: UsageQuery) -> Result<UsageFilter, GatewayError> {
    let group_by = GroupBy::parse(&query.group_by).ok_or_else(|| {
        GatewayError::invalid(
            "group_by",
            "group_by must be one of key, account, model, profile, provider",
        )
    })?;
    let bucket = match query.bucket.as_str() {
        "" => None,
        name => Some(
            Bucket::parse(name)
                .ok_or_else(|| GatewayError::invalid("bucket", "bucket must be hour or day"))?,
        ),
    };
    let from_ms = bound(query.from_ms, "from")?;
    let to_ms = bound(query.to_ms, "to")?;
    if let (Some(from), Some(to)) = (from_ms, to_ms)
        && from > to
    {
        return Err(GatewayError::invalid("from", "from must not be after to"));
    }
    Ok(UsageFilter {
        group_by,
        from_ms,
        to_ms,
        bucket,
        account_id: Some(query.account_id).filter(|id| !id.is_empty()),
    })
}

/// A store row as a wire row.
pub(crate) fn row_to_wire(row: UsageRow) -> WireRow {
    WireRow {
        group: row.group,
        bucket_start_ms: row.bucket_start_ms,
        requests: row.requests,
        errors: row.errors,
        prompt_tokens: row.prompt_tokens,
        completion_tokens: row.completion_tokens,
        total_tokens: row.total_tokens,
        cost_micro_usd: row.cost_micro_usd,
        cached_tokens: row.cached_tokens,
        cache_write_5m_tokens: row.cache_write_5m_tokens,
        cache_write_1h_tokens: row.cache_write_1h_tokens,
        reasoning_tokens: row.reasoning_tokens,
        unpriced_requests: row.unpriced_requests,
    }
}

#[cfg(test)]
mod tests {
    use tollgate_core::ErrorKind;

    use super::*;

    fn query(group_by: &str, bucket: &str) -> UsageQuery {
        UsageQuery {
            group_by: group_by.into(),
            bucket: bucket.into(),
            ..UsageQuery::default()
        }
    }

    fn rejected_param(query: UsageQuery) -> String {
        let error = filter_from_query(query).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidRequest);
        error.param.unwrap()
    }

    #[test]
    fn a_full_query_becomes_a_filter() {
        let filter = filter_from_query(UsageQuery {
            group_by: "provider".into(),
            from_ms: 1_000,
            to_ms: 2_000,
            bucket: "day".into(),
            account_id: "acct-1".into(),
        })
        .unwrap();
        assert_eq!(
            filter,
            UsageFilter {
                group_by: GroupBy::Provider,
                from_ms: Some(1_000),
                to_ms: Some(2_000),
                bucket: Some(Bucket::Day),
                account_id: Some("acct-1".into()),
            }
        );
    }

    #[test]
    fn zero_and_empty_mean_unbounded() {
        let filter = filter_from_query(query("model", "")).unwrap();
        assert_eq!(filter, UsageFilter::new(GroupBy::Model));
    }

    #[test]
    fn bad_queries_name_their_parameter() {
        assert_eq!(rejected_param(query("", "")), "group_by");
        assert_eq!(rejected_param(query("tenant", "")), "group_by");
        assert_eq!(rejected_param(query("key", "week")), "bucket");
        assert_eq!(rejected_param(query("key", "Hour")), "bucket");
        let negative = UsageQuery {
            from_ms: -5,
            ..query("key", "")
        };
        assert_eq!(rejected_param(negative), "from");
        let reversed = UsageQuery {
            from_ms: 10,
            to_ms: 5,
            ..query("key", "")
        };
        assert_eq!(rejected_param(reversed), "from");
    }

    #[test]
    fn events_need_a_short_request_id() {
        let error = record_from_event(UsageEvent::default()).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidRequest);
        assert_eq!(error.param.as_deref(), Some("events.request_id"));

        let long = UsageEvent {
            request_id: "r".repeat(MAX_REQUEST_ID_LEN + 1),
            ..UsageEvent::default()
        };
        assert!(record_from_event(long).is_err());
    }

    #[test]
    fn an_event_with_a_cost_was_priced() {
        let event = |cost_micro_usd, priced| UsageEvent {
            request_id: "req".into(),
            prompt_tokens: 10,
            cost_micro_usd,
            priced,
            ..UsageEvent::default()
        };
        let priced = |event| record_from_event(event).unwrap().priced;
        assert!(priced(event(5, false)));
        assert!(priced(event(0, true)));
        assert!(!priced(event(0, false)));
    }

    #[test]
    fn events_keep_every_field() {
        let event = UsageEvent {
            request_id: "req-1".into(),
            started_at_ms: 1,
            finished_at_ms: 2,
            key_id: "key".into(),
            profile: "team".into(),
            account_id: "acct".into(),
            provider: "openai".into(),
            requested_model: "fast".into(),
            upstream_model: "gpt-4o-mini".into(),
            prompt_tokens: 3,
            completion_tokens: 4,
            cached_tokens: 5,
            cache_write_5m_tokens: 10,
            cache_write_1h_tokens: 11,
            reasoning_tokens: 12,
            cost_micro_usd: 6,
            priced: true,
            latency_ms: 7,
            ttft_ms: 8,
            status: 429,
            error_code: "quota_exhausted".into(),
            attempts: 9,
            streamed: true,
        };
        let record = record_from_event(event).unwrap();
        assert_eq!(
            record,
            UsageRecord {
                request_id: "req-1".into(),
                started_at_ms: 1,
                finished_at_ms: 2,
                key_id: "key".into(),
                profile: "team".into(),
                account_id: "acct".into(),
                provider: "openai".into(),
                requested_model: "fast".into(),
                upstream_model: "gpt-4o-mini".into(),
                prompt_tokens: 3,
                completion_tokens: 4,
                cached_tokens: 5,
                cache_write_5m_tokens: 10,
                cache_write_1h_tokens: 11,
                reasoning_tokens: 12,
                cost_micro_usd: 6,
                priced: true,
                latency_ms: 7,
                ttft_ms: 8,
                status: 429,
                error_code: "quota_exhausted".into(),
                attempts: 9,
                streamed: true,
            }
        );
    }
}
