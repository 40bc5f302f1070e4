//! `GET /v1/api/openapi.json` describes the API the server really serves: every documented
//! route answers, and real responses — successes and errors of each route — validate against
//! the document's schemas, which refuse undocumented fields.

mod common;

use serde_json::{Value, json};

/// A validator of `#/components/schemas/<name>` of `doc`.
fn validator(doc: &Value, name: &str) -> jsonschema::Validator {
    let schema = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": doc["components"].clone(),
    });
    jsonschema::validator_for(&schema).expect("the document's schemas compile")
}

/// Validates `instance` against `#/components/schemas/<name>` of `doc`.
fn check(doc: &Value, name: &str, instance: &Value) {
    let validator = validator(doc, name);
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:?}\n{instance:#}");
}

/// The JSON body of `GET <path>`.
async fn get_json(s: &common::TestServer, path: &str) -> Value {
    s.http
        .get(format!("{}{path}", s.url))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn the_document_matches_the_real_responses() {
    let s = common::start(|_| {}).await;
    let doc = get_json(&s, "/v1/api/openapi.json").await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        paths,
        [
            "/metrics",
            "/v1/api/auth/login",
            "/v1/api/healthcheck",
            "/v1/api/openapi.json",
            "/v1/api/sql",
            "/v1/ws"
        ]
    );
    for name in [
        "SqlResponse",
        "StatementResult",
        "ErrorResponse",
        "ErrorBody",
        "Healthcheck",
    ] {
        assert_eq!(
            doc["components"]["schemas"][name]["additionalProperties"],
            json!(false),
            "{name} must refuse fields it does not document"
        );
    }
    // Every documented operation is routed (a wrong method or path would be 404/405).
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let url = format!("{}{path}", s.url);
            let req = match method.as_str() {
                "get" => s.http.get(&url),
                "post" => s
                    .http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body("{}"),
                other => panic!("undocumented method {other}"),
            };
            let status = req.send().await.expect("send").status().as_u16();
            assert!(![404, 405].contains(&status), "{method} {path}: {status}");
        }
    }

    // /v1/api/sql: rows, messages, errors.
    s.sql("CREATE NAMESPACE o; CREATE SHARED TABLE o.t (id BIGINT PRIMARY KEY, at TIMESTAMP, d DECIMAL(10,2))")
        .await;
    let (status, body) = s
        .sql("INSERT INTO o.t VALUES (9007199254740993, '2026-01-02 03:04:05', 1.5); SELECT * FROM o.t")
        .await;
    assert_eq!(status, 200);
    check(&doc, "SqlResponse", &body);
    assert_eq!(body["results"][1]["rows"][0][0], json!("9007199254740993"));
    for (sql, code) in [
        ("SELEC 1", 400),
        ("SELECT * FROM o.missing", 400),
        ("CREATE NAMESPACE o", 400),
    ] {
        let (status, body) = s.sql(sql).await;
        assert_eq!(status, code, "{sql}: {body}");
        check(&doc, "ErrorResponse", &body);
    }
    let (status, body) = s.sql_as("SELECT 1", "nobody", "wrong").await;
    assert_eq!(status, 401);
    check(&doc, "ErrorResponse", &body);
    let (status, body) = s.post_raw("[1]", None).await;
    assert_eq!(status, 400);
    check(&doc, "ErrorResponse", &body);

    // Login, healthcheck.
    let login = |body: Value| {
        let http = s.http.clone();
        let url = format!("{}/v1/api/auth/login", s.url);
        async move {
            let resp = http.post(url).json(&body).send().await.expect("send");
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.expect("json"),
            )
        }
    };
    let (status, body) = login(json!({"username": "root", "password": ""})).await;
    assert_eq!(status, 200);
    check(&doc, "IssuedToken", &body);
    let (status, body) = login(json!({"username": "root", "password": "nope", "x": 1})).await;
    assert_eq!(status, 400);
    check(&doc, "ErrorResponse", &body);
    check(
        &doc,
        "Healthcheck",
        &get_json(&s, "/v1/api/healthcheck").await,
    );

    // The check itself bites: an undocumented field or a wrong type is refused.
    let validator_refuses = |name: &str, v: Value| !validator(&doc, name).is_valid(&v);
    assert!(validator_refuses(
        "Healthcheck",
        json!({"status": "healthy", "version": "1", "api_version": "v1", "extra": 1})
    ));
    assert!(validator_refuses(
        "StatementResult",
        json!({"row_count": 1})
    ));
    assert!(validator_refuses(
        "SqlResponse",
        json!({"status": "success", "results": [{"row_count": "1", "message": null}], "took": 1.0})
    ));
}
