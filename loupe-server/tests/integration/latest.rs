//! `/queries/{id}/results/latest.{csv,json,parquet,xlsx}`: the newest
//! stored result of a saved query for the values in the URL, what a
//! spreadsheet imports; and API keys scoped to one query, which read that
//! and nothing else.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use loupe_services::Role;
use poem::http::Method;
use serde_json::{Value, json};

use arrow::array::AsArray;

use crate::harness::{Harness, id_of};

/// Countries of a region, sorted: `regions` of the sample data has FR,
/// DE, GB, ES, NL in EMEA, US, BR, CA in AMER and JP, IN in APAC.
const BY_REGION: &str =
    "select country, region from regions where region = {{ region }} order by country";

const EMEA_CSV: &str = "country,region\nDE,EMEA\nES,EMEA\nFR,EMEA\nGB,EMEA\nNL,EMEA\n";

/// Saves `sql` on the sample datasource as the admin, with a text
/// parameter `region` (default `APAC`); returns its id.
async fn saved(h: &Harness, name: &str, sql: &str) -> String {
    let ds = h.sample_datasource().await;
    let query = json!({
        "name": name, "datasource_id": ds, "sql": sql,
        "parameters": [{ "name": "region", "type": "text", "default": "APAC" }],
    });
    h.admin().post("/queries", query).await.expect(201).id()
}

/// Runs query `id` with `parameters` as the caller with `token`, to a
/// success; returns the run.
async fn ran(h: &Harness, token: &str, id: &str, parameters: Value) -> Value {
    let started = h
        .bearer(token)
        .post(
            &format!("/queries/{id}/runs"),
            json!({ "parameters": parameters }),
        )
        .await;
    assert!([200, 202].contains(&started.status), "{}", started.text());
    let run = h.wait_run(token, &id_of(&started.body["run"])).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    run
}

/// `/queries/{id}/results/latest.<format>` with a query string.
fn latest(id: &str, format: &str, query: &str) -> String {
    format!("/queries/{id}/results/latest.{format}{query}")
}

/// The strong `ETag` of `run`'s result in `format`.
fn etag(run: &Value, format: &str) -> String {
    format!("\"{}.{format}\"", id_of(run))
}

/// A run's `finished_at` as an HTTP date.
fn http_date(time: DateTime<Utc>) -> String {
    time.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn finished(run: &Value) -> DateTime<Utc> {
    run["finished_at"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_latest_result_is_served_in_each_format_with_the_runs_rows() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let id = saved(&h, "Countries by region", BY_REGION).await;
    let run = ran(&h, &h.admin, &id, json!({ "region": "EMEA" })).await;

    let csv = h
        .admin()
        .get(&latest(&id, "csv", "?p_region=EMEA"))
        .await
        .expect(200);
    assert_eq!(csv.text(), EMEA_CSV);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(csv.header("etag"), Some(etag(&run, "csv").as_str()));
    assert_eq!(csv.header("cache-control"), Some("private, no-cache"));
    assert_eq!(
        csv.header("last-modified"),
        Some(http_date(finished(&run)).as_str())
    );
    assert_eq!(
        csv.header("content-disposition"),
        Some("attachment; filename=\"Countries-by-region.csv\"")
    );
    // The same bytes as the run's own download: one code path.
    let download = h
        .admin()
        .get(&format!("/runs/{}/download?format=csv", id_of(&run)))
        .await
        .expect(200);
    assert_eq!(download.bytes, csv.bytes);

    let json_reply = h
        .admin()
        .get(&latest(&id, "json", "?p_region=EMEA"))
        .await
        .expect(200);
    assert_eq!(json_reply.header("content-type"), Some("application/json"));
    assert_eq!(json_reply.header("etag"), Some(etag(&run, "json").as_str()));
    let rows: Value = serde_json::from_slice(&json_reply.bytes).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 5, "{rows}");
    assert_eq!(rows[0], json!({ "country": "DE", "region": "EMEA" }));
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["region"] == "EMEA")
    );

    let parquet = h
        .admin()
        .get(&latest(&id, "parquet", "?p_region=EMEA"))
        .await
        .expect(200);
    assert_eq!(
        parquet.header("content-type"),
        Some("application/vnd.apache.parquet")
    );
    // Strong tags promise the same bytes each time.
    let again = h
        .admin()
        .get(&latest(&id, "parquet", "?p_region=EMEA"))
        .await
        .expect(200);
    assert_eq!(again.bytes, parquet.bytes);
    assert_eq!(parquet.header("etag"), Some(etag(&run, "parquet").as_str()));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(parquet.bytes.clone()),
    )
    .unwrap()
    .build()
    .unwrap();
    let mut rows = Vec::new();
    for batch in reader.map(Result::unwrap) {
        let text = |name: &str| {
            let column = batch.column_by_name(name).unwrap();
            arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8).unwrap()
        };
        let (country, region) = (text("country"), text("region"));
        let (country, region) = (country.as_string::<i32>(), region.as_string::<i32>());
        for i in 0..batch.num_rows() {
            rows.push(format!("{},{}", country.value(i), region.value(i)));
        }
    }
    assert_eq!(
        rows,
        ["DE,EMEA", "ES,EMEA", "FR,EMEA", "GB,EMEA", "NL,EMEA"]
    );

    let xlsx = h
        .admin()
        .get(&latest(&id, "xlsx", "?p_region=EMEA"))
        .await
        .expect(200);
    assert_eq!(
        xlsx.header("content-disposition"),
        Some("attachment; filename=\"Countries-by-region.xlsx\"")
    );
    // A workbook records when it was written: the same content, not the
    // same bytes, so its tag is weak; it still revalidates.
    let weak = format!("W/{}", etag(&run, "xlsx"));
    assert_eq!(xlsx.header("etag"), Some(weak.as_str()));
    let held = h
        .admin()
        .header("If-None-Match", &weak)
        .get(&latest(&id, "xlsx", "?p_region=EMEA"))
        .await;
    assert_eq!(held.status, 304);
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx.bytes)).unwrap();
    let sheet = calamine::Reader::worksheet_range(&mut book, "Sheet1").unwrap();
    let cells: Vec<Vec<String>> = sheet
        .rows()
        .map(|row| row.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(cells.len(), 6, "{cells:?}");
    assert_eq!(cells[0], ["country", "region"]);
    assert_eq!(cells[1], ["DE", "EMEA"]);
    assert_eq!(cells[5], ["NL", "EMEA"]);
}

#[tokio::test]
async fn the_newest_of_several_runs_is_served() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let id = saved(&h, "Regions", BY_REGION).await;
    let first = ran(&h, &h.admin, &id, json!({ "region": "AMER" })).await;
    let second = ran(&h, &h.admin, &id, json!({ "region": "AMER" })).await;
    assert_ne!(id_of(&first), id_of(&second), "two runs");

    let reply = h
        .admin()
        .get(&latest(&id, "csv", "?p_region=AMER"))
        .await
        .expect(200);
    assert_eq!(reply.header("etag"), Some(etag(&second, "csv").as_str()));
    assert_eq!(
        reply.header("last-modified"),
        Some(http_date(finished(&second)).as_str())
    );
    assert_eq!(reply.text(), "country,region\nBR,AMER\nCA,AMER\nUS,AMER\n");

    // Pausing the datasource stops runs, not reads of stored results.
    let ds = h.sample_datasource().await;
    let path = format!("/datasources/{ds}");
    let etag = h
        .admin()
        .get(&path)
        .await
        .expect(200)
        .header("etag")
        .unwrap()
        .to_owned();
    h.admin()
        .if_match(&etag)
        .patch(&path, json!({ "paused": true }))
        .await
        .expect(200);
    h.admin()
        .get(&latest(&id, "csv", "?p_region=AMER"))
        .await
        .expect(200);
    h.admin()
        .post(
            &format!("/queries/{id}/runs"),
            json!({ "parameters": { "region": "AMER" } }),
        )
        .await
        .problem(409, "conflict.paused");
}

#[tokio::test]
async fn the_values_in_the_url_select_their_own_result() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let id = saved(&h, "Regions", BY_REGION).await;
    let emea = ran(&h, &h.admin, &id, json!({ "region": "EMEA" })).await;
    let amer = ran(&h, &h.admin, &id, json!({ "region": "AMER" })).await;

    let reply = h.admin().get(&latest(&id, "csv", "?p_region=EMEA")).await;
    assert_eq!(reply.expect(200).text(), EMEA_CSV);
    let reply = h.admin().get(&latest(&id, "csv", "?p_region=AMER")).await;
    let reply = reply.expect(200);
    assert_eq!(reply.header("etag"), Some(etag(&amer, "csv").as_str()));
    assert_ne!(etag(&emea, "csv"), etag(&amer, "csv"));

    // Defaults fill what the URL leaves out: no result for APAC yet.
    h.admin()
        .get(&latest(&id, "csv", ""))
        .await
        .problem(404, "result.none_yet");
    let apac = ran(&h, &h.admin, &id, json!({})).await;
    let reply = h.admin().get(&latest(&id, "csv", "")).await.expect(200);
    assert_eq!(reply.header("etag"), Some(etag(&apac, "csv").as_str()));
    assert_eq!(reply.text(), "country,region\nIN,APAC\nJP,APAC\n");
    let spelled = h.admin().get(&latest(&id, "csv", "?p_region=APAC")).await;
    assert_eq!(spelled.expect(200).header("etag"), reply.header("etag"));

    // Values are checked as for a run, and named as the URL names them.
    h.admin()
        .get(&latest(&id, "csv", "?p_region=EMEA&p_region=AMER"))
        .await
        .invalid("p_region");
    h.admin()
        .get(&latest(&id, "csv", "?p_regoin=EMEA"))
        .await
        .invalid("p_regoin");
    // A name without the prefix is not silently the default.
    h.admin()
        .get(&latest(&id, "csv", "?region=EMEA"))
        .await
        .invalid("region");
}

#[tokio::test]
async fn an_unchanged_result_answers_304_without_a_body() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let id = saved(&h, "Regions", BY_REGION).await;
    let run = ran(&h, &h.admin, &id, json!({ "region": "EMEA" })).await;
    let url = latest(&id, "csv", "?p_region=EMEA");
    let tag = etag(&run, "csv");
    let date = http_date(finished(&run));

    let not_modified = h.admin().header("If-None-Match", &tag).get(&url).await;
    assert_eq!(not_modified.status, 304, "{}", not_modified.text());
    assert!(not_modified.bytes.is_empty());
    assert_eq!(not_modified.header("etag"), Some(tag.as_str()));
    assert_eq!(
        not_modified.header("cache-control"),
        Some("private, no-cache")
    );
    let weak = format!("W/{tag}");
    let listed = format!("\"other\", {tag}");
    for held in [weak.as_str(), listed.as_str(), "*"] {
        let reply = h.admin().header("If-None-Match", held).get(&url).await;
        assert_eq!(reply.status, 304, "If-None-Match: {held}");
    }
    // Another format of the same run is another file.
    let json_tag = etag(&run, "json");
    let reply = h.admin().header("If-None-Match", &json_tag).get(&url).await;
    assert_eq!(reply.expect(200).text(), EMEA_CSV);

    let reply = h.admin().header("If-Modified-Since", &date).get(&url).await;
    assert_eq!(reply.status, 304);
    let before = http_date(finished(&run) - Duration::seconds(1));
    let reply = h
        .admin()
        .header("If-Modified-Since", &before)
        .get(&url)
        .await;
    assert_eq!(reply.expect(200).text(), EMEA_CSV);
    // The tag decides when both are sent.
    let reply = h
        .admin()
        .header("If-None-Match", &json_tag)
        .header("If-Modified-Since", &date)
        .get(&url)
        .await;
    reply.expect(200);

    // A newer run makes the held copy stale.
    let newer = ran(&h, &h.admin, &id, json!({ "region": "EMEA" })).await;
    let reply = h.admin().header("If-None-Match", &tag).get(&url).await;
    let reply = reply.expect(200);
    assert_eq!(reply.header("etag"), Some(etag(&newer, "csv").as_str()));
}

#[tokio::test]
async fn before_any_run_it_is_404_and_nothing_runs() {
    let h = Harness::new().await;
    let id = saved(&h, "Regions", BY_REGION).await;
    let url = latest(&id, "csv", "?p_region=EMEA");
    let reply = h.admin().get(&url).await.problem(404, "result.none_yet");
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("run it") && detail.contains("schedule"),
        "{detail}"
    );
    let runs = h
        .admin()
        .get(&format!("/runs?query={id}"))
        .await
        .expect(200);
    assert_eq!(
        runs.body["total"],
        0,
        "reading queued nothing: {}",
        runs.text()
    );

    // A run still queued is no result.
    let started = h
        .admin()
        .post(
            &format!("/queries/{id}/runs"),
            json!({ "parameters": { "region": "EMEA" } }),
        )
        .await
        .expect(202);
    h.admin().get(&url).await.problem(404, "result.none_yet");
    let _runner = h.runner();
    h.wait_run(&h.admin, &id_of(&started.body["run"])).await;
    assert_eq!(h.admin().get(&url).await.expect(200).text(), EMEA_CSV);

    // A result of other SQL is not this query's any more.
    let query = h.admin().get(&format!("/queries/{id}")).await.expect(200);
    let revision = query.header("etag").unwrap().to_owned();
    let changed = json!({ "sql": format!("{BY_REGION} limit 2") });
    h.admin()
        .if_match(&revision)
        .patch(&format!("/queries/{id}"), changed)
        .await
        .expect(200);
    h.admin().get(&url).await.problem(404, "result.none_yet");

    h.admin()
        .get(&latest("no-such-query", "csv", ""))
        .await
        .problem(404, "not_found");
}

/// A key scoped to a query, made by the caller with `token`; its secret.
async fn query_key(h: &Harness, token: &str, query: &str) -> String {
    let key = json!({ "name": "sheet", "scopes": ["read"], "query_id": query });
    let created = h.bearer(token).post("/api-keys", key).await.expect(201);
    assert_eq!(created.body["key"]["query_id"], query);
    created.body["secret"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_query_scoped_key_reads_its_querys_latest_results_and_nothing_else() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let own = saved(&h, "Regions", BY_REGION).await;
    let other = saved(&h, "Other regions", BY_REGION).await;
    ran(&h, &h.admin, &own, json!({ "region": "EMEA" })).await;
    // The default values too, which the walk below reads.
    ran(&h, &h.admin, &own, json!({})).await;
    ran(&h, &h.admin, &other, json!({ "region": "EMEA" })).await;
    let secret = query_key(&h, &h.admin, &own).await;
    let listed = h.admin().get("/api-keys").await.expect(200);
    assert_eq!(listed.body[0]["query_id"], own.as_str());

    let key = h.key(&secret);
    let reply = key.get(&latest(&own, "csv", "?p_region=EMEA")).await;
    assert_eq!(reply.expect(200).text(), EMEA_CSV);
    // In the URL, as a spreadsheet's import sends it.
    let in_url = latest(&own, "csv", &format!("?p_region=EMEA&api_key={secret}"));
    let reply = h.anonymous().get(&in_url).await;
    assert_eq!(reply.expect(200).text(), EMEA_CSV);

    // Another query's latest result is refused, by header or by URL.
    let reply = key.get(&latest(&other, "csv", "?p_region=EMEA")).await;
    let detail = reply.problem(403, "access.scope").body["detail"].clone();
    assert!(detail.as_str().unwrap().contains(&own), "{detail}");
    let other_in_url = latest(&other, "csv", &format!("?p_region=EMEA&api_key={secret}"));
    h.anonymous()
        .get(&other_in_url)
        .await
        .problem(403, "access.scope");

    // Every other operation of the document is refused, whatever it is.
    let doc = h.anonymous().get("/openapi.json").await.expect(200).body;
    let mut answered = Vec::new();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if operation["security"].as_array().is_none_or(Vec::is_empty) {
                continue; // Public: no key is read.
            }
            // Every path parameter is the key's own query, the id most
            // likely to let something through.
            let url = path
                .split('/')
                .map(|s| if s.starts_with('{') { own.as_str() } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let reply = key.send(method.clone(), &url, None).await;
            checked += 1;
            let own_latest = path.starts_with("/queries/{id}/results/latest.");
            let expected = if own_latest { 200 } else { 403 };
            if reply.status != expected || (!own_latest && reply.code() != "access.scope") {
                answered.push(format!("{method} {url}: {} {}", reply.status, reply.text()));
            }
        }
    }
    assert!(checked > 60, "{checked} operations");
    assert!(answered.is_empty(), "not refused:\n{}", answered.join("\n"));
    eprintln!("{checked} operations with a query-scoped key, all refused but its own");

    // Keys scoped to a query only read, and only a query their owner sees.
    let run_key = json!({ "name": "x", "scopes": ["read", "run"], "query_id": own });
    h.admin().post("/api-keys", run_key).await.invalid("scopes");
    let unknown = json!({ "name": "x", "scopes": ["read"], "query_id": "nope" });
    h.admin()
        .post("/api-keys", unknown)
        .await
        .invalid("query_id");
    let elsewhere = h.other_org_admin().await;
    let theirs = json!({ "name": "x", "scopes": ["read"], "query_id": own });
    h.bearer(&elsewhere)
        .post("/api-keys", theirs)
        .await
        .invalid("query_id");
}

#[tokio::test]
async fn only_a_query_scoped_key_may_travel_in_a_url() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let id = saved(&h, "Regions", BY_REGION).await;
    ran(&h, &h.admin, &id, json!({ "region": "EMEA" })).await;
    let key = json!({ "name": "etl", "scopes": ["read"] });
    let created = h.admin().post("/api-keys", key).await.expect(201);
    let secret = created.body["secret"].as_str().unwrap().to_owned();

    // In the header, a key of any scope reads what its owner may.
    let url = latest(&id, "csv", "?p_region=EMEA");
    assert_eq!(h.key(&secret).get(&url).await.expect(200).text(), EMEA_CSV);
    // In the URL it is refused, with the advice to revoke it.
    let in_url = latest(&id, "csv", &format!("?p_region=EMEA&api_key={secret}"));
    let refused = h
        .anonymous()
        .get(&in_url)
        .await
        .problem(403, "access.scope");
    assert!(refused.text().contains("revoke"), "{}", refused.text());
    // Other routes never read a key from the URL.
    h.anonymous()
        .get(&format!("/queries?api_key={secret}"))
        .await
        .problem(401, "auth.missing");
    h.anonymous()
        .get(&latest(&id, "csv", "?p_region=EMEA&api_key=loupe_nope"))
        .await
        .problem(401, "auth.invalid_key");
    h.anonymous().get(&url).await.problem(401, "auth.missing");
}

#[tokio::test]
async fn a_restricted_user_never_gets_an_unrestricted_users_latest_result() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let id = saved(&h, "Regions", BY_REGION).await;
    let ds = h.sample_datasource().await;
    let everyone = h.everyone_group(&h.admin).await;
    let rules = json!({ "access": "run", "rules": { "locked": { "region": "region" } } });
    h.admin()
        .put(&format!("/groups/{everyone}/grants/{ds}"), rules)
        .await
        .expect(200);
    let (user, token) = h.user("emea@acme.test", Role::Viewer).await;
    let revision = h.admin().get(&format!("/users/{user}")).await.expect(200);
    let revision = revision.header("etag").unwrap().to_owned();
    h.admin()
        .if_match(&revision)
        .patch(
            &format!("/users/{user}"),
            json!({ "attributes": { "region": "EMEA" } }),
        )
        .await
        .expect(200);

    // The admin (unrestricted) has the very values' result...
    let unrestricted = ran(&h, &h.admin, &id, json!({ "region": "EMEA" })).await;
    let url = latest(&id, "csv", "?p_region=EMEA");
    h.admin().get(&url).await.expect(200);
    // ...which the restricted user does not get, with or without values.
    let restricted = h.bearer(&token);
    restricted
        .get(&latest(&id, "csv", ""))
        .await
        .problem(404, "result.none_yet");
    restricted
        .get(&url)
        .await
        .problem(403, "access.locked_parameter");
    let key = query_key(&h, &token, &id).await;
    h.key(&key)
        .get(&latest(&id, "csv", ""))
        .await
        .problem(404, "result.none_yet");

    // Their own run, under their restrictions, is theirs.
    let own = ran(&h, &token, &id, json!({})).await;
    let mine = restricted.get(&latest(&id, "csv", "")).await.expect(200);
    assert_eq!(mine.header("etag"), Some(etag(&own, "csv").as_str()));
    assert_eq!(mine.text(), EMEA_CSV);
    let by_key = h.key(&key).get(&latest(&id, "csv", "")).await.expect(200);
    assert_eq!(by_key.header("etag"), mine.header("etag"));
    // And the admin keeps reading theirs.
    let theirs = h.admin().get(&url).await.expect(200);
    assert_eq!(
        theirs.header("etag"),
        Some(etag(&unrestricted, "csv").as_str())
    );
}

/// The routes are documented as what they are: one format each, 304 and
/// the `p_` convention, with the URL key as a way in.
#[tokio::test]
async fn the_document_describes_each_latest_route() {
    let h = Harness::new().await;
    let doc = h.anonymous().get("/openapi.json").await.expect(200).body;
    for (format, media) in [
        ("csv", "text/csv; charset=utf-8"),
        ("json", "application/json"),
        ("parquet", "application/vnd.apache.parquet"),
        (
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
    ] {
        let op = &doc["paths"][format!("/queries/{{id}}/results/latest.{format}")]["get"];
        let content: BTreeSet<&String> = op["responses"]["200"]["content"]
            .as_object()
            .unwrap_or_else(|| panic!("{format}: {op}"))
            .keys()
            .collect();
        assert_eq!(content, BTreeSet::from([&media.to_owned()]), "{format}");
        assert!(op["responses"]["304"].is_object(), "{format}");
        assert!(op["responses"]["404"].is_object(), "{format}");
        let headers: Vec<&str> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "header")
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(headers, ["If-None-Match", "If-Modified-Since"], "{format}");
        let schemes: Vec<&str> = op["security"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s.as_object()?.keys().next().map(String::as_str))
            .collect();
        assert!(schemes.contains(&"UrlKeyAuth"), "{format}: {schemes:?}");
    }
    let csv = &doc["paths"]["/queries/{id}/results/latest.csv"]["get"]["description"];
    assert!(
        csv.as_str().is_some_and(|d| d.contains("p_<name>")),
        "{csv}"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["UrlKeyAuth"]["in"],
        "query"
    );
}
