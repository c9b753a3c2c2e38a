//! The OpenAPI document held to the code it describes.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tollgate_control_store::{STRATEGIES, strategy_name};
use tollgate_core::{GatewayError, Provider};
use tollgate_proto::v1::{
    AccountRecord, AccountStats, AccountSyncReport, KeyRecord, ProfileRecord, ResealReport,
    RouteRecord, UsageReport, UsageRow,
};

use super::*;
use crate::handlers::admin::{
    account_test, accounts, audit, keys, profiles, route_table, routes, stored_profiles, sync,
    usage,
};
use crate::state::send::{request, send};
use crate::state::testing::{ADMIN_TOKEN, services_down};

/// The keys of an OpenAPI path item that are operations.
const OPERATIONS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[test]
fn the_written_part_is_json_and_leaves_the_derived_schemas_to_the_types() {
    let written: Value = serde_json::from_str(WRITTEN).expect("openapi.json is JSON");
    let derived = serde_json::to_value(Derived::openapi()).unwrap();
    let derived = names(&derived["components"]["schemas"]);
    assert!(derived.contains("Account") && derived.contains("NewKey"));
    let written = names(&written["components"]["schemas"]);
    let both: Vec<&String> = written.intersection(&derived).collect();
    assert!(both.is_empty(), "written by hand and derived: {both:?}");
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    schema
}

/// What a local `$ref` names; a dangling one fails the test.
fn resolve<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    reference
        .strip_prefix('#')
        .and_then(|pointer| doc.pointer(pointer))
        .unwrap_or_else(|| panic!("$ref {reference} names nothing in the document"))
}

/// `value`, or what it refers to when it is a `$ref`.
fn deref<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => deref(doc, resolve(doc, reference)),
        None => value,
    }
}

fn collect_refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            found.extend(map.get("$ref").and_then(Value::as_str));
            map.values().for_each(|child| collect_refs(child, found));
        }
        Value::Array(items) => items.iter().for_each(|child| collect_refs(child, found)),
        _ => {}
    }
}

/// Each documented path with its methods, upper-case.
fn documented(doc: &Value) -> Vec<(String, BTreeSet<String>)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .expect("a path item")
                .keys()
                .filter(|key| OPERATIONS.contains(&key.as_str()))
                .map(|key| key.to_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// `path` with each `{parameter}` filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "p1"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn names(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|map| map.keys().cloned().collect())
        .unwrap_or_default()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `schema` allows JSON `null`.
fn allows_null(doc: &Value, schema: &Value) -> bool {
    let schema = deref(doc, schema);
    let kind = &schema["type"];
    kind == "null"
        || kind
            .as_array()
            .is_some_and(|kinds| kinds.contains(&json!("null")))
        || schema["oneOf"]
            .as_array()
            .is_some_and(|options| options.iter().any(|option| allows_null(doc, option)))
}

/// A value `schema` allows, with every property it documents.
fn example(doc: &Value, schema: &Value) -> Value {
    let schema = deref(doc, schema);
    if let Some(options) = schema["oneOf"].as_array() {
        let option = options.iter().find(|option| !allows_null(doc, option));
        return example(doc, option.expect("a non-null option"));
    }
    if let Some(value) = schema["enum"].get(0).or(schema.get("const")) {
        return value.clone();
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds.iter().find(|kind| *kind != "null"),
        kind => Some(kind),
    };
    match kind.and_then(Value::as_str) {
        Some("string") if schema["format"] == "date-time" => json!("2030-01-01T00:00:00Z"),
        Some("string") => json!("x"),
        Some("integer") => json!(1),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        Some("array") => json!([example(doc, &schema["items"])]),
        // An object of named properties, or a map (no properties: empty).
        Some("object") => Value::Object(
            schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, property)| (name.clone(), example(doc, property)))
                .collect(),
        ),
        other => panic!("no example for type {other:?}"),
    }
}

/// Holds the request schema `name` to the struct the handler reads:
/// a body with every documented field is accepted, an undocumented
/// field is refused, and (for a PATCH) `null` is accepted in exactly
/// the fields the document lets be `null`.
fn check_request<T: DeserializeOwned>(
    doc: &Value,
    name: &str,
    patch: bool,
    accept: impl Fn(T) -> Result<(), GatewayError>,
) {
    let schema = schema(doc, name);
    let parse = |body: &Value| {
        serde_json::from_value::<T>(body.clone())
            .map_err(|error| error.to_string())
            .and_then(|input| accept(input).map_err(|error| error.message))
    };
    let full = example(doc, schema);
    if let Err(error) = parse(&full) {
        panic!("{name}: {full} is refused: {error}");
    }
    assert_eq!(schema["additionalProperties"], json!(false), "{name}");
    let mut extra = full.clone();
    extra["undocumented"] = json!(1);
    assert!(
        parse(&extra).is_err(),
        "{name} accepts an undocumented field"
    );
    if !patch {
        return;
    }
    for (field, property) in schema["properties"].as_object().expect("properties") {
        let mut body = full.clone();
        body[field] = Value::Null;
        assert_eq!(
            parse(&body).is_ok(),
            allows_null(doc, property),
            "{name}.{field}: whether null is accepted"
        );
    }
}

/// Holds the read schema `name` to what a handler writes: the same
/// fields, every one always present.
fn check_read(doc: &Value, name: &str, written: &Value) {
    let schema = schema(doc, name);
    assert_eq!(names(written), names(&schema["properties"]), "{name}");
    assert_eq!(strings(&schema["required"]), names(written), "{name}");
}

#[test]
fn the_document_is_openapi_3_1_whose_references_and_path_parameters_hold() {
    let doc = document_json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let mut references = Vec::new();
    collect_refs(&doc, &mut references);
    assert!(references.len() > 50);
    for reference in references {
        resolve(&doc, reference);
    }
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let wanted: BTreeSet<&str> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, operation) in item.as_object().expect("a path item") {
            if !OPERATIONS.contains(&method.as_str()) {
                continue;
            }
            let declared: BTreeSet<&str> = [&item["parameters"], &operation["parameters"]]
                .into_iter()
                .filter_map(Value::as_array)
                .flatten()
                .map(|parameter| deref(&doc, parameter))
                .filter(|parameter| parameter["in"] == "path")
                .filter_map(|parameter| parameter["name"].as_str())
                .collect();
            assert_eq!(declared, wanted, "{method} {path}");
            assert!(operation["operationId"].is_string(), "{method} {path}");
            for (status, response) in operation["responses"].as_object().expect("responses") {
                if !status.starts_with('2') {
                    assert_eq!(
                        deref(&doc, response)["content"]["application/json"]["schema"],
                        json!({"$ref": "#/components/schemas/Error"}),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    let error = GatewayError::invalid("name", "bad").openai_body();
    check_read(&doc, "Error", &error);
    let detail = &schema(&doc, "Error")["properties"]["error"];
    assert_eq!(names(&error["error"]), names(&detail["properties"]));
    assert_eq!(names(&error["error"]), strings(&detail["required"]));
}

#[tokio::test]
async fn every_admin_route_is_documented_with_the_methods_it_serves() {
    let doc = document_json();
    let documented = documented(&doc);
    let paths: BTreeSet<String> = documented.iter().map(|(path, _)| path.clone()).collect();
    let served: BTreeSet<String> = route_table()
        .iter()
        .map(|(path, _)| format!("/admin/v1{path}"))
        .chain([PATH.to_owned()])
        .collect();
    assert_eq!(paths, served);

    // A method no route serves is answered 405 with every method the
    // path does serve in `Allow` (HEAD comes with GET).
    let router = crate::admin_router(services_down());
    let auth = format!("Bearer {ADMIN_TOKEN}");
    for (path, methods) in &documented {
        let probe = request("PROBE", &concrete(path), &[("authorization", &auth)], "");
        let answer = send(router.clone(), probe).await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        let allowed: BTreeSet<String> = answer.headers["allow"]
            .to_str()
            .unwrap()
            .split(',')
            .map(|method| method.trim().to_owned())
            .collect();
        let mut expected = methods.clone();
        if methods.contains("GET") {
            expected.insert("HEAD".to_owned());
        }
        assert_eq!(allowed, expected, "{path}");
    }
}

#[tokio::test]
async fn only_the_document_is_served_without_the_admin_token() {
    let doc = document_json();
    let scheme = &doc["components"]["securitySchemes"]["adminToken"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&json!("http"), &json!("bearer"))
    );
    assert_eq!(doc["security"], json!([{"adminToken": []}]));

    let router = crate::admin_router(services_down());
    for (path, methods) in documented(&doc) {
        for method in methods {
            let operation = &doc["paths"][&path][method.to_lowercase()];
            let open = operation.get("security") == Some(&json!([]));
            assert_eq!(open, path == PATH, "{method} {path}");
            if !open {
                let answer =
                    send(router.clone(), request(&method, &concrete(&path), &[], "")).await;
                assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            }
        }
    }

    let answer = send(router, request("GET", PATH, &[], "")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(answer.json, doc);
}

#[test]
fn request_bodies_are_what_the_handlers_read() {
    let doc = document_json();
    let id = || "p1".to_owned();
    check_request(&doc, "NewKey", false, |body: NewKey| {
        keys::spec(body).map(drop)
    });
    check_request(&doc, "KeyPatch", true, |body: KeyPatch| {
        keys::update_of(body, id()).map(drop)
    });
    check_request(&doc, "NewAccount", false, |body: NewAccount| {
        accounts::spec(body).map(drop)
    });
    check_request(&doc, "AccountPatch", true, |body: AccountPatch| {
        accounts::update_of(body, id()).map(drop)
    });
    check_request(&doc, "NewRoute", false, |body: NewRoute| {
        routes::spec(body);
        Ok(())
    });
    check_request(&doc, "RoutePatch", true, |body: RoutePatch| {
        routes::update_of(body, id()).map(drop)
    });
    check_request(&doc, "NewProfile", false, |body: NewProfile| {
        stored_profiles::spec(body);
        Ok(())
    });
    check_request(&doc, "ProfilePatch", true, |body: ProfilePatch| {
        stored_profiles::update_of(body, id()).map(drop)
    });
    check_request(
        &doc,
        "AccountTestRequest",
        false,
        |_: account_test::TestParams| Ok(()),
    );
    for name in ["NewAccount", "AccountPatch"] {
        assert_eq!(
            schema(&doc, name)["properties"]["secret"]["writeOnly"],
            true,
            "{name}"
        );
    }
}

#[test]
fn read_shapes_are_what_the_handlers_write() {
    let doc = document_json();
    check_read(&doc, "Key", &keys::key_json(&KeyRecord::default()));
    check_read(
        &doc,
        "Account",
        &accounts::account_json(&AccountRecord::default()),
    );
    assert!(
        schema(&doc, "Account")["properties"]
            .get("secret")
            .is_none()
    );
    check_read(&doc, "Route", &routes::route_json(&RouteRecord::default()));
    check_read(
        &doc,
        "Profile",
        &stored_profiles::profile_json(&ProfileRecord::default()),
    );
    check_read(
        &doc,
        "AccountStats",
        &profiles::account_json(&AccountStats::default(), None),
    );
    check_read(
        &doc,
        "ResealReport",
        &audit::reseal_json(&ResealReport::default()),
    );
    check_read(
        &doc,
        "AccountSyncReport",
        &sync::report_json(&AccountSyncReport::default()),
    );
    let report = UsageReport {
        rows: vec![UsageRow::default()],
    };
    let row = schema(&doc, "UsageRow");
    let bucketed = usage::report_json(&report, true);
    assert_eq!(names(&bucketed["rows"][0]), names(&row["properties"]));
    let totals = usage::report_json(&report, false);
    assert_eq!(names(&totals["rows"][0]), strings(&row["required"]));
}

#[test]
fn providers_and_strategies_are_the_gateways() {
    let doc = document_json();
    let providers: Vec<&str> = Provider::ALL
        .iter()
        .map(|provider| provider.as_str())
        .collect();
    assert_eq!(schema(&doc, "Provider")["enum"], json!(providers));
    let strategies: Vec<&str> = STRATEGIES.into_iter().map(strategy_name).collect();
    assert_eq!(schema(&doc, "Strategy")["enum"], json!(strategies));
}
