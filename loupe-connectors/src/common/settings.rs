//! Settings every database connector takes: pool size and timeouts, and how
//! large a batch may grow before it is handed on.

use std::time::Duration;

use loupe_core::{OptionKind, OptionSpec};
use serde::{Deserialize, Deserializer};

/// A duration option: `"30s"`, `"1m 30s"`, `"250ms"` or a number of seconds.
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Seconds(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

/// An optional duration option; `0` or `"0s"` mean none.
pub(crate) fn optional_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    Ok(Some(duration(d)?).filter(|d| !d.is_zero()))
}

/// Parses `"30s"`, `"5m"`, `"250ms"`, or a plain number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration ({e}); write it like 30s, 5m or 250ms"))
}

/// The pool of connections a database datasource keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolSettings {
    /// Most connections open at once.
    pub(crate) size: usize,
    /// How long a query waits for a free connection before it fails.
    pub(crate) wait_timeout: Duration,
    /// Connections unused this long are closed.
    pub(crate) idle_timeout: Duration,
    /// How long opening a connection may take.
    pub(crate) connect_timeout: Duration,
}

impl PoolSettings {
    pub(crate) const DEFAULT_SIZE: usize = 8;
    pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(30);
    pub(crate) const DEFAULT_IDLE: Duration = Duration::from_secs(600);
    pub(crate) const DEFAULT_CONNECT: Duration = Duration::from_secs(10);
}

/// When a batch is handed on: at `rows` rows or about `bytes` bytes of
/// decoded data, whichever comes first. Bounds memory per query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchLimits {
    pub(crate) rows: usize,
    pub(crate) bytes: usize,
}

impl BatchLimits {
    pub(crate) const DEFAULT_ROWS: usize = 65_536;
    pub(crate) const DEFAULT_BYTES: usize = 32 * 1024 * 1024;

    /// True when a batch of `rows` rows and `bytes` bytes should be closed.
    pub(crate) fn full(&self, rows: usize, bytes: usize) -> bool {
        rows >= self.rows || bytes >= self.bytes
    }
}

pub(crate) mod defaults {
    use super::{BatchLimits, PoolSettings};
    use std::time::Duration;

    pub(crate) fn pool_size() -> usize {
        PoolSettings::DEFAULT_SIZE
    }
    pub(crate) fn wait_timeout() -> Duration {
        PoolSettings::DEFAULT_WAIT
    }
    pub(crate) fn idle_timeout() -> Duration {
        PoolSettings::DEFAULT_IDLE
    }
    pub(crate) fn connect_timeout() -> Duration {
        PoolSettings::DEFAULT_CONNECT
    }
    pub(crate) fn batch_rows() -> usize {
        BatchLimits::DEFAULT_ROWS
    }
    pub(crate) fn batch_bytes() -> usize {
        BatchLimits::DEFAULT_BYTES
    }
    pub(crate) fn yes() -> bool {
        true
    }
}

/// Describes an option (a `const` constructor for option tables).
pub(crate) const fn spec(
    name: &'static str,
    kind: OptionKind,
    required: bool,
    secret: bool,
    default: Option<&'static str>,
    description: &'static str,
) -> OptionSpec {
    OptionSpec {
        name,
        kind,
        required,
        secret,
        default,
        description,
    }
}

/// Turns URL text into the JSON type an option expects, so that
/// `?pool_size=4` reads as the number 4.
pub(crate) fn typed_value(
    key: &str,
    value: &str,
    numeric: &[&str],
    boolean: &[&str],
) -> serde_json::Value {
    if numeric.contains(&key) {
        return value
            .parse::<u64>()
            .map_or_else(|_| value.into(), Into::into);
    }
    if boolean.contains(&key) {
        return match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true.into(),
            "false" | "0" | "no" | "off" => false.into(),
            _ => value.into(),
        };
    }
    value.into()
}

/// Decodes `%XX` escapes of a URL part.
pub(crate) fn percent_decode(text: &str) -> Result<String, ()> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(())?;
            let hex = std::str::from_utf8(hex).map_err(|_| ())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_the_usual_spellings() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").unwrap_err().contains("\"soon\""));
    }

    #[test]
    fn batches_close_at_either_bound() {
        let b = BatchLimits {
            rows: 10,
            bytes: 100,
        };
        assert!(!b.full(9, 99));
        assert!(b.full(10, 0));
        assert!(b.full(1, 100));
    }
}
