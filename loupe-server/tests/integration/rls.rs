//! Row-level security through HTTP: user attributes, grants with locked
//! parameters, saved-only grants, row filters on files, PostgreSQL
//! policies that read the caller's attributes, and a cache that never
//! hands one caller's rows to another. Each test is an attacker's request
//! that must be refused, or must not see rows it should not.

use loupe_services::Role;
use serde_json::{Value, json};

use crate::harness::{Harness, id_of};

/// Sets a user's attributes as the admin.
async fn set_attributes(h: &Harness, user_id: &str, attributes: Value) {
    let path = format!("/users/{user_id}");
    let current = h.admin().get(&path).await.expect(200);
    let etag = current.header("etag").expect("user etag").to_owned();
    h.admin()
        .if_match(&etag)
        .patch(&path, json!({ "attributes": attributes }))
        .await
        .expect(200);
}

/// Moves the sample datasource from `everyone` to a new group holding
/// `members`, granted `access` under `rules`; returns the group's id.
async fn restrict(h: &Harness, ds: &str, members: &[&str], access: &str, rules: Value) -> String {
    let everyone = h.everyone_group(&h.admin).await;
    h.admin()
        .delete(&format!("/groups/{everyone}/grants/{ds}"))
        .await
        .expect(204);
    let group = h
        .admin()
        .post(
            "/groups",
            json!({ "name": format!("restricted {}", members.len()) }),
        )
        .await
        .expect(201)
        .id();
    for member in members {
        h.admin()
            .put_empty(&format!("/groups/{group}/members/{member}"))
            .await
            .expect(200);
    }
    h.admin()
        .put(
            &format!("/groups/{group}/grants/{ds}"),
            json!({ "access": access, "rules": rules }),
        )
        .await
        .expect(200);
    group
}

/// A saved query of customers by country, as the admin.
async fn customers_by_country(h: &Harness, ds: &str) -> String {
    h.admin()
        .post(
            "/queries",
            json!({
                "name": "Customers of a country",
                "datasource_id": ds,
                "sql": "select country, count(*) as n from customers where country = {{ country }} group by country",
                "parameters": [{ "name": "country", "type": "text", "default": "FR" }]
            }),
        )
        .await
        .expect(201)
        .id()
}

/// Runs a saved query as `token` to its end; returns the finished run.
async fn run_query(h: &Harness, token: &str, query: &str, body: Value) -> Value {
    let started = h
        .bearer(token)
        .post(&format!("/queries/{query}/runs"), body)
        .await
        .expect(202);
    let run = h.wait_run(token, &id_of(&started.body["run"])).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    run
}

/// The rows of a run's first page, as `token` reads them.
async fn rows(h: &Harness, token: &str, run: &Value) -> Value {
    let page = format!("/runs/{}/results", id_of(run));
    h.bearer(token).get(&page).await.expect(200).body["rows"].clone()
}

#[tokio::test]
async fn attributes_are_set_by_admins_and_shown_to_their_user() {
    let h = Harness::new().await;
    let (id, token) = h.user("eu@acme.test", Role::Editor).await;
    let (other, other_token) = h.user("peer@acme.test", Role::Editor).await;
    set_attributes(&h, &id, json!({ "country": "FR", "levels": [1, 2] })).await;

    let me = h.bearer(&token).get("/auth/me").await.expect(200);
    assert_eq!(
        me.body["user"]["attributes"],
        json!({ "country": "FR", "levels": [1, 2] })
    );
    // Others in the organization do not see them.
    let seen = h
        .bearer(&other_token)
        .get(&format!("/users/{id}"))
        .await
        .expect(200);
    assert!(seen.body.get("attributes").is_none(), "{}", seen.body);

    // Nobody but an admin sets them, not even on themselves.
    let path = format!("/users/{id}");
    let etag = h
        .admin()
        .get(&path)
        .await
        .expect(200)
        .header("etag")
        .unwrap()
        .to_owned();
    h.bearer(&token)
        .if_match(&etag)
        .patch(&path, json!({ "attributes": { "country": "US" } }))
        .await
        .problem(403, "access.role");

    // Bad attributes are refused by field, and nothing changes.
    let refused = h
        .admin()
        .if_match(&etag)
        .patch(
            &path,
            json!({ "attributes": { "bad name": 1, "nested": { "a": 1 } } }),
        )
        .await
        .problem(422, "validation.failed");
    let fields: Vec<&str> = refused.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["attributes.bad name", "attributes.nested"]);
    let me = h.bearer(&token).get("/auth/me").await.expect(200);
    assert_eq!(me.body["user"]["attributes"]["country"], "FR");
    let _ = other;
}

#[tokio::test]
async fn a_locked_parameter_is_bound_from_the_callers_attribute_and_cannot_be_overridden() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let query = customers_by_country(&h, &ds).await;
    let (fr_id, fr) = h.user("fr@acme.test", Role::Editor).await;
    let (none_id, none) = h.user("none@acme.test", Role::Editor).await;
    set_attributes(&h, &fr_id, json!({ "home": "FR" })).await;
    restrict(
        &h,
        &ds,
        &[&fr_id, &none_id],
        "run",
        json!({ "locked": { "country": "home" } }),
    )
    .await;

    // The caller's attribute binds the parameter.
    let run = run_query(&h, &fr, &query, json!({})).await;
    assert_eq!(rows(&h, &fr, &run).await, json!([["FR", 54]]));

    // A value for the locked parameter is refused, even the caller's own.
    for country in ["US", "FR"] {
        h.bearer(&fr)
            .post(
                &format!("/queries/{query}/runs"),
                json!({ "parameters": { "country": country } }),
            )
            .await
            .problem(403, "access.locked_parameter");
    }
    // Ad-hoc SQL would not be filtered, so it is refused.
    h.bearer(&fr)
        .post(
            "/runs",
            json!({ "datasource_id": ds, "sql": "select * from customers" }),
        )
        .await
        .problem(403, "access.saved_only");
    // A saved query that does not take the parameter would run unfiltered.
    let unfiltered = h
        .admin()
        .post(
            "/queries",
            json!({ "name": "All customers", "datasource_id": ds, "sql": "select count(*) from customers" }),
        )
        .await
        .expect(201)
        .id();
    h.bearer(&fr)
        .post(&format!("/queries/{unfiltered}/runs"), json!({}))
        .await
        .problem(403, "access.locked_parameter");
    // A member without the attribute runs nothing under the grant.
    h.bearer(&none)
        .post(&format!("/queries/{query}/runs"), json!({}))
        .await
        .problem(403, "access.missing_attribute");
}

#[tokio::test]
async fn a_saved_only_grant_refuses_ad_hoc_sql() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let query = customers_by_country(&h, &ds).await;
    let (id, token) = h.user("analyst@acme.test", Role::Editor).await;
    restrict(&h, &ds, &[&id], "run", json!({ "saved_only": true })).await;

    h.bearer(&token)
        .post(
            "/runs",
            json!({ "datasource_id": ds, "sql": "select * from customers" }),
        )
        .await
        .problem(403, "access.saved_only");
    // Saved queries run, with the caller's values.
    let run = run_query(
        &h,
        &token,
        &query,
        json!({ "parameters": { "country": "DE" } }),
    )
    .await;
    assert_eq!(rows(&h, &token, &run).await, json!([["DE", 50]]));
}

#[tokio::test]
async fn one_callers_cached_result_is_never_anothers() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let query = customers_by_country(&h, &ds).await;
    let (fr_id, fr) = h.user("fr@acme.test", Role::Editor).await;
    let (us_id, us) = h.user("us@acme.test", Role::Editor).await;
    set_attributes(&h, &fr_id, json!({ "home": "FR" })).await;
    set_attributes(&h, &us_id, json!({ "home": "US" })).await;
    restrict(
        &h,
        &ds,
        &[&fr_id, &us_id],
        "run",
        json!({ "locked": { "country": "home" } }),
    )
    .await;

    // The admin (unrestricted) runs the query for FR: the same rows, but
    // not a result a restricted caller may reuse or read.
    let admin_run = run_query(
        &h,
        &h.admin,
        &query,
        json!({ "parameters": { "country": "FR" } }),
    )
    .await;
    let fr_run = run_query(&h, &fr, &query, json!({ "max_age_seconds": 3600 })).await;
    assert_ne!(
        id_of(&fr_run),
        id_of(&admin_run),
        "a restricted caller got the admin's cached run"
    );
    let us_run = run_query(&h, &us, &query, json!({ "max_age_seconds": 3600 })).await;
    assert_ne!(
        id_of(&us_run),
        id_of(&fr_run),
        "one user's cached run answered another's"
    );
    assert_eq!(rows(&h, &us, &us_run).await, json!([["US", 54]]));

    // The same caller's second start is a cache hit on their own run.
    let again = h
        .bearer(&fr)
        .post(
            &format!("/queries/{query}/runs"),
            json!({ "max_age_seconds": 3600 }),
        )
        .await
        .expect(200);
    assert_eq!(again.body["how"], "cached");
    assert_eq!(id_of(&again.body["run"]), id_of(&fr_run));

    // Nobody reads a run of another context, by id or in a list.
    for (token, theirs) in [(&us, &fr_run), (&fr, &us_run), (&fr, &admin_run)] {
        for path in [
            format!("/runs/{}", id_of(theirs)),
            format!("/runs/{}/results", id_of(theirs)),
            format!("/runs/{}/download?format=csv", id_of(theirs)),
        ] {
            h.bearer(token).get(&path).await.problem(404, "not_found");
        }
    }
    let listed = h.bearer(&us).get("/runs").await.expect(200);
    let ids: Vec<String> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids, [id_of(&us_run)]);
    // The admin sees every run.
    let all = h.admin().get("/runs").await.expect(200);
    assert_eq!(all.body["total"], 3);
}

#[tokio::test]
async fn grant_rules_are_checked_by_field() {
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    let everyone = h.everyone_group(&h.admin).await;
    let path = format!("/groups/{everyone}/grants/{ds}");
    h.admin()
        .put(
            &path,
            json!({ "access": "run", "rules": { "locked": { "country": "not an attribute" } } }),
        )
        .await
        .invalid("rules.locked.country");
    h.admin()
        .put(
            &path,
            json!({ "access": "run", "rules": { "row_filters": { "customers": "country = {{ home" } } }),
        )
        .await
        .invalid("rules.row_filters.customers");
    // A well-formed row filter on a files datasource is kept.
    h.admin()
        .put(
            &path,
            json!({ "access": "run", "rules": { "row_filters": { "customers": "true" } } }),
        )
        .await
        .expect(200);
    // What was granted stays as it was.
    let grants = h
        .admin()
        .get(&format!("/datasources/{ds}/grants"))
        .await
        .expect(200);
    assert_eq!(
        grants.body[0]["rules"]["row_filters"],
        json!({ "customers": "true" })
    );
    assert_eq!(grants.body[0]["rules"]["locked"], json!({}));
    // Only PostgreSQL datasources pass attributes on as settings.
    let current = h
        .admin()
        .get(&format!("/datasources/{ds}"))
        .await
        .expect(200);
    let etag = current.header("etag").unwrap().to_owned();
    h.admin()
        .if_match(&etag)
        .patch(
            &format!("/datasources/{ds}"),
            json!({ "user_settings": true }),
        )
        .await
        .invalid("user_settings");
}

/// A pool on the test database as its superuser.
async fn superuser() -> Option<sqlx::PgPool> {
    let superuser = crate::process::test_server("LOUPE_TEST_POSTGRES_SUPERUSER_URL", "PostgreSQL")?;
    let reader = crate::process::postgres_url()?;
    let database = url::Url::parse(&reader)
        .expect("postgres url")
        .path()
        .trim_start_matches('/')
        .to_owned();
    let options: sqlx::postgres::PgConnectOptions = superuser.parse().expect("superuser url");
    Some(
        sqlx::PgPool::connect_with(options.database(&database))
            .await
            .expect("superuser connects to the test database"),
    )
}

/// Runs statements, one at a time, as the superuser.
async fn as_superuser(db: &sqlx::PgPool, script: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(script.to_owned()))
        .execute(db)
        .await
        .expect("superuser script");
}

/// Creates, as the superuser, a table of sales in three regions that the
/// datasource's role may read only through a policy on the signed
/// attribute `region`; returns the table's name.
async fn sales_under_a_policy(db: &sqlx::PgPool) -> String {
    let reader = crate::process::postgres_url().expect("test PostgreSQL");
    let role = url::Url::parse(&reader)
        .expect("postgres url")
        .username()
        .to_owned();
    let table = format!("sales_{}", uuid::Uuid::now_v7().simple());
    as_superuser(
        db,
        &format!(
            "CREATE TABLE {table} (region text NOT NULL, amount int NOT NULL);
             INSERT INTO {table} VALUES ('EU', 10), ('EU', 20), ('US', 5), ('APAC', 7);
             GRANT SELECT ON {table} TO {role};
             ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
             CREATE POLICY by_region ON {table} FOR SELECT TO {role}
                 USING (region = loupe_rls.attribute('region'));"
        ),
    )
    .await;
    table
}

#[tokio::test]
async fn postgres_policies_read_the_callers_signed_attributes_for_ad_hoc_sql() {
    let Some(db) = superuser().await else { return };
    let h = Harness::new().await;
    let _runner = h.runner();
    let pg = crate::process::pg_options(&crate::process::postgres_url().unwrap());
    let created = h
        .admin()
        .post(
            "/datasources",
            json!({ "name": "Warehouse", "kind": "postgres", "options": pg }),
        )
        .await
        .expect(201);
    let ds = created.id();
    let path = format!("/datasources/{ds}");
    // Settings are signed, so a key comes first.
    let etag = created.header("etag").unwrap().to_owned();
    h.admin()
        .if_match(&etag)
        .patch(&path, json!({ "user_settings": true }))
        .await
        .invalid("user_settings");
    let made = h
        .admin()
        .post_empty(&format!("{path}/settings-key"))
        .await
        .expect(201);
    assert_eq!(made.header("cache-control"), Some("no-store"));
    as_superuser(&db, made.body["setup_sql"].as_str().unwrap()).await;
    let table = sales_under_a_policy(&db).await;
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
        .patch(&path, json!({ "user_settings": true }))
        .await
        .expect(200);

    let (eu_id, eu) = h.user("eu@acme.test", Role::Editor).await;
    let (us_id, us) = h.user("us@acme.test", Role::Editor).await;
    let (_, nobody) = h.user("nobody@acme.test", Role::Editor).await;
    set_attributes(&h, &eu_id, json!({ "region": "EU" })).await;
    // A value that would break out of a quoted literal is only a value.
    set_attributes(&h, &us_id, json!({ "region": "US' OR '1'='1" })).await;
    let everyone = h.everyone_group(&h.admin).await;
    h.admin()
        .put(
            &format!("/groups/{everyone}/grants/{ds}"),
            json!({ "access": "run" }),
        )
        .await
        .expect(200);

    let rows_of = |token: String, sql: String| {
        let (h, ds) = (&h, ds.clone());
        async move {
            let started = h
                .bearer(&token)
                .post(
                    "/runs",
                    json!({ "datasource_id": ds, "sql": sql, "max_age_seconds": 3600 }),
                )
                .await;
            let run = h.wait_run(&token, &id_of(&started.body["run"])).await;
            assert_eq!(run["status"], "succeeded", "{run}");
            let page = h
                .bearer(&token)
                .get(&format!("/runs/{}/results", id_of(&run)))
                .await
                .expect(200);
            page.body["rows"].clone()
        }
    };
    let sums =
        format!("select region, sum(amount) as total from {table} group by region order by region");
    // The database's policy sees each caller's own attribute, through
    // ad-hoc SQL too, and one caller's cached result is not another's.
    assert_eq!(rows_of(eu.clone(), sums.clone()).await, json!([["EU", 30]]));
    assert_eq!(rows_of(us, sums.clone()).await, json!([]));
    assert_eq!(rows_of(nobody, sums.clone()).await, json!([]));
    assert_eq!(rows_of(eu.clone(), sums).await, json!([["EU", 30]]));

    // A statement that changes its own settings loses them: the
    // signature no longer matches, and the policy sees no attribute.
    let forged = format!(
        "with forged as materialized (select set_config('loupe.user.region', 'US', true)) \
         select s.region, s.amount from forged, {table} s order by s.region"
    );
    assert_eq!(rows_of(eu.clone(), forged).await, json!([]));
    let copied = format!(
        "with forged as materialized (select set_config('loupe.user.region', 'US', true), \
         set_config('loupe.signature.region', current_setting('loupe.signature.region'), true)) \
         select s.region from forged, {table} s"
    );
    assert_eq!(rows_of(eu, copied).await, json!([]));
    db.close().await;
}

#[tokio::test]
async fn row_filters_on_files_hold_on_every_path_to_the_table() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let (fr_id, fr) = h.user("fr@acme.test", Role::Editor).await;
    set_attributes(&h, &fr_id, json!({ "home": "FR" })).await;
    restrict(
        &h,
        &ds,
        &[&fr_id],
        "run",
        json!({ "row_filters": { "customers": "country = {{ home }}" } }),
    )
    .await;
    let first = |sql: &'static str| {
        let (h, ds, fr) = (&h, ds.clone(), fr.clone());
        async move {
            let started = h
                .bearer(&fr)
                .post("/runs", json!({ "datasource_id": ds, "sql": sql }))
                .await
                .expect(202);
            let run = h.wait_run(&fr, &id_of(&started.body["run"])).await;
            assert_eq!(run["status"], "succeeded", "{sql}: {run}");
            let page = h
                .bearer(&fr)
                .get(&format!("/runs/{}/results", id_of(&run)))
                .await
                .expect(200);
            page.body["rows"].clone()
        }
    };
    // 54 customers are in FR, 500 in all: every way to the table sees 54.
    for sql in [
        "select count(*) from customers",
        "select count(*) from (select * from customers) c",
        "with c as (select * from customers) select count(*) from c",
        "select count(*) from customers a join customers b on a.id = b.id",
        "select count(*) from (select id from customers union all select id from customers where country <> 'FR') u",
        "select count(*) from customers where id in (select id from customers where country <> 'FR') or country = 'FR'",
        "select count(*) from public.customers",
        "select count(*) from \"customers\"",
    ] {
        let rows = first(sql).await;
        assert_eq!(rows, json!([[54]]), "{sql}");
    }
    let others = first("select count(*) from customers where country <> 'FR'").await;
    assert_eq!(others, json!([[0]]));
    // The files datasource has no `information_schema` to go around the
    // filter by.
    let started = h
        .bearer(&fr)
        .post(
            "/runs",
            json!({ "datasource_id": ds, "sql": "select * from information_schema.columns" }),
        )
        .await
        .expect(202);
    let run = h.wait_run(&fr, &id_of(&started.body["run"])).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error_code"], "not_found", "{run}");
    // Other tables are not filtered.
    assert_eq!(
        first("select count(*) from products").await[0][0]
            .as_i64()
            .map(|n| n > 0),
        Some(true)
    );
}
