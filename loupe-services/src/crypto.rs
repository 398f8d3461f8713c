//! Secrets at rest, passwords and tokens.
//!
//! - Datasource secrets are sealed with AES-256-GCM under an operator key,
//!   with the datasource id as associated data (a ciphertext moved to
//!   another datasource does not open). Each ciphertext names its key, so
//!   keys can rotate: the ring opens with any key it holds and seals with
//!   the current one.
//! - Passwords are hashed with argon2id at OWASP's parameters, off the async
//!   threads and a few at a time.
//! - Tokens (invitations, resets, API keys, refresh tokens) are random and
//!   long, so a SHA-256 is enough to store them; comparisons are constant
//!   time.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use loupe_core::{Error, Result};

/// The format of sealed secrets (bumped if the scheme ever changes).
pub(crate) const SEAL_FORMAT: i16 = 1;

/// Operator keys for datasource secrets.
#[derive(Clone)]
pub struct KeyRing {
    current: String,
    keys: HashMap<String, Arc<Aes256Gcm>>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A sealed secret and what is needed to open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sealed {
    pub(crate) key_id: String,
    pub(crate) nonce: Vec<u8>,
    pub(crate) ciphertext: Vec<u8>,
}

impl Sealed {
    /// The sealed secret as one line of text, for a text column:
    /// `v1.<key id>.<nonce>.<ciphertext>`, binary parts in URL-safe base64.
    pub(crate) fn to_text(&self) -> String {
        format!(
            "v1.{}.{}.{}",
            URL_SAFE_NO_PAD.encode(self.key_id.as_bytes()),
            URL_SAFE_NO_PAD.encode(&self.nonce),
            URL_SAFE_NO_PAD.encode(&self.ciphertext)
        )
    }

    /// Reads [`to_text`](Self::to_text)'s form.
    pub(crate) fn from_text(text: &str) -> Result<Self> {
        let bad = || Error::internal("a stored secret is not in the sealed format");
        let mut parts = text.split('.');
        if parts.next() != Some("v1") {
            return Err(bad());
        }
        let mut next = || {
            parts
                .next()
                .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
                .ok_or_else(bad)
        };
        let key_id = String::from_utf8(next()?).map_err(|_| bad())?;
        let nonce = next()?;
        let ciphertext = next()?;
        Ok(Self {
            key_id,
            nonce,
            ciphertext,
        })
    }
}

impl KeyRing {
    /// A ring whose current key is `key` (32 bytes, base64), which may also
    /// open secrets sealed under `previous` keys.
    ///
    /// # Errors
    /// [`Error::Config`] when a key is not 32 bytes of base64.
    pub fn new(key: &SecretString, previous: &[SecretString]) -> Result<Self> {
        let (current, cipher) = Self::load(key)?;
        let mut keys = HashMap::from([(current.clone(), cipher)]);
        for old in previous {
            let (id, cipher) = Self::load(old)?;
            keys.entry(id).or_insert(cipher);
        }
        Ok(Self { current, keys })
    }

    fn load(key: &SecretString) -> Result<(String, Arc<Aes256Gcm>)> {
        let bytes = STANDARD.decode(key.expose_secret().trim()).map_err(|_| {
            Error::config(
                "the secret key is not base64; generate one with `openssl rand -base64 32`",
            )
        })?;
        if bytes.len() != 32 {
            return Err(Error::config(format!(
                "the secret key must be 32 bytes, got {}; generate one with `openssl rand -base64 32`",
                bytes.len()
            )));
        }
        let id = hex(&Sha256::digest(&bytes)[..8]);
        let key = Key::<Aes256Gcm>::try_from(bytes.as_slice())
            .map_err(|_| Error::config("the secret key must be 32 bytes"))?;
        Ok((id, Arc::new(Aes256Gcm::new(&key))))
    }

    /// A new random key, base64, for set-up and tests.
    pub fn generate_key() -> Result<SecretString> {
        Ok(SecretString::from(STANDARD.encode(random_bytes::<32>()?)))
    }

    /// The id of the key new secrets are sealed with.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    pub(crate) fn seal(&self, associated: &[u8], plaintext: &[u8]) -> Result<Sealed> {
        let cipher = self
            .keys
            .get(&self.current)
            .ok_or_else(|| Error::internal("the current key is missing from the ring"))?;
        let nonce_bytes = random_bytes::<12>()?;
        let nonce =
            Nonce::try_from(nonce_bytes.as_slice()).map_err(|_| Error::internal("nonce length"))?;
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: associated,
                },
            )
            .map_err(|_| Error::internal("encrypting a secret failed"))?;
        Ok(Sealed {
            key_id: self.current.clone(),
            nonce: nonce_bytes.to_vec(),
            ciphertext,
        })
    }

    pub(crate) fn open(&self, sealed: &Sealed, associated: &[u8]) -> Result<Vec<u8>> {
        let cipher = self.keys.get(&sealed.key_id).ok_or_else(|| {
            Error::config(format!(
                "secrets were sealed with key {} and this server does not have it; add it to the previous keys",
                sealed.key_id
            ))
        })?;
        let nonce = Nonce::try_from(sealed.nonce.as_slice())
            .map_err(|_| Error::internal("a stored secret has a bad nonce"))?;
        cipher
            .decrypt(&nonce, Payload { msg: &sealed.ciphertext, aad: associated })
            .map_err(|_| {
                Error::internal(format!(
                    "a stored secret does not open with key {}: the key is wrong or the data was changed",
                    sealed.key_id
                ))
            })
    }
}

/// Password hashing with argon2id, off the async threads.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    /// Verified against when a user does not exist, so that the answer
    /// takes as long as for a user who does.
    dummy: Arc<String>,
}

impl fmt::Debug for Passwords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Passwords").finish_non_exhaustive()
    }
}

impl Passwords {
    /// OWASP's argon2id parameters: 19 MiB, 2 passes, 1 lane.
    pub fn owasp() -> Result<Self> {
        Self::with_params(Params::default())
    }

    fn with_params(params: Params) -> Result<Self> {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let dummy = argon
            .hash_password(b"loupe dummy password")
            .map_err(|e| Error::internal(format!("argon2: {e}")))?
            .to_string();
        Ok(Self {
            params,
            // Each hash holds 19 MiB: bound how many run at once.
            permits: Arc::new(Semaphore::new(4)),
            dummy: Arc::new(dummy),
        })
    }

    fn argon(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// The PHC string of `password`.
    pub async fn hash(&self, password: &SecretString) -> Result<String> {
        let password = password.clone();
        self.with_argon(move |argon| {
            argon
                .hash_password(password.expose_secret().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| Error::internal(format!("argon2: {e}")))
        })
        .await
    }

    /// Whether `password` matches `hash`; `None` as the hash (no such user,
    /// or no password set yet) spends the same time and answers no.
    pub async fn verify(&self, password: &SecretString, hash: Option<&str>) -> Result<bool> {
        let known = hash.is_some();
        let stored = hash.map_or_else(|| self.dummy.as_str().to_owned(), str::to_owned);
        let password = password.clone();
        let matched = self
            .with_argon(move |argon| {
                let parsed = PasswordHash::new(&stored)
                    .map_err(|e| Error::internal(format!("stored password hash: {e}")))?;
                Ok(argon
                    .verify_password(password.expose_secret().as_bytes(), &parsed)
                    .is_ok())
            })
            .await?;
        Ok(known && matched)
    }

    /// Runs `work` with argon2 on a blocking thread once a permit is free:
    /// hashing takes a core and 19 MiB for a while, so it neither blocks
    /// the async workers nor runs more than a few at once.
    async fn with_argon<T: Send + 'static>(
        &self,
        work: impl FnOnce(Argon2<'static>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::internal("password hashing stopped"))?;
        let argon = self.argon();
        tokio::task::spawn_blocking(move || work(argon))
            .await
            .map_err(|e| Error::internal_from("password hashing task", e))?
    }
}

/// `N` random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::internal(format!("no randomness from the system: {e}")))?;
    Ok(bytes)
}

/// A random token of 32 bytes, URL-safe base64.
pub(crate) fn new_token() -> Result<String> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// HMAC-SHA-256 of `message` under `key` (RFC 2104), for values that
/// must be derived again later but cannot be guessed without the key.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> Result<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key)
        .map_err(|e| Error::internal(format!("HMAC key: {e}")))?;
    mac.update(message);
    Ok(mac.finalize().into_bytes().into())
}

/// URL-safe base64 without padding, the form of tokens.
pub(crate) fn token_text(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The SHA-256 of a token, hex.
pub(crate) fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Compares two hashes in constant time.
pub(crate) fn same_hash(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_datasource() {
        let key = KeyRing::generate_key().unwrap();
        let ring = KeyRing::new(&key, &[]).unwrap();
        let sealed = ring.seal(b"ds-1", b"{\"password\":\"pw\"}").unwrap();
        assert_ne!(sealed.ciphertext, b"{\"password\":\"pw\"}");
        assert_eq!(
            ring.open(&sealed, b"ds-1").unwrap(),
            b"{\"password\":\"pw\"}"
        );
        assert!(
            ring.open(&sealed, b"ds-2").is_err(),
            "bound to its datasource"
        );

        let other = KeyRing::new(&KeyRing::generate_key().unwrap(), &[]).unwrap();
        let err = other.open(&sealed, b"ds-1").unwrap_err();
        assert!(err.to_string().contains(&sealed.key_id), "{err}");

        // After rotation the old key still opens old secrets.
        let rotated = KeyRing::new(&KeyRing::generate_key().unwrap(), &[key]).unwrap();
        assert_eq!(
            rotated.open(&sealed, b"ds-1").unwrap(),
            b"{\"password\":\"pw\"}"
        );
        assert_ne!(rotated.current_key_id(), sealed.key_id);
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(KeyRing::new(&SecretString::from("short"), &[]).is_err());
        assert!(KeyRing::new(&SecretString::from(STANDARD.encode([0u8; 16])), &[]).is_err());
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let passwords = Passwords::owasp().unwrap();
        let pw = SecretString::from("correct horse battery");
        let hash = passwords.hash(&pw).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(passwords.verify(&pw, Some(&hash)).await.unwrap());
        assert!(
            !passwords
                .verify(&SecretString::from("wrong"), Some(&hash))
                .await
                .unwrap()
        );
        assert!(!passwords.verify(&pw, None).await.unwrap());
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 2 (a short key) and 6 (a key longer than a block).
        let short = hmac_sha256(b"Jefe", b"what do ya want for nothing?").unwrap();
        assert_eq!(
            hex(&short),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let long = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        )
        .unwrap();
        assert_eq!(
            hex(&long),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn tokens_are_long_and_hashed() {
        let t = new_token().unwrap();
        assert_eq!(t.len(), 43);
        assert_eq!(token_hash(&t).len(), 64);
        assert!(same_hash(&token_hash(&t), &token_hash(&t)));
        assert!(!same_hash(&token_hash(&t), &token_hash("other")));
    }
}
