//! The API document and the server agree: what the document forbids is
//! refused, the rules the server applies are in the document, and
//! responses are described as what they are.

use serde_json::{Value, json};

use crate::harness::Harness;

async fn document(h: &Harness) -> Value {
    h.anonymous().get("/openapi.json").await.expect(200).body
}

/// poem-openapi reads a JSON boolean or number into a `String` field, and
/// `null` into any optional field: `{"slug": false}` made the slug
/// `"false"`. The document says `string`, not nullable.
#[tokio::test]
async fn bodies_the_document_forbids_are_refused_with_each_field_named() {
    let h = Harness::new().await;
    let reply = h
        .admin()
        .post("/dashboards", json!({ "name": "Sales", "slug": false }))
        .await
        .problem(400, "request.invalid");
    assert_eq!(reply.body["errors"][0]["field"], "slug", "{}", reply.text());
    assert_eq!(reply.body["errors"][0]["code"], "type_mismatch");
    h.admin()
        .post("/groups", json!({ "name": 7 }))
        .await
        .problem(400, "request.invalid");

    let datasource = h.sample_datasource().await;
    let run = |max_age: Value| json!({ "datasource_id": datasource, "sql": "select 1", "max_age_seconds": max_age });
    let reply = h
        .admin()
        .post("/runs", run(Value::Null))
        .await
        .problem(400, "request.invalid");
    assert_eq!(reply.body["errors"][0]["field"], "max_age_seconds");
    h.admin()
        .post("/runs", run(json!(-1)))
        .await
        .problem(400, "request.invalid");
    h.admin().post("/runs", run(json!(0))).await.expect(202);

    // Nested values too, by their path.
    let reply = h
        .admin()
        .post(
            "/dashboards",
            json!({ "name": "Grid", "widgets": [{ "kind": "text", "text": "hi", "x": 0, "y": 0, "w": 2, "h": 4294967296u64 }] }),
        )
        .await
        .problem(400, "request.invalid");
    assert_eq!(
        reply.body["errors"][0]["field"],
        "widgets[0]",
        "{}",
        reply.text()
    );
}

/// Names refuse control characters (not tab or newline), and the document
/// says so with a pattern; a schema-valid name is accepted.
#[tokio::test]
async fn names_state_the_control_character_rule_they_apply() {
    let h = Harness::new().await;
    let doc = document(&h).await;
    let pattern = doc["components"]["schemas"]["NewGroupDto"]["properties"]["name"]["pattern"]
        .as_str()
        .expect("a pattern on names");
    assert!(pattern.contains("\\u0000-\\u0008"), "{pattern}");
    h.admin()
        .post("/groups", json!({ "name": "tab\there" }))
        .await
        .expect(201);
    h.admin()
        .post("/groups", json!({ "name": "bell\u{7}" }))
        .await
        .problem_json(400);
    h.admin()
        .post("/groups", json!({ "name": "next\u{85}line" }))
        .await
        .problem_json(400);
}

/// Integer formats carry their range, so a client knows a `uint32` above
/// 2^32 - 1 is refused.
#[tokio::test]
async fn integers_in_the_document_carry_their_formats_range() {
    let h = Harness::new().await;
    let doc = document(&h).await;
    let mut unbounded = Vec::new();
    walk(&doc, "", &mut |path, node| {
        if node["type"] == "integer" && (node["minimum"].is_null() || node["maximum"].is_null()) {
            unbounded.push(path.to_owned());
        }
    });
    assert!(
        unbounded.is_empty(),
        "integers without a range: {unbounded:?}"
    );
    // Swagger UI shows the same document.
    let docs = h.site().get("/docs").await.expect(200).text();
    assert!(
        docs.contains("4294967295"),
        "the docs page embeds another document"
    );
}

fn walk(node: &Value, path: &str, visit: &mut impl FnMut(&str, &Value)) {
    visit(path, node);
    match node {
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| walk(v, &format!("{path}/{k}"), visit)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| walk(v, &format!("{path}/{i}"), visit)),
        _ => {}
    }
}

/// A JSON download is a JSON array of rows, CSV and NDJSON are text, and
/// only Parquet and Arrow are bytes; an unknown column is documented as 400.
#[tokio::test]
async fn downloads_are_described_by_what_each_format_is() {
    let h = Harness::new().await;
    let doc = document(&h).await;
    let op = &doc["paths"]["/runs/{id}/download"]["get"];
    let content = &op["responses"]["200"]["content"];
    assert_eq!(content["application/json"]["schema"]["type"], "array");
    assert_eq!(
        content["application/json"]["schema"]["items"]["type"],
        "object"
    );
    for text in ["text/csv; charset=utf-8", "application/x-ndjson"] {
        assert_eq!(content[text]["schema"]["type"], "string", "{text}");
        assert!(
            content[text]["schema"]["format"].is_null(),
            "{text} is not binary"
        );
    }
    for binary in [
        "application/vnd.apache.parquet",
        "application/vnd.apache.arrow.file",
    ] {
        assert_eq!(content[binary]["schema"]["format"], "binary", "{binary}");
    }
    let columns = op["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "columns"))
        .expect("columns");
    assert!(
        columns["description"]
            .as_str()
            .is_some_and(|d| d.contains("400")),
        "{columns}"
    );
    assert!(op["responses"]["400"].is_object());
}
