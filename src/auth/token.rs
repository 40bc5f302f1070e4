//! Login tokens (SPEC section 7): HS256 JWTs with the claims `sub` (user id), `role`, `iat`,
//! `exp` (seconds since the Unix epoch) and `ver`, the user's credential version
//! ([`super::UserRecord::auth_version`]). A token is accepted only while its signature, its
//! expiry, and its user's current role and credential version all check out, so it stops
//! working when it expires, when the user is dropped, and when the password or role changes
//! (docs/decisions.md "Tokens").
//!
//! The signing secret is the configured `jwt_secret`, else one generated on first start and
//! kept in the data directory's metadata (so tokens survive restarts).
//!
//! May import: the ground floor and `storage/`. Never `catalog/`, the shared state or anything above.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::session::Role;
use crate::storage::{Batch, CF_META, Store};

const SECRET_KEY: &[u8] = b"ctr/jwt_secret";

/// The claims of a login token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The user's role when the token was issued.
    pub role: Role,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
    /// The user's credential version when the token was issued.
    pub ver: u64,
}

/// A token as `POST /v1/api/auth/login` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IssuedToken {
    /// The JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Signs and checks tokens with one secret.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    expiry_secs: u64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expiry_secs", &self.expiry_secs)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Tokens signed with `configured` (at least 32 bytes, checked by the configuration), else
    /// with the secret kept in `store`, generated (32 random bytes) the first time.
    ///
    /// # Errors
    /// Storage failures.
    pub fn open(store: &Store, configured: Option<&str>, expiry_secs: u64) -> Result<Tokens> {
        let secret = match configured {
            Some(s) => s.as_bytes().to_vec(),
            None => match store.get(CF_META, SECRET_KEY)? {
                Some(s) => s,
                None => {
                    let mut s = vec![0u8; 32];
                    OsRng.fill_bytes(&mut s);
                    let mut b = Batch::default();
                    b.put(store, CF_META, SECRET_KEY, &s);
                    store.write(b)?;
                    s
                }
            },
        };
        Ok(Tokens {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            expiry_secs,
        })
    }

    /// A token for `user_id` with `role` and credential version `ver`, valid from `now_secs`
    /// for the configured lifetime.
    ///
    /// # Errors
    /// [`Error::Internal`] if signing fails.
    pub fn issue(&self, user_id: &str, role: Role, ver: u64, now_secs: u64) -> Result<IssuedToken> {
        let claims = Claims {
            sub: user_id.to_string(),
            role,
            iat: now_secs,
            exp: now_secs.saturating_add(self.expiry_secs),
            ver,
        };
        let access_token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
                .map_err(|e| Error::Internal(format!("cannot sign token: {e}")))?;
        Ok(IssuedToken {
            access_token,
            token_type: "Bearer".into(),
            expires_in: self.expiry_secs,
        })
    }

    /// The claims of `token` if it is an HS256 JWT signed with this secret and not expired
    /// (no leeway). Any other algorithm, `alg: none` included, is refused.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] saying whether the token expired or is invalid.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    Error::Unauthorized("token expired: log in again".into())
                }
                _ => Error::Unauthorized("invalid token".into()),
            })
    }
}

/// Now, in whole seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    u64::try_from(crate::ids::now_millis() / 1000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn tokens(expiry: u64) -> Tokens {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), false).unwrap();
        Tokens::open(&store, Some("0123456789abcdef0123456789abcdef"), expiry).unwrap()
    }

    #[test]
    fn a_token_round_trips_and_tampering_is_refused() {
        let t = tokens(60);
        let now = now_secs();
        let issued = t.issue("alice", Role::User, 3, now).unwrap();
        let c = t.verify(&issued.access_token).unwrap();
        assert_eq!(
            (c.sub.as_str(), c.role, c.ver, c.exp),
            ("alice", Role::User, 3, now + 60)
        );
        // Change the payload's role to dba, keep the signature.
        let parts: Vec<&str> = issued.access_token.split('.').collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = String::from_utf8(b64.decode(parts[1]).unwrap()).unwrap();
        let forged = b64.encode(payload.replace("\"user\"", "\"dba\""));
        let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
        assert_eq!(t.verify(&tampered).unwrap_err().message(), "invalid token");
        // alg: none with no signature.
        let none = format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert_eq!(t.verify(&none).unwrap_err().message(), "invalid token");
        let expired = t.issue("alice", Role::User, 3, now - 120).unwrap();
        assert!(
            t.verify(&expired.access_token)
                .unwrap_err()
                .message()
                .contains("expired")
        );
    }

    #[test]
    fn a_generated_secret_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let token = {
            let store = Store::open(&path, false).unwrap();
            let t = Tokens::open(&store, None, 60).unwrap();
            t.issue("bob", Role::Dba, 0, now_secs())
                .unwrap()
                .access_token
        };
        let store = Store::open(&path, false).unwrap();
        let again = Tokens::open(&store, None, 60).unwrap();
        assert_eq!(again.verify(&token).unwrap().sub, "bob");
        let other = Tokens::open(&store, Some("another-secret-of-32-bytes-or-more"), 60).unwrap();
        assert!(other.verify(&token).is_err());
    }
}
