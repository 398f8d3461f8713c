//! How long or how many: the bounds of every field a caller sends. The
//! services check input against these constants; hosts derive their own
//! checks and documents from them (the server's OpenAPI `maxLength`s, tied
//! back here by a test), so a limit changes here and nowhere else.
//!
//! Lengths count characters (Unicode scalar values), not bytes. A bound
//! that only one resource's structure has and no host repeats (widgets on
//! a dashboard, nodes on a canvas, grid geometry) lives with that
//! resource; list paging lives in [`crate::lists`].

/// The longest name or label: of an object, a user, an organization, an
/// API key, a chart's column, a canvas edge.
pub const NAME: usize = 200;

/// The longest email address (the limit of an SMTP path).
pub const EMAIL: usize = 320;

/// The shortest text that can be an email address (`a@b`). Hosts refuse
/// shorter ones early; the services check the address's form.
pub const EMAIL_MIN: usize = 3;

/// The shortest password accepted.
pub const PASSWORD_MIN: usize = 12;

/// The longest password accepted: argon2 takes any length, but a bound
/// stops a request from buying minutes of hashing.
pub const PASSWORD: usize = 256;

/// The longest SQL text, of a saved query and of an ad-hoc run alike
/// (1 MiB), so that any saved query can also run as ad-hoc SQL.
pub const SQL: usize = 1024 * 1024;

/// The longest description of an object.
pub const DESCRIPTION: usize = 10_000;

/// The most tags on one object.
pub const TAGS: usize = 20;

/// The longest tag.
pub const TAG: usize = 50;

/// The longest text of a text widget or a canvas text node.
pub const TEXT: usize = 100_000;

/// The longest cron expression of a schedule or subscription, trimmed as
/// it is stored.
pub const CRON: usize = 200;

/// The longest connector kind (`postgres`, `files`, ...).
pub const KIND: usize = 64;

/// The most options one datasource may have.
pub const OPTIONS: usize = 100;

/// The longest value of a list filter (an id, a tag, search text).
pub const FILTER_VALUE: usize = 200;

/// The longest token a caller hands back: a refresh token, an invitation
/// or reset token, the set-up token. Longer ones cannot be ours.
pub const TOKEN: usize = 200;

/// The longest slug (of an organization or a dashboard).
pub const SLUG: usize = 100;

/// The longest name of a query parameter (`{{ name }}`); the engine's rule.
pub const PARAMETER_NAME: usize = loupe_core::MAX_PARAMETER_NAME;

/// The oldest a reused result may be when a run asks for one
/// (`max_age`): a year, in seconds.
pub const MAX_AGE_SECONDS: u64 = 365 * 24 * 60 * 60;
