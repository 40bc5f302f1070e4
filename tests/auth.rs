//! Login tokens and credentials against the real `kalamdb` binary (SPEC section 7): login,
//! Bearer on `/v1/api/sql` and `/v1/ws`, and every way a token must stop working — expiry,
//! tampering, `alg: none`, a wrong signature, DROP USER, a password or role change.

mod common;

use base64::Engine as _;
use common::live::{Live, start_server};
use kalamdb::auth::token::{Claims, now_secs};
use kalamdb::session::Role;
use serde_json::{Value, json};

const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";

async fn server() -> Live {
    start_server(&[("KALAMDB_JWT_SECRET", SECRET)]).await
}

/// A token for `sub` signed with `secret`, expiring `exp_in` seconds from now (negative: in
/// the past).
fn forge(secret: &str, sub: &str, role: Role, exp_in: i64, ver: u64) -> String {
    let now = now_secs();
    let claims = Claims {
        sub: sub.into(),
        role,
        iat: now,
        exp: now.saturating_add_signed(exp_in),
        ver,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// `(status, error code)` of `SELECT current_user()` with `authorization`.
async fn whoami(s: &Live, authorization: &str) -> (u16, Value) {
    let (status, body) = s.sql("SELECT current_user()", Some(authorization)).await;
    if status == 200 {
        (status, body["results"][0]["rows"][0][0].clone())
    } else {
        (status, body["error"]["code"].clone())
    }
}

/// The first message on a WebSocket opened with `authorization`.
async fn ws_hello(s: &Live, authorization: &str) -> Value {
    s.ws_with(Some(authorization), "").await.recv().await
}

#[tokio::test]
async fn login_gives_a_token_that_works_over_http_and_websocket() {
    let s = server().await;
    s.root("CREATE USER 'alice' WITH PASSWORD 'pw-alice' ROLE user")
        .await;
    let (status, body) = s.login_raw("alice", "pw-alice").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap().to_string();
    // The claims SPEC section 7 names.
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["role"], "user");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(whoami(&s, &bearer).await, (200, json!("alice")));
    // WebSocket: header, ?token= and an in-band authenticate.
    let hello = ws_hello(&s, &bearer).await;
    assert_eq!(
        hello,
        json!({"type": "auth_success", "user_id": "alice", "role": "user"})
    );
    let mut ws = s.ws_with(None, &format!("?token={token}")).await;
    assert_eq!(ws.recv().await["type"], "auth_success");
    let mut ws = s.ws_with(None, "").await;
    ws.send(json!({"type": "authenticate", "token": token}))
        .await;
    assert_eq!(ws.recv().await["user_id"], "alice");
    // Basic credentials work on the WebSocket too.
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:pw-alice");
    assert_eq!(
        ws_hello(&s, &format!("Basic {basic}")).await["type"],
        "auth_success"
    );
}

#[tokio::test]
async fn bad_credentials_and_bad_tokens_are_401() {
    let s = server().await;
    s.root("CREATE USER 'alice' WITH PASSWORD 'pw-alice' ROLE user")
        .await;
    for (user, pw) in [("alice", "wrong"), ("alice", ""), ("nobody", "pw-alice")] {
        let (status, body) = s.login_raw(user, pw).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "UNAUTHORIZED");
        assert_eq!(body["error"]["message"], "invalid username or password");
    }
    let (status, _) = {
        let resp = s
            .http
            .post(format!("{}/v1/api/auth/login", s.server.url))
            .body("{not json")
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), ())
    };
    assert_eq!(status, 400);
    for body in [
        json!({"username": 5, "password": null}),
        json!({"username": "alice"}),
        json!({"username": "alice", "password": "pw-alice", "extra": 1}),
        json!(["alice", "pw-alice"]),
    ] {
        let resp = s
            .http
            .post(format!("{}/v1/api/auth/login", s.server.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], "INVALID_PARAMETER", "{body}");
    }
    // The SQL endpoint, too, takes only an object.
    let resp = s
        .http
        .post(format!("{}/v1/api/sql", s.server.url))
        .json(&json!(["SELECT 1"]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let good = s.login("alice", "pw-alice").await;
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    // Tampered payload: root's role claimed under alice's signature.
    let tampered_payload = b64(
        &json!({"sub": "root", "role": "system", "iat": now_secs(), "exp": now_secs() + 600, "ver": 0}),
    );
    let tampered = format!("{}.{}.{}", parts[0], tampered_payload, parts[2]);
    // Tampered signature.
    let sig = parts[2].clone();
    parts[2] = format!(
        "{}{}",
        if sig.starts_with('A') { 'B' } else { 'A' },
        &sig[1..]
    );
    let bad_sig = parts.join(".");
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(
            &json!({"sub": "alice", "role": "user", "iat": now_secs(), "exp": now_secs() + 600, "ver": 0})
        )
    );
    let expired = forge(SECRET, "alice", Role::User, -5, 0);
    let other_secret = forge(
        "another-secret-that-is-also-32-bytes-long!",
        "alice",
        Role::User,
        600,
        0,
    );
    let cases = [
        ("expired", expired),
        ("tampered payload", tampered),
        ("tampered signature", bad_sig),
        ("alg none", none),
        ("other secret", other_secret),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (what, token) in &cases {
        let bearer = format!("Bearer {token}");
        assert_eq!(
            whoami(&s, &bearer).await,
            (401, json!("UNAUTHORIZED")),
            "{what}"
        );
        let hello = ws_hello(&s, &bearer).await;
        assert_eq!(hello["type"], "auth_error", "{what}: {hello}");
        assert_eq!(hello["code"], "UNAUTHORIZED", "{what}");
        let mut ws = s.ws_with(None, "").await;
        ws.send(json!({"type": "authenticate", "token": token}))
            .await;
        assert_eq!(ws.recv().await["type"], "auth_error", "{what}");
        assert!(ws.next().await.is_none(), "{what}: the socket stays open");
    }
    let (_, expired) = s
        .sql("SELECT 1", Some(&format!("Bearer {}", cases[0].1)))
        .await;
    assert_eq!(expired["error"]["message"], "token expired: log in again");
    // A forged token with the right secret works: the secret is what is checked.
    let forged = forge(SECRET, "alice", Role::User, 600, 0);
    assert_eq!(
        whoami(&s, &format!("Bearer {forged}")).await,
        (200, json!("alice"))
    );
    // No credentials on the WebSocket: `authenticate` must come within 3 s.
    let mut ws = s.ws_with(None, "").await;
    let m = ws.recv().await;
    assert_eq!(m["type"], "auth_error", "{m}");
    assert!(m["message"].as_str().unwrap().contains("within 3 s"), "{m}");
    let mut ws = s.ws_with(None, "").await;
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.recv().await["type"], "auth_error");
}

#[tokio::test]
async fn dropping_a_user_or_changing_its_password_or_role_revokes_its_tokens() {
    let s = server().await;
    for u in ["alice", "bob", "carol"] {
        s.root(&format!(
            "CREATE USER '{u}' WITH PASSWORD 'pw-{u}' ROLE user"
        ))
        .await;
    }
    s.root("CREATE NAMESPACE app").await;
    s.root("CREATE USER TABLE app.t (id BIGINT PRIMARY KEY)")
        .await;
    let changes = [
        ("alice", "ALTER USER 'alice' SET PASSWORD 'new-pw'"),
        ("bob", "ALTER USER 'bob' SET ROLE service"),
        ("carol", "DROP USER 'carol'"),
    ];
    for (user, change) in changes {
        let token = s.login(user, &format!("pw-{user}")).await;
        let bearer = format!("Bearer {token}");
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw-{user}"))
        );
        // Both work, and the Basic credential is now cached.
        assert_eq!(whoami(&s, &bearer).await.0, 200);
        assert_eq!(whoami(&s, &basic).await.0, 200);
        let mut ws = s.ws(&token).await;
        ws.subscribe("s", "SELECT * FROM app.t", json!({})).await;
        s.root(change).await;
        assert_eq!(
            whoami(&s, &bearer).await,
            (401, json!("UNAUTHORIZED")),
            "{change}"
        );
        if user != "bob" {
            // The cached password is forgotten at once.
            assert_eq!(
                whoami(&s, &basic).await,
                (401, json!("UNAUTHORIZED")),
                "{change}"
            );
        }
        // The open WebSocket is told and closed; its subscription is gone.
        let m = ws.recv().await;
        assert_eq!(m["type"], "auth_error", "{change}: {m}");
        assert!(ws.next().await.is_none(), "{change}");
        let hello = ws_hello(&s, &bearer).await;
        assert_eq!(hello["type"], "auth_error", "{change}");
    }
    // A fresh login works with the new password (and the new role).
    let token = s.login("alice", "new-pw").await;
    assert_eq!(
        whoami(&s, &format!("Bearer {token}")).await,
        (200, json!("alice"))
    );
    let (status, _) = s.login_raw("alice", "pw-alice").await;
    assert_eq!(status, 401);
    let token = s.login("bob", "pw-bob").await;
    let hello = ws_hello(&s, &format!("Bearer {token}")).await;
    assert_eq!(hello["role"], "service");
    let (status, _) = s.login_raw("carol", "pw-carol").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn an_open_websocket_closes_when_its_token_expires() {
    let s = server().await;
    s.root("CREATE USER 'alice' WITH PASSWORD 'pw-alice' ROLE user")
        .await;
    let token = forge(SECRET, "alice", Role::User, 2, 0);
    let mut ws = s.ws(&token).await;
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.recv().await["type"], "pong");
    let m = ws.recv().await;
    assert_eq!(m["type"], "auth_error", "{m}");
    assert_eq!(m["message"], "token expired: log in again");
    assert!(ws.next().await.is_none());
}

#[tokio::test]
async fn a_generated_secret_is_kept_so_tokens_survive_a_restart() {
    let mut s = start_server(&[]).await;
    s.root("CREATE USER 'alice' WITH PASSWORD 'pw-alice' ROLE user")
        .await;
    let token = s.login("alice", "pw-alice").await;
    let bearer = format!("Bearer {token}");
    assert_eq!(whoami(&s, &bearer).await, (200, json!("alice")));
    // Not signed with a well-known default: a token forged with any guess fails.
    let guess = forge(SECRET, "alice", Role::User, 600, 0);
    assert_eq!(whoami(&s, &format!("Bearer {guess}")).await.0, 401);
    s.root("CREATE NAMESPACE app").await;
    s.root("CREATE USER TABLE app.t (id BIGINT PRIMARY KEY)")
        .await;
    let mut ws = s.ws(&token).await;
    ws.subscribe("s", "SELECT * FROM app.t", json!({})).await;
    let count = "SELECT count(*) FROM system.live_queries";
    assert_eq!(s.root(count).await["results"][0]["rows"][0][0], 1);
    s.restart().await;
    assert_eq!(whoami(&s, &bearer).await, (200, json!("alice")));
    // Subscriptions do not survive a restart (clients resume with from_seq).
    assert!(ws.next().await.is_none());
    assert_eq!(s.root(count).await["results"][0]["rows"][0][0], 0);
}

/// Root's missing password is for this machine's own tools, not for a web page of another site
/// open in a browser here: a cross-site POST (CSRF) or a request through a name re-pointed at
/// 127.0.0.1 (DNS rebinding) is not root, runs nothing and gets no token.
#[tokio::test]
async fn another_sites_page_cannot_borrow_roots_missing_password() {
    let s = server().await;
    let url = &s.server.url;
    let authority = url.trim_start_matches("http://").to_string();
    let post = |path: &str, body: Value, headers: &[(&str, String)]| {
        let mut req = s.http.post(format!("{url}{path}")).body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let create = json!({"sql": "CREATE NAMESPACE forged"});
    let root_login = json!({"username": "root", "password": ""});
    let evil_origin = ("origin", "http://evil.example".to_string());
    let rebound_host = ("host", "evil.example".to_string());
    for headers in [
        vec![evil_origin.clone()],
        vec![rebound_host.clone()],
        vec![("origin", "null".to_string())],
    ] {
        let (status, body) = post("/v1/api/sql", create.clone(), &headers).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("UNAUTHORIZED")),
            "{headers:?}"
        );
        let (status, _) = post("/v1/api/auth/login", root_login.clone(), &headers).await;
        assert_eq!(status, 401, "{headers:?}");
    }
    let namespaces = s
        .root("SELECT COUNT(*) FROM system.namespaces WHERE name = 'forged'")
        .await;
    assert_eq!(
        namespaces["results"][0]["rows"][0][0],
        json!(0),
        "nothing ran"
    );

    // The server's own page (the console) and tools without Origin still are root.
    let same_origin = ("origin", format!("http://{authority}"));
    let (status, body) = post(
        "/v1/api/sql",
        json!({"sql": "SELECT current_user()"}),
        std::slice::from_ref(&same_origin),
    )
    .await;
    assert_eq!(
        (status, &body["results"][0]["rows"][0][0]),
        (200, &json!("root"))
    );
    let (status, body) = post("/v1/api/auth/login", root_login, &[same_origin]).await;
    assert_eq!((status, body["token_type"].as_str()), (200, Some("Bearer")));
    let localhost = ("host", authority.replacen("127.0.0.1", "localhost", 1));
    let (status, _) = post("/v1/api/sql", json!({"sql": "SELECT 1"}), &[localhost]).await;
    assert_eq!(status, 200);
    // A real credential works from any origin (it is not ambient: a page must hold it).
    s.user("ana", "ana-pw", "user").await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("ana:ana-pw")
    );
    let (status, _) = post(
        "/v1/api/sql",
        json!({"sql": "SELECT 1"}),
        &[evil_origin, ("authorization", basic)],
    )
    .await;
    assert_eq!(status, 200);
}
