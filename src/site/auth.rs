//! Basic authentication (`[[auth]]`, RFC 7617): the paths a rule's glob matches are served
//! only to a request whose `Authorization: Basic` names one of the rule's users with the
//! right password; any other gets `401` and the rule's `WWW-Authenticate` challenge.
//!
//! Passwords are configured only as bcrypt or argon2 (PHC) hashes, checked once at start.
//! Checking a password against one is slow on purpose (tens of milliseconds), so it never
//! happens on the thread that serves the request: [`Auth::ready`] hands a credential it has
//! no verdict for to the verifier thread (`verifier.rs`) and says "not ready"; the core keeps
//! the request and asks again, and [`Auth::refusal`] then answers from the verdict. A verdict
//! is found by a keyed digest of user and password, so a credential once checked costs one
//! BLAKE3 compression per request, and the password is not kept.
//!
//! A rule protects paths as the site names them (decoded and normalized, as [`Glob`]s match
//! them); a symbolic link elsewhere in ROOT that points into a protected folder serves its
//! target without a password, as with path-based rules in other servers.

mod verifier;

use super::glob::{Glob, GlobError};
use crate::fs::SitePath;
use crate::http::{Field, FieldList, Method, Reply, Request, Status};
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use std::cell::Cell;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;
use subtle::ConstantTimeEq;
use verifier::{Check, Digest, Key, Queued, Verifier};
use zeroize::{Zeroize, Zeroizing};

/// The longest `user:password` taken from an `Authorization` field, decoded; a longer one is
/// refused as a wrong credential (bcrypt reads only 72 bytes of a password anyway).
const MAX_CREDENTIAL: usize = 1024;

/// `--hash-password`: argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane).
pub const HASH_MEMORY_KIB: u32 = 19 * 1024;
pub const HASH_PASSES: u32 = 2;
pub const HASH_LANES: u32 = 1;

/// One `[[auth]]` table: which paths, the realm the browser shows, and who may see them.
#[derive(Debug, Clone)]
pub struct AuthRule {
    path: Glob,
    realm: Box<str>,
    users: Box<[User]>,
    /// `WWW-Authenticate: Basic realm="…", charset="UTF-8"`, made once.
    challenge: Arc<FieldList>,
}

#[derive(Debug, Clone)]
struct User {
    name: Box<str>,
    hash: Arc<PasswordHash>,
    /// `name:hash` as written, for `--print-config`.
    entry: Box<str>,
}

/// Why an `[[auth]]` table is refused at start. Never shows a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthRuleError {
    #[error("path: {0}")]
    Path(GlobError),
    #[error("realm: expected printable ASCII without '\"' or '\\', not empty")]
    Realm,
    #[error("users: expected at least one \"user:hash\"")]
    NoUsers,
    /// `index`: which entry of `users`.
    #[error("users: {why}")]
    User { index: usize, why: String },
}

impl AuthRule {
    /// Checks every part: the glob, the realm (it goes in a quoted-string), and each user's
    /// `name:hash`, whose hash must be bcrypt (`$2a$`, `$2b$`, `$2y$`) or argon2 (PHC).
    pub fn new(path: &str, realm: &str, users: &[String]) -> Result<AuthRule, AuthRuleError> {
        let path = Glob::new(path).map_err(AuthRuleError::Path)?;
        if realm.is_empty() || !realm.bytes().all(is_quotable) {
            return Err(AuthRuleError::Realm);
        }
        if users.is_empty() {
            return Err(AuthRuleError::NoUsers);
        }
        let mut parsed: Vec<User> = Vec::with_capacity(users.len());
        for (index, entry) in users.iter().enumerate() {
            let user = User::parse(entry).map_err(|why| AuthRuleError::User { index, why })?;
            if parsed.iter().any(|other| other.name == user.name) {
                let why = format!("'{}' is listed twice", user.name);
                return Err(AuthRuleError::User { index, why });
            }
            parsed.push(user);
        }
        let mut challenge = FieldList::default();
        challenge
            .set(
                "WWW-Authenticate",
                &format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
            )
            .map_err(|_| AuthRuleError::Realm)?;
        Ok(AuthRule {
            path,
            realm: realm.into(),
            users: parsed.into(),
            challenge: Arc::new(challenge),
        })
    }

    /// The glob as written.
    pub fn path(&self) -> &str {
        self.path.as_str()
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Each user's `name:hash`, as written.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.iter().map(|user| &*user.entry)
    }

    /// The index of the user called `name`, compared in constant time with every user (how
    /// long it takes does not tell which names exist).
    fn user_named(&self, name: &[u8]) -> Option<usize> {
        let mut found = None;
        for (index, user) in self.users.iter().enumerate() {
            if bool::from(user.name.as_bytes().ct_eq(name)) {
                found = Some(index);
            }
        }
        found
    }
}

/// A quoted-string's byte that needs no escaping: visible ASCII and space, but `"` and `\`.
fn is_quotable(byte: u8) -> bool {
    (b' '..=b'~').contains(&byte) && byte != b'"' && byte != b'\\'
}

impl User {
    fn parse(entry: &str) -> Result<User, String> {
        let Some(at) = entry.find(":$") else {
            return Err(match entry.split_once(':') {
                Some((name, _)) => format!(
                    "the password of '{name}' must be a bcrypt or argon2 hash (bingfa --hash-password makes one), not the password"
                ),
                None => "expected \"user:hash\"".to_owned(),
            });
        };
        let (name, hash) = (&entry[..at], &entry[at + 1..]);
        if name.is_empty() || name.contains(':') || name.chars().any(char::is_control) {
            return Err(format!(
                "'{name}' is no user name (not empty, no ':' or control characters)"
            ));
        }
        let hash = PasswordHash::parse(hash).map_err(|why| format!("the hash of '{name}': {why}"))?;
        Ok(User {
            name: name.into(),
            hash: Arc::new(hash),
            entry: entry.into(),
        })
    }
}

/// A password hash as configured, parsed once.
#[derive(Debug, Clone)]
pub enum PasswordHash {
    Bcrypt(Box<str>),
    /// Boxed: a PHC string parsed is some 300 bytes, a bcrypt hash's text 16.
    Argon2(Box<argon2::password_hash::phc::PasswordHash>),
}

impl PasswordHash {
    /// A bcrypt hash (`$2a$`, `$2b$`, `$2y$`, cost 4 to 31) or an argon2 PHC string
    /// (`$argon2id$`, `$argon2i$`, `$argon2d$`) with valid parameters, salt and hash.
    pub fn parse(text: &str) -> Result<PasswordHash, String> {
        let scheme = text.split('$').nth(1).unwrap_or_default();
        match scheme {
            "2a" | "2b" | "2y" => {
                let parts =
                    bcrypt::HashParts::from_str(text).map_err(|e| format!("not a valid bcrypt hash: {e}"))?;
                if !(4..=31).contains(&parts.get_cost()) {
                    return Err(format!(
                        "bcrypt cost {} is not between 4 and 31",
                        parts.get_cost()
                    ));
                }
                Ok(PasswordHash::Bcrypt(text.into()))
            }
            "argon2id" | "argon2i" | "argon2d" => {
                let hash = argon2::password_hash::phc::PasswordHash::new(text).map_err(invalid)?;
                Algorithm::try_from(hash.algorithm.as_str()).map_err(invalid)?;
                Params::try_from(&hash).map_err(invalid)?;
                if let Some(version) = hash.version {
                    Version::try_from(version).map_err(invalid)?;
                }
                if hash.salt.is_none() || hash.hash.is_none() {
                    return Err("not a valid argon2 hash: it has no salt or no hash".to_owned());
                }
                Ok(PasswordHash::Argon2(Box::new(hash)))
            }
            _ => Err(
                "unknown scheme (expected bcrypt $2a$/$2b$/$2y$ or argon2 $argon2id$/$argon2i$/$argon2d$)"
                    .to_owned(),
            ),
        }
    }

    /// Whether `password` is the one hashed. Slow on purpose: never on an event loop.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            PasswordHash::Argon2(hash) => Argon2::default().verify_password(password, &**hash).is_ok(),
        }
    }
}

fn invalid(error: impl std::fmt::Display) -> String {
    format!("not a valid argon2 hash: {error}")
}

/// `bingfa --hash-password`: `password` as an argon2id PHC string with a random salt.
pub fn hash_password(password: &[u8]) -> Result<String, String> {
    let params = Params::new(HASH_MEMORY_KIB, HASH_PASSES, HASH_LANES, None).map_err(|e| e.to_string())?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let hash = argon2.hash_password(password).map_err(|e| e.to_string())?;
    Ok(hash.to_string())
}

/// The site's `[[auth]]` rules at work: the verdicts so far and the verifier thread.
#[derive(Debug)]
pub(super) struct Auth {
    rules: Box<[AuthRule]>,
    /// Keys the digests of credentials; random per server, never leaves memory.
    key: [u8; 32],
    verifier: Verifier,
    /// `Retry-After: 1`, for a 503 when the verifier's queue is full.
    busy: Arc<FieldList>,
}

/// What a rule says of a request, as far as it can say it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Under no rule, or its credential passed: serve it.
    Serve,
    /// 401 with the challenge of this rule.
    Challenge(usize),
    /// Its credential waits for the verifier (or could not be queued: 503).
    Unknown(Key),
}

thread_local! {
    /// The outcome `ready` found for the request it said yes to, which `handle` is asked for
    /// next on the same thread (`http::conn::ask`), so that the path is decoded and the
    /// credential digested once per request. Keyed by where the request's path lies and when
    /// it is answered; taken by the first look. A miss only means the work is done again.
    static JUDGED: Cell<Option<(Judged, Outcome)>> = const { Cell::new(None) };
}

/// Which request an outcome in `JUDGED` is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Judged {
    path: (usize, usize),
    now: Instant,
}

impl Judged {
    fn of(request: &Request<'_>) -> Judged {
        Judged {
            path: (request.path.as_ptr() as usize, request.path.len()),
            now: request.now,
        }
    }
}

impl Auth {
    pub fn new(rules: Vec<AuthRule>) -> std::io::Result<Auth> {
        let mut key = [0; 32];
        getrandom::fill(&mut key)
            .map_err(|e| std::io::Error::other(format!("no random bytes for the [[auth]] key: {e}")))?;
        let mut busy = FieldList::default();
        busy.set("Retry-After", "1")
            .expect("Retry-After: 1 is a valid field");
        Ok(Auth {
            rules: rules.into(),
            key,
            verifier: Verifier::new(),
            busy: Arc::new(busy),
        })
    }

    /// Whether `request` can be answered now: it is under no rule, it has no credential to
    /// check, or its credential's verdict is known. If not, its check is queued (once) for
    /// the verifier thread. With the queue full it is ready too: `refusal` says 503.
    ///
    /// `names` gives the paths whose files may answer the request (see `Site::served_names`):
    /// a rule protects a file under each name that can reach it, not only the one it names.
    pub fn ready(&self, request: &Request<'_>, names: impl FnOnce() -> Vec<SitePath>) -> bool {
        let outcome = self.judge(request, names);
        if let Outcome::Unknown(key) = outcome {
            let queued = with_credential(request, |user, password| {
                self.verifier
                    .request(key, || self.check(key.rule, user, password))
            });
            if queued == Some(Queued::Waiting) {
                return false;
            }
        }
        JUDGED.set(Some((Judged::of(request), outcome)));
        true
    }

    /// The answer to a request its rule does not let through: 401 with the rule's challenge
    /// (no credential, or a wrong one), or 503 if its credential could not be checked yet.
    /// `None`: serve it as usual.
    pub fn refusal(&self, request: &Request<'_>, names: impl FnOnce() -> Vec<SitePath>) -> Option<Reply> {
        let outcome = match JUDGED.take() {
            Some((judged, outcome)) if judged == Judged::of(request) => outcome,
            _ => self.judge(request, names),
        };
        let (status, fields) = match outcome {
            Outcome::Serve => return None,
            Outcome::Challenge(rule) => (Status::Unauthorized, &self.rules[rule].challenge),
            Outcome::Unknown(_) => (Status::ServiceUnavailable, &self.busy),
        };
        Some(Reply {
            extra_fields: Some(Arc::clone(fields)),
            ..Reply::error(status)
        })
    }

    /// The request's outcome from its path, its credential and the verdicts so far.
    fn judge(&self, request: &Request<'_>, names: impl FnOnce() -> Vec<SitePath>) -> Outcome {
        // A CORS preflight carries no credentials (Fetch), and is answered by the rules, never
        // with a file: asking it for a password would only break CORS on protected paths.
        if request.method == Method::Options {
            return Outcome::Serve;
        }
        let Some(rule) = self.rule_for(names) else {
            return Outcome::Serve;
        };
        let Some(key) = request
            .field(Field::Authorization)
            .and_then(|value| basic_credentials(&value).map(|token| self.key(rule, token)))
        else {
            return Outcome::Challenge(rule);
        };
        match self.verifier.verdict(&key) {
            Some(true) => Outcome::Serve,
            Some(false) => Outcome::Challenge(rule),
            // Decoded only now, before its check is queued: a token that holds no
            // `user:password` is a wrong credential, and never gets a verdict.
            None if with_credential(request, |_, _| ()).is_none() => Outcome::Challenge(rule),
            None => Outcome::Unknown(key),
        }
    }

    /// The index of the first rule whose glob matches any of `names`. A first rule for every
    /// path (`/**`, the whole site behind a password) decides alone, so the names a request
    /// may be served under are not worked out for it.
    fn rule_for(&self, names: impl FnOnce() -> Vec<SitePath>) -> Option<usize> {
        if self.rules.first()?.path.matches_every_path() {
            return Some(0);
        }
        let names = names();
        self.rules
            .iter()
            .position(|rule| names.iter().any(|name| rule.path.matches(name)))
    }

    /// The verdict's key: the rule, and BLAKE3 keyed with this server's key over the
    /// credential as the client sent it (the token of `Basic`, still in base64: a cached verdict then
    /// costs no decoding; the encoding is canonical, so one `user:password` has one token).
    fn key(&self, rule: usize, token: &[u8]) -> Key {
        Key {
            rule,
            digest: Digest(*blake3::keyed_hash(&self.key, token).as_bytes()),
        }
    }

    /// The verifier's job for a credential: the user's hash, or for an unknown user the first
    /// user's hash, checked all the same and failed (see `Check`).
    fn check(&self, rule: usize, user: &[u8], password: &[u8]) -> Check {
        let rule = &self.rules[rule];
        let known = rule.user_named(user);
        let hash = &rule.users[known.unwrap_or(0)].hash;
        Check {
            hash: Arc::clone(hash),
            password: Zeroizing::new(password.to_vec()),
            known_user: known.is_some(),
        }
    }
}

/// Calls `f` with the user and password of the request's `Authorization: Basic` field, if it
/// has a valid one; the decoded bytes are wiped after.
fn with_credential<T>(request: &Request<'_>, f: impl FnOnce(&[u8], &[u8]) -> T) -> Option<T> {
    let value = request.field(Field::Authorization)?;
    let encoded = basic_credentials(&value)?;
    let mut buffer = [0u8; MAX_CREDENTIAL];
    let len = base64::engine::general_purpose::STANDARD
        .decode_slice(encoded, &mut buffer)
        .ok()?;
    let decoded = &mut buffer[..len];
    let result = decoded
        .iter()
        .position(|&b| b == b':')
        .map(|colon| f(&decoded[..colon], &decoded[colon + 1..]));
    // Only what was written: wiping all of the buffer would cost more than the digest.
    decoded.zeroize();
    result
}

/// The token68 of a `Basic` credential: the scheme in any case, then spaces (RFC 9110 §11.4).
fn basic_credentials(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..6)?;
    if !scheme[..5].eq_ignore_ascii_case(b"basic") || scheme[5] != b' ' {
        return None;
    }
    let token = value[6..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::with_request;
    use std::time::{Duration, Instant};

    /// An argon2id hash made cheap for tests (64 KiB, one pass).
    fn cheap_argon2(password: &str) -> String {
        let params = Params::new(64, 1, 1, None).unwrap();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes())
            .unwrap()
            .to_string()
    }

    fn rule(path: &str, users: &[String]) -> AuthRule {
        AuthRule::new(path, "staff", users).unwrap()
    }

    fn basic(user_password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
    }

    /// The request's own path, the one name a site without aliases serves it under.
    fn requested(request: &Request<'_>) -> Vec<SitePath> {
        crate::fs::decode_path(request.path).into_iter().collect()
    }

    fn get(path: &str, authorization: Option<&str>) -> Vec<u8> {
        let field = authorization.map_or(String::new(), |value| format!("Authorization: {value}\r\n"));
        format!("GET {path} HTTP/1.1\r\nHost: a\r\n{field}\r\n").into_bytes()
    }

    /// Asks `ready` until it says yes (bounded), then the refusal, as the core does.
    fn answer(auth: &Auth, path: &str, authorization: Option<&str>) -> Option<Reply> {
        let head = get(path, authorization);
        let deadline = Instant::now() + Duration::from_secs(10);
        with_request(&head, Instant::now(), |request| {
            while !auth.ready(request, || requested(request)) {
                assert!(Instant::now() < deadline, "never ready");
                std::thread::sleep(Duration::from_millis(2));
            }
            auth.refusal(request, || requested(request))
        })
    }

    fn status(reply: &Option<Reply>) -> u16 {
        reply.as_ref().map_or(200, |reply| reply.status.code())
    }

    #[test]
    fn hashes_bcrypt_and_argon2_only() {
        let bcrypt = bcrypt::hash("pw", 4).unwrap();
        assert!(PasswordHash::parse(&bcrypt).unwrap().verify(b"pw"));
        assert!(!PasswordHash::parse(&bcrypt).unwrap().verify(b"pW"));
        for prefix in ["$2a$", "$2y$"] {
            let same = bcrypt.replacen("$2b$", prefix, 1);
            assert!(PasswordHash::parse(&same).is_ok(), "{prefix}");
        }
        let argon2 = cheap_argon2("pw");
        assert!(PasswordHash::parse(&argon2).unwrap().verify(b"pw"));
        assert!(!PasswordHash::parse(&argon2).unwrap().verify(b"p"));
        for other in ["argon2i", "argon2d"] {
            let text = argon2.replacen("argon2id", other, 1);
            assert!(PasswordHash::parse(&text).is_ok(), "{other}");
        }
        for (bad, why) in [
            ("$2x$04$abcdefghijklmnopqrstuu", "unknown scheme"),
            ("$1$salt$hash", "unknown scheme"),
            ("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA", "unknown scheme"),
            ("$2b$04$tooshort", "not a valid bcrypt hash"),
            (&bcrypt.replacen("$04$", "$03$", 1), "cost 3"),
            ("$argon2id$v=19$m=64,t=1,p=1", "no salt or no hash"),
            (
                "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
                "not a valid argon2 hash",
            ),
            (
                "$argon2id$v=7$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
                "not a valid argon2 hash",
            ),
            (
                "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$***",
                "not a valid argon2 hash",
            ),
        ] {
            let error = PasswordHash::parse(bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn a_rule_refuses_plain_passwords_bad_names_and_realms() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let ok = AuthRule::new("/private/**", "staff", &[format!("alice:{hash}")]).unwrap();
        assert_eq!(ok.users().collect::<Vec<_>>(), [format!("alice:{hash}")]);
        assert_eq!(
            ok.challenge.get("www-authenticate"),
            Some("Basic realm=\"staff\", charset=\"UTF-8\"")
        );
        let user_error = |users: &[String]| match AuthRule::new("/a", "r", users).unwrap_err() {
            AuthRuleError::User { index, why } => (index, why),
            other => panic!("{other:?}"),
        };
        let (index, why) = user_error(&[format!("alice:{hash}"), "bob:secret".into()]);
        assert_eq!(index, 1);
        assert!(why.contains("'bob' must be a bcrypt or argon2 hash"), "{why}");
        assert!(!why.contains("secret"), "a password is never shown: {why}");
        let (_, why) = user_error(&[format!("al:ice:{hash}")]);
        assert!(why.contains("'al:ice' is no user name"), "{why}");
        let (_, why) = user_error(std::slice::from_ref(&hash));
        assert!(why.contains("expected \"user:hash\""), "{why}");
        let (_, why) = user_error(&[format!(":{hash}")]);
        assert!(why.contains("'' is no user name"), "{why}");
        let (_, why) = user_error(&["alice".into()]);
        assert!(why.contains("expected \"user:hash\""), "{why}");
        let (_, why) = user_error(&[format!("a:{hash}"), format!("a:{hash}")]);
        assert!(why.contains("listed twice"), "{why}");
        let (_, why) = user_error(&["a:$5$rounds=1$x$y".into()]);
        assert!(why.contains("unknown scheme"), "{why}");
        for realm in ["", "a\"b", "a\\b", "tab\there", "ünïcode"] {
            let error = AuthRule::new("/a", realm, &[format!("a:{hash}")]).unwrap_err();
            assert_eq!(error, AuthRuleError::Realm, "{realm:?}");
        }
        assert_eq!(AuthRule::new("/a", "r", &[]).unwrap_err(), AuthRuleError::NoUsers);
        assert!(matches!(
            AuthRule::new("a/**", "r", &[format!("a:{hash}")]),
            Err(AuthRuleError::Path(_))
        ));
    }

    #[test]
    fn basic_credentials_are_parsed_strictly() {
        assert_eq!(basic_credentials(b"Basic YTpi"), Some(&b"YTpi"[..]));
        assert_eq!(basic_credentials(b"bAsIc   YTpi  "), Some(&b"YTpi"[..]));
        for bad in [
            &b"Basic"[..],
            b"Basic ",
            b"Bearer YTpi",
            b"BasicYTpi",
            b"Basic\tYTpi",
        ] {
            assert_eq!(basic_credentials(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_first_matching_rule_decides_and_others_pass() {
        let alice = format!("alice:{}", cheap_argon2("wonderland"));
        let bob = format!("bob:{}", bcrypt::hash("builder", 4).unwrap());
        let auth = Auth::new(vec![
            rule("/private/open/**", std::slice::from_ref(&bob)),
            rule("/private/**", &[alice, bob]),
        ])
        .unwrap();
        assert_eq!(status(&answer(&auth, "/index.html", None)), 200);
        let refused = answer(&auth, "/private/a.html", None).unwrap();
        assert_eq!(refused.status, Status::Unauthorized);
        let challenge = refused.extra_fields.unwrap();
        assert!(challenge
            .get("WWW-Authenticate")
            .unwrap()
            .starts_with("Basic realm=\"staff\""));
        for (path, credential, expected) in [
            ("/private/a.html", "alice:wonderland", 200),
            ("/private/a.html", "bob:builder", 200),
            ("/private/a.html", "alice:builder", 401),
            ("/private/a.html", "carol:wonderland", 401),
            ("/private/open/x", "alice:wonderland", 401),
            ("/private/open/x", "bob:builder", 200),
            // Decoded and normalized as the site serves it.
            ("/public/../private/%61.html", "x:y", 401),
            ("/private", "bob:wrong", 401),
        ] {
            let reply = answer(&auth, path, Some(&basic(credential)));
            assert_eq!(status(&reply), expected, "{path} {credential}");
        }
        // Not a Basic credential, or not one at all: 401, nothing queued.
        for authorization in ["Bearer abc", "Basic !!!", "Basic YWxpY2U="] {
            let reply = answer(&auth, "/private/a.html", Some(authorization));
            assert_eq!(status(&reply), 401, "{authorization}");
        }
    }

    #[test]
    fn a_verdict_is_kept_under_a_digest_not_the_password() {
        let auth = Auth::new(vec![rule(
            "/**",
            &[format!("alice:{}", bcrypt::hash("wonderland", 4).unwrap())],
        )])
        .unwrap();
        assert_eq!(status(&answer(&auth, "/", Some(&basic("alice:wonderland")))), 200);
        let token = |credential: &str| basic(credential)["Basic ".len()..].to_owned();
        let key = auth.key(0, token("alice:wonderland").as_bytes());
        assert_eq!(auth.verifier.verdict(&key), Some(true));
        assert!(
            !key.digest.0.windows(4).any(|w| w == b"wond"),
            "the key holds no part of the password"
        );
        // Another server, another key: digests are not comparable across processes' keys.
        let other = Auth::new(Vec::new()).unwrap();
        assert_ne!(other.key(0, token("alice:wonderland").as_bytes()), key);
        // The user's name is part of the digest: alice:x is not al:icex.
        assert_ne!(
            auth.key(0, token("alice:x").as_bytes()),
            auth.key(0, token("al:icex").as_bytes())
        );
        // Cached now: the next request is ready at once, with nothing queued.
        let head = get("/", Some(&basic("alice:wonderland")));
        with_request(&head, Instant::now(), |request| {
            assert!(auth.ready(request, || requested(request)));
            assert!(auth.refusal(request, || requested(request)).is_none());
        });
    }

    #[test]
    fn what_ready_found_is_handed_to_the_refusal_once() {
        let auth = Auth::new(vec![rule(
            "/private/**",
            &[format!("bob:{}", bcrypt::hash("builder", 4).unwrap())],
        )])
        .unwrap();
        let head = get("/private/a", None);
        with_request(&head, Instant::now(), |request| {
            assert!(auth.ready(request, || requested(request)));
            assert!(JUDGED.get().is_some());
            assert_eq!(
                auth.refusal(request, || requested(request)).unwrap().status,
                Status::Unauthorized
            );
            assert!(JUDGED.get().is_none(), "taken");
            // Asked without `ready` (or after another request's): judged again, the same.
            assert_eq!(
                auth.refusal(request, || requested(request)).unwrap().status,
                Status::Unauthorized
            );
        });
        let other = get("/public/a", None);
        with_request(&head, Instant::now(), |request| {
            assert!(auth.ready(request, || requested(request)))
        });
        with_request(&other, Instant::now(), |request| {
            assert!(
                auth.refusal(request, || requested(request)).is_none(),
                "not the outcome of /private/a"
            );
        });
    }

    #[test]
    fn a_full_queue_is_503_with_retry_after() {
        let auth = Auth::new(vec![rule(
            "/**",
            &[format!("bob:{}", bcrypt::hash("builder", 4).unwrap())],
        )])
        .unwrap();
        auth.verifier.stall();
        let ask = |password: &str| {
            let head = get("/", Some(&basic(&format!("bob:{password}"))));
            with_request(&head, Instant::now(), |request| {
                (
                    auth.ready(request, || requested(request)),
                    auth.refusal(request, || requested(request)),
                )
            })
        };
        for n in 0..verifier::QUEUE_CAPACITY {
            let (ready, _) = ask(&n.to_string());
            assert!(!ready, "{n} waits for its check");
        }
        let (ready, reply) = ask("one too many");
        assert!(ready, "not kept waiting");
        let reply = reply.unwrap();
        assert_eq!(reply.status, Status::ServiceUnavailable);
        assert_eq!(reply.extra_fields.unwrap().get("Retry-After"), Some("1"));
        assert!(!ask("0").0, "one queued already still waits");
    }

    #[test]
    fn hash_password_makes_owasp_argon2id() {
        let hash = hash_password(b"correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(PasswordHash::parse(&hash).unwrap().verify(b"correct horse"));
    }
}
