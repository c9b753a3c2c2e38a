//! `tollgate.v1.Analytics` over a usage store.

use std::sync::Arc;
use std::time::Instant;

use tollgate_core::{ErrorKind, GatewayError};
use tollgate_proto::v1::{
    AccountTokens, AccountTokensQuery, AccountTokensReport, IngestReply, KeySpend, KeyTokens,
    PingReply, PingRequest, UsageBatch, UsageQuery, UsageReport,
};
use tollgate_proto::{Analytics, GatewayErrorExt};
use tollgate_telemetry::Metrics;
use tollgate_usage_store::{InsertOutcome, UsageError, UsageRecord, UsageStore};
use tonic::{Request, Response, Status};

use crate::convert::{filter_from_query, record_from_event, row_to_wire};

/// Stores usage events and answers usage queries.
pub struct AnalyticsService {
    store: Arc<dyn UsageStore>,
    metrics: Arc<Metrics>,
}

impl AnalyticsService {
    pub(crate) fn new(store: Arc<dyn UsageStore>, metrics: Arc<Metrics>) -> Self {
        Self { store, metrics }
    }

    /// Writes one batch, recording the analytics metrics. A failure is
    /// reported as `Unavailable`: the batch was not stored and may be resent.
    async fn write(&self, records: &[UsageRecord]) -> Result<InsertOutcome, GatewayError> {
        let analytics = &self.metrics.analytics;
        let pending = u64::try_from(records.len()).unwrap_or(u64::MAX);
        analytics.lag.inc_by(pending);
        let started = Instant::now();
        let result = self.store.insert_batch(records).await;
        analytics
            .batch_duration
            .observe(started.elapsed().as_secs_f64());
        analytics.batch_size.observe(records.len() as f64);
        analytics.lag.dec_by(pending);
        match result {
            Ok(outcome) => {
                analytics.events_written.inc_by(outcome.written);
                analytics.duplicates_skipped.inc_by(outcome.duplicates);
                Ok(outcome)
            }
            Err(error) => {
                analytics.write_errors.inc();
                tracing::warn!(events = records.len(), %error, "usage batch write failed");
                Err(GatewayError::new(
                    ErrorKind::Unavailable,
                    "usage store unavailable; retry the batch",
                ))
            }
        }
    }
}

#[tonic::async_trait]
impl Analytics for AnalyticsService {
    async fn ping(&self, _request: Request<PingRequest>) -> Result<Response<PingReply>, Status> {
        Ok(Response::new(PingReply {
            service: "analytics".into(),
        }))
    }

    /// Answers once every event of the batch is stored (or was already), so
    /// a caller that sees an error may resend the batch.
    async fn ingest(&self, request: Request<UsageBatch>) -> Result<Response<IngestReply>, Status> {
        let events = request.into_inner().events;
        let received = u64::try_from(events.len()).unwrap_or(u64::MAX);
        self.metrics.analytics.events_received.inc_by(received);
        let records = events
            .into_iter()
            .map(record_from_event)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| error.to_status())?;
        if records.is_empty() {
            return Ok(Response::new(IngestReply { accepted: 0 }));
        }
        self.write(&records)
            .await
            .map_err(|error| error.to_status())?;
        Ok(Response::new(IngestReply {
            accepted: u32::try_from(records.len()).unwrap_or(u32::MAX),
        }))
    }

    async fn query_usage(
        &self,
        request: Request<UsageQuery>,
    ) -> Result<Response<UsageReport>, Status> {
        let filter = filter_from_query(request.into_inner()).map_err(|error| error.to_status())?;
        let rows = self.store.query(&filter).await.map_err(|error| {
            tracing::warn!(%error, "usage query failed");
            GatewayError::new(ErrorKind::Unavailable, "usage store unavailable; try again")
                .to_status()
        })?;
        Ok(Response::new(UsageReport {
            rows: rows.into_iter().map(row_to_wire).collect(),
        }))
    }

    async fn account_tokens_since(
        &self,
        request: Request<AccountTokensQuery>,
    ) -> Result<Response<AccountTokensReport>, Status> {
        let query = request.into_inner();
        let since_ms = query.since_ms;
        let unavailable = |error: UsageError| {
            tracing::warn!(%error, "usage totals per account and key failed");
            GatewayError::new(ErrorKind::Unavailable, "usage store unavailable; try again")
                .to_status()
        };
        let accounts = self
            .store
            .tokens_by_account_since(since_ms)
            .await
            .map_err(unavailable)?;
        let keys = self
            .store
            .tokens_by_key_since(since_ms)
            .await
            .map_err(unavailable)?;
        let key_spend = if query.spend_since_ms > 0 {
            self.store
                .cost_by_key_since(query.spend_since_ms)
                .await
                .map_err(unavailable)?
        } else {
            Vec::new()
        };
        Ok(Response::new(AccountTokensReport {
            key_spend: key_spend
                .into_iter()
                .map(|(key_id, cost_micro_usd)| KeySpend {
                    key_id,
                    cost_micro_usd,
                })
                .collect(),
            accounts: accounts
                .into_iter()
                .map(|(account_id, tokens)| AccountTokens { account_id, tokens })
                .collect(),
            keys: keys
                .into_iter()
                .map(|(key_id, tokens)| KeyTokens { key_id, tokens })
                .collect(),
        }))
    }
}
