//! `tollgate admin usage`: usage totals grouped by account, key, model,
//! profile or provider, optionally per hour or day, as a table.

use clap::{Args, ValueEnum};
use serde_json::Value;
use tollgate_admin_api::UsageReport;

use super::client::AdminClient;
use super::json_text;
use super::table::Table;

/// What the rows are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GroupBy {
    Account,
    Key,
    Model,
    Profile,
    Provider,
}

/// Time buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Bucket {
    Hour,
    Day,
}

#[derive(Debug, Clone, Args)]
pub struct UsageArgs {
    /// Group rows by this [server default: model].
    #[arg(long, env = "TOLLGATE_USAGE_GROUP_BY", value_enum)]
    pub group_by: Option<GroupBy>,
    /// Start of the range: RFC 3339 or unix seconds.
    #[arg(long, env = "TOLLGATE_USAGE_FROM")]
    pub from: Option<String>,
    /// End of the range: RFC 3339 or unix seconds.
    #[arg(long, env = "TOLLGATE_USAGE_TO")]
    pub to: Option<String>,
    /// One row per group and hour or day.
    #[arg(long, env = "TOLLGATE_USAGE_BUCKET", value_enum)]
    pub bucket: Option<Bucket>,
}

impl UsageArgs {
    /// The query string of `GET /admin/v1/usage`: only the parameters given.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(group_by) = self.group_by {
            query.push(("group_by", value_name(group_by)));
        }
        if let Some(from) = &self.from {
            query.push(("from", from.clone()));
        }
        if let Some(to) = &self.to {
            query.push(("to", to.clone()));
        }
        if let Some(bucket) = self.bucket {
            query.push(("bucket", value_name(bucket)));
        }
        query
    }
}

/// The name clap shows for a value, which is also the API's.
fn value_name(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|possible| possible.get_name().to_owned())
        .unwrap_or_default()
}

pub async fn run(client: &AdminClient, args: UsageArgs, json: bool) -> anyhow::Result<String> {
    let answer = client.get("/usage", &args.query()).await?;
    Ok(if json {
        json_text(&answer)
    } else {
        report_table(&answer)
    })
}

/// The usage rows as a table; a `BUCKET` column when the answer has one.
/// Cache writes are the 5-minute and 1-hour ones together; `UNPRICED`
/// counts the requests whose cost is unknown (counted as 0).
pub fn report_table(answer: &Value) -> String {
    let report: UsageReport = serde_json::from_value(answer.clone()).unwrap_or_default();
    let bucketed = report.rows.iter().any(|row| row.bucket_start.is_some());
    let mut headers = vec!["GROUP"];
    if bucketed {
        headers.push("BUCKET");
    }
    headers.extend([
        "REQUESTS",
        "ERRORS",
        "PROMPT",
        "CACHED",
        "CACHE WRITES",
        "COMPLETION",
        "REASONING",
        "TOTAL",
        "COST USD",
        "UNPRICED",
    ]);
    let mut table = Table::new(&headers);
    for row in &report.rows {
        let mut cells = vec![row.group.clone()];
        if let Some(start) = &row.bucket_start {
            cells.push(start.clone());
        }
        for count in [
            row.requests,
            row.errors,
            row.prompt_tokens,
            row.cached_tokens,
            row.cache_write_5m_tokens + row.cache_write_1h_tokens,
            row.completion_tokens,
            row.reasoning_tokens,
            row.total_tokens,
        ] {
            cells.push(count.to_string());
        }
        cells.push(format!("{:.6}", row.cost_usd));
        cells.push(row.unpriced_requests.to_string());
        table.push(cells);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::super::AdminCommand;
    use super::super::tests::parse;
    use super::*;
    use serde_json::json;

    fn usage(args: &[&str]) -> Result<UsageArgs, clap::Error> {
        let mut full = vec!["usage"];
        full.extend_from_slice(args);
        match parse(&full)?.command {
            AdminCommand::Usage(usage) => Ok(usage),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_query_carries_only_the_flags_given() {
        assert!(usage(&[]).unwrap().query().is_empty());
        let query = usage(&[
            "--group-by",
            "provider",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "1800000000",
            "--bucket",
            "hour",
        ])
        .unwrap()
        .query();
        assert_eq!(
            query,
            [
                ("group_by", "provider".to_owned()),
                ("from", "2026-01-01T00:00:00Z".to_owned()),
                ("to", "1800000000".to_owned()),
                ("bucket", "hour".to_owned()),
            ]
        );
        assert!(usage(&["--group-by", "team"]).is_err());
        assert!(usage(&["--bucket", "week"]).is_err());
    }

    #[test]
    fn rows_become_a_table_with_a_bucket_column_when_bucketed() {
        let row = json!({"group": "mock-echo", "requests": 2, "errors": 0, "prompt_tokens": 10,
            "completion_tokens": 5, "total_tokens": 15, "cached_tokens": 4,
            "cache_write_5m_tokens": 2, "cache_write_1h_tokens": 1, "reasoning_tokens": 3,
            "cost_usd": 0.0125, "unpriced_requests": 1});
        let text = report_table(&json!({ "rows": [row] }));
        assert_eq!(
            text,
            "GROUP      REQUESTS  ERRORS  PROMPT  CACHED  CACHE WRITES  COMPLETION  REASONING  \
             TOTAL  COST USD  UNPRICED\n\
             mock-echo  2         0       10      4       3             5           3          \
             15     0.012500  1\n"
        );
        let mut bucketed = row.clone();
        bucketed["bucket_start"] = json!("2026-11-22T00:00:00Z");
        let text = report_table(&json!({ "rows": [bucketed] }));
        assert!(text.starts_with("GROUP      BUCKET "), "{text}");
        assert!(text.contains("2026-11-22T00:00:00Z"));
        assert_eq!(
            report_table(&json!({"rows": []})),
            "GROUP  REQUESTS  ERRORS  PROMPT  CACHED  CACHE WRITES  COMPLETION  REASONING  TOTAL  \
             COST USD  UNPRICED\n"
        );
    }
}
