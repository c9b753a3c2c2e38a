//! The model list in Anthropic's shape, for clients that send
//! `anthropic-version` (Claude Code's gateway model discovery, the
//! `anthropic` SDKs' `models.list`): each model a `type: "model"` object
//! with `display_name` (the name: the catalog has no display names),
//! `created_at` (the epoch, as Anthropic's reference allows when the
//! release date is unknown) and, where the catalog knows them,
//! `max_input_tokens` and `max_tokens`; paged by `limit` (1 to 1000,
//! default 20) and the `after_id` / `before_id` cursors, with `first_id`,
//! `last_id` and `has_more`.

use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_core::GatewayError;

use super::Listed;

/// Models per page when the request names no `limit`.
pub const DEFAULT_LIMIT: usize = 20;
/// The most models one page may hold.
pub const MAX_LIMIT: usize = 1000;

/// `created_at` of every model: the catalog knows no release dates.
const UNKNOWN_RELEASE: &str = "1970-01-01T00:00:00Z";

/// The query string of an Anthropic model list (other parameters, such as
/// `beta=true`, are ignored).
#[derive(Debug, Default, Deserialize)]
pub struct Page {
    limit: Option<usize>,
    after_id: Option<String>,
    before_id: Option<String>,
}

/// The page of `listed` that `page` asks for, in Anthropic's shape.
pub fn model_list(listed: &[Listed], page: &Page) -> Result<Value, GatewayError> {
    let limit = page.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(GatewayError::invalid(
            "limit",
            format!("`limit` must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let position = |cursor: &str, param: &str| {
        listed
            .iter()
            .position(|model| model.id == cursor)
            .ok_or_else(|| {
                GatewayError::invalid(param, format!("no model `{cursor}` to page from"))
            })
    };
    let (items, has_more) = match (&page.after_id, &page.before_id) {
        (Some(_), Some(_)) => {
            return Err(GatewayError::invalid(
                "before_id",
                "`after_id` and `before_id` cannot be combined",
            ));
        }
        (Some(after), None) => {
            let rest = &listed[position(after, "after_id")? + 1..];
            (&rest[..limit.min(rest.len())], rest.len() > limit)
        }
        (None, Some(before)) => {
            let rest = &listed[..position(before, "before_id")?];
            (
                &rest[rest.len().saturating_sub(limit)..],
                rest.len() > limit,
            )
        }
        (None, None) => (&listed[..limit.min(listed.len())], listed.len() > limit),
    };
    Ok(json!({
        "data": items.iter().map(model).collect::<Vec<_>>(),
        "first_id": items.first().map(|model| model.id.as_str()),
        "last_id": items.last().map(|model| model.id.as_str()),
        "has_more": has_more,
    }))
}

/// One model in Anthropic's shape.
pub fn model(listed: &Listed) -> Value {
    let mut item = json!({
        "type": "model",
        "id": listed.id,
        "display_name": listed.id,
        "created_at": UNKNOWN_RELEASE,
    });
    if let Some(info) = listed.info {
        if let Some(window) = info.context_window {
            item["max_input_tokens"] = Value::from(window);
        }
        if let Some(output) = info.max_output_tokens {
            item["max_tokens"] = Value::from(output);
        }
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::catalog::Catalog;

    fn models(ids: &[&str]) -> Vec<Listed> {
        ids.iter()
            .map(|id| Listed {
                id: (*id).to_owned(),
                owner: "anthropic".to_owned(),
                info: Catalog::builtin().find(id),
            })
            .collect()
    }

    fn page(limit: Option<usize>, after: Option<&str>, before: Option<&str>) -> Page {
        Page {
            limit,
            after_id: after.map(str::to_owned),
            before_id: before.map(str::to_owned),
        }
    }

    fn ids(list: &Value) -> Vec<&str> {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|model| model["id"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn models_carry_anthropics_fields_and_the_catalogs_limits() {
        let list = model_list(
            &models(&["claude-sonnet-4-5-20250929", "house"]),
            &Page::default(),
        )
        .unwrap();
        assert_eq!(
            list,
            json!({
                "data": [
                    {"type": "model", "id": "claude-sonnet-4-5-20250929",
                     "display_name": "claude-sonnet-4-5-20250929",
                     "created_at": "1970-01-01T00:00:00Z",
                     "max_input_tokens": 200_000, "max_tokens": 64_000},
                    {"type": "model", "id": "house", "display_name": "house",
                     "created_at": "1970-01-01T00:00:00Z"},
                ],
                "first_id": "claude-sonnet-4-5-20250929",
                "last_id": "house",
                "has_more": false,
            })
        );
    }

    #[test]
    fn pages_follow_the_cursors_both_ways() {
        let all = models(&["a", "b", "c", "d", "e"]);
        let first = model_list(&all, &page(Some(2), None, None)).unwrap();
        assert_eq!(
            (ids(&first), &first["has_more"]),
            (vec!["a", "b"], &json!(true))
        );
        let next = model_list(&all, &page(Some(2), Some("b"), None)).unwrap();
        assert_eq!(
            (ids(&next), &next["has_more"]),
            (vec!["c", "d"], &json!(true))
        );
        let last = model_list(&all, &page(Some(2), Some("d"), None)).unwrap();
        assert_eq!((ids(&last), &last["has_more"]), (vec!["e"], &json!(false)));
        let back = model_list(&all, &page(Some(2), None, Some("e"))).unwrap();
        assert_eq!(
            (ids(&back), &back["has_more"]),
            (vec!["c", "d"], &json!(true))
        );
        let start = model_list(&all, &page(Some(2), None, Some("b"))).unwrap();
        assert_eq!(
            (ids(&start), &start["has_more"]),
            (vec!["a"], &json!(false))
        );
        let empty = model_list(&[], &Page::default()).unwrap();
        assert_eq!(empty["first_id"], Value::Null);
        assert_eq!(empty["last_id"], Value::Null);
    }

    #[test]
    fn bad_pages_are_refused_by_name() {
        let all = models(&["a", "b"]);
        let cases = [
            (page(Some(0), None, None), "limit"),
            (page(Some(1001), None, None), "limit"),
            (page(None, Some("zz"), None), "after_id"),
            (page(None, None, Some("zz")), "before_id"),
            (page(None, Some("a"), Some("b")), "before_id"),
        ];
        for (page, param) in cases {
            let error = model_list(&all, &page).unwrap_err();
            assert_eq!(error.param.as_deref(), Some(param));
        }
    }
}
