//! First start without a configured admin: a one-time set-up token,
//! printed to stderr, lets the person who started the server create the
//! organization and its first admin (`POST /api/v1/setup`, in
//! `api::setup`). Only its hash is kept, in memory; a restart prints a new
//! one.

use std::sync::Mutex;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The set-up token, while set-up is open.
#[derive(Debug, Default)]
pub struct SetupGate(Mutex<Option<[u8; 32]>>);

impl SetupGate {
    /// Opens set-up with a new random token, returned once.
    pub fn open(&self) -> Result<String, getrandom::Error> {
        use base64::Engine;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        *self.lock() = Some(Sha256::digest(token.as_bytes()).into());
        Ok(token)
    }

    /// Whether set-up is open.
    pub fn is_open(&self) -> bool {
        self.lock().is_some()
    }

    /// Checks `token` (in constant time) and closes set-up when it
    /// matches; false otherwise.
    pub fn take(&self, token: &str) -> bool {
        let mut guard = self.lock();
        let Some(expected) = guard.as_ref() else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if bool::from(given.ct_eq(expected)) {
            *guard = None;
            true
        } else {
            false
        }
    }

    /// Puts a taken token back (the set-up it was taken for failed).
    pub fn restore(&self, token: &str) {
        *self.lock() = Some(Sha256::digest(token.as_bytes()).into());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<[u8; 32]>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
