//! Field-level validation: collect every problem of an input, then fail
//! once with all of them, each naming its field. Also the one password
//! rule ([`password_weakness`]), with the list of common passwords it
//! refuses (`common_passwords.txt`).

use loupe_core::codes;
use std::collections::{BTreeSet, HashSet};
use std::sync::LazyLock;

use loupe_core::Code;
use loupe_core::{Error, FieldError, ParameterDef, Result};
use secrecy::SecretString;

use secrecy::ExposeSecret;

use crate::limits;

/// Collects field errors.
#[derive(Debug, Default)]
pub(crate) struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push(
        &mut self,
        field: impl Into<String>,
        code: Code,
        message: impl Into<String>,
    ) {
        self.errors.push(FieldError::new(field, code, message));
    }

    pub(crate) fn check(
        &mut self,
        ok: bool,
        field: &str,
        code: Code,
        message: impl FnOnce() -> String,
    ) {
        if !ok {
            self.push(field, code, message());
        }
    }

    /// A display name: 1 to [`limits::NAME`] characters, no control
    /// characters.
    pub(crate) fn name(&mut self, field: &str, value: &str) {
        self.text(field, value, 1, limits::NAME);
    }

    pub(crate) fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let n = value.chars().count();
        if n < min {
            if min == 1 {
                self.push(
                    field,
                    codes::field::REQUIRED,
                    format!("{field} must not be empty"),
                );
            } else {
                self.push(
                    field,
                    codes::field::TOO_SHORT,
                    format!("{field} needs at least {min} characters"),
                );
            }
        } else if n > max {
            self.push(
                field,
                codes::field::TOO_LONG,
                format!("{field} has {n} characters; the most is {max}"),
            );
        } else if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            self.push(
                field,
                codes::field::CONTROL_CHARACTERS,
                format!("{field} must not contain control characters"),
            );
        }
    }

    /// An email address, in a loose but useful check: one `@`, a dot in
    /// the domain, no spaces, at most [`limits::EMAIL`] characters.
    pub(crate) fn email(&mut self, field: &str, value: &str) {
        let valid = value.chars().count() <= limits::EMAIL
            && !value.chars().any(char::is_whitespace)
            && value.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if !valid {
            self.push(
                field,
                codes::field::INVALID_EMAIL,
                format!("{value:?} is not an email address"),
            );
        }
    }

    /// A new password for the user with `email` and `name`: the one
    /// password rule ([`password_weakness`]).
    pub(crate) fn password(
        &mut self,
        field: &str,
        password: &SecretString,
        email: &str,
        name: &str,
    ) {
        if let Some(why) = password_weakness(password.expose_secret(), email, name) {
            self.push(field, codes::field::WEAK_PASSWORD, why);
        }
    }

    /// Tags: at most [`limits::TAGS`], each 1 to [`limits::TAG`] of
    /// letters, digits, `-`, `_`, `:`, `.`.
    pub(crate) fn tags(&mut self, field: &str, tags: &[String]) {
        let (most, longest) = (limits::TAGS, limits::TAG);
        if tags.len() > most {
            self.push(
                field,
                codes::field::TOO_MANY,
                format!("at most {most} tags"),
            );
        }
        for (i, tag) in tags.iter().enumerate() {
            let ok = !tag.is_empty()
                && tag.chars().count() <= longest
                && tag
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'));
            if !ok {
                self.push(
                    format!("{field}[{i}]"),
                    codes::field::INVALID_TAG,
                    format!(
                        "tag {tag:?}: use 1 to {longest} letters, digits, '-', '_', ':' or '.'"
                    ),
                );
            }
        }
    }

    /// Parameter definitions (of a query, or shown on a dashboard): each
    /// valid, no name twice. Returns the names defined.
    pub(crate) fn parameters<'a>(&mut self, parameters: &'a [ParameterDef]) -> BTreeSet<&'a str> {
        let mut names = BTreeSet::new();
        for (i, def) in parameters.iter().enumerate() {
            if let Err(e) = def.validate() {
                self.push(
                    format!("parameters[{i}]"),
                    codes::field::INVALID,
                    e.to_string(),
                );
            }
            if !names.insert(def.name.as_str()) {
                self.push(
                    format!("parameters[{i}].name"),
                    codes::field::DUPLICATE,
                    format!("parameter {:?} is defined twice", def.name),
                );
            }
        }
        names
    }

    #[cfg(test)]
    pub(crate) fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// The fields with errors, in the order they were found.
    #[cfg(test)]
    pub(crate) fn fields(&self) -> Vec<String> {
        self.errors.iter().map(|e| e.field.clone()).collect()
    }

    pub(crate) fn finish(self) -> Result<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.errors))
        }
    }
}

/// Runs the checks of an input too small to collect for (a rename, a new
/// password) and fails with what they found.
pub(crate) fn validate(checks: impl FnOnce(&mut Validator)) -> Result<()> {
    let mut v = Validator::new();
    checks(&mut v);
    v.finish()
}

/// Common passwords, from a list compiled from breach corpora (the file's
/// header names its source and license), read once.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
});

/// Runs of characters that people type as a "password": digits and the
/// alphabet (both wrap around, so `890123` counts), keyboard rows (US,
/// German, French) and keyboard columns.
const SEQUENCES: &[(&str, bool)] = &[
    ("0123456789", true),
    ("abcdefghijklmnopqrstuvwxyz", true),
    ("qwertyuiop", false),
    ("asdfghjkl", false),
    ("zxcvbnm", false),
    ("qwertzuiop", false),
    ("yxcvbnm", false),
    ("azertyuiop", false),
    ("qsdfghjklm", false),
    ("wxcvbn", false),
    ("1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p", false),
    ("qazwsxedcrfvtgbyhnujmikolp", false),
];

/// The shortest run of [`SEQUENCES`] a password is cut into: shorter
/// pieces (`12`, `ab`) say nothing.
const SEQUENCE_RUN: usize = 3;

/// The shortest part of an email or name that a password may not contain:
/// shorter ones (`ed`, `ann`) are inside ordinary words.
const PERSONAL_PART: usize = 4;

/// Why `password` is too weak for the user with `email` and `name`, or
/// `None` when it will do.
///
/// After NIST SP 800-63B (5.1.1.2): a length between
/// [`limits::PASSWORD_MIN`] and [`limits::PASSWORD`] characters, no
/// composition rules (no "a digit and a symbol"), and a refusal of what
/// attackers try first: blanks, one character or a short pattern
/// repeated, runs such as `123456`, `abcdef` or `qwerty`, common
/// passwords from breach corpora (also with digits or symbols added at
/// either end, or letters written as digits), and the user's own name or
/// email address.
pub(crate) fn password_weakness(password: &str, email: &str, name: &str) -> Option<String> {
    let chars = password.chars().count();
    let (shortest, longest) = (limits::PASSWORD_MIN, limits::PASSWORD);
    if chars < shortest {
        return Some(format!(
            "a password needs at least {shortest} characters; a few unrelated words make a good one"
        ));
    }
    if chars > longest {
        return Some(format!("a password has at most {longest} characters"));
    }
    if password.chars().all(char::is_whitespace) {
        return Some("a password must not be only spaces".into());
    }
    // Case and spaces do not make a password harder to guess.
    let folded: String = password
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    if let Some(unit) = repeated_unit(&folded) {
        return Some(if unit == 1 {
            "a password must not be one character repeated".into()
        } else {
            "a password must not repeat a short pattern (such as abcabc)".into()
        });
    }
    if is_sequence(&folded) {
        return Some(
            "a password must not be a simple sequence such as 123456, abcdef or qwerty".into(),
        );
    }
    let trimmed = password.trim().to_lowercase();
    if [trimmed.as_str(), folded.as_str()]
        .iter()
        .any(|p| COMMON_PASSWORDS.contains(p))
    {
        return Some(
            "this is one of the most common passwords; choose another (a few unrelated words make a good one)"
                .into(),
        );
    }
    let core = folded.trim_matches(|c: char| !c.is_alphabetic());
    let unleet: String = core.chars().map(unleet).collect();
    if core.chars().count() >= SEQUENCE_RUN
        && [core, unleet.as_str()]
            .iter()
            .any(|p| COMMON_PASSWORDS.contains(p))
    {
        return Some(
            "this is a common password with a few characters changed or added; choose another"
                .into(),
        );
    }
    if personal_parts(email, name).any(|part| folded.contains(&part)) {
        return Some("a password must not contain your name or email address".into());
    }
    None
}

/// The length of the unit that `text` repeats (1 for `aaaa`, 2 for
/// `abab`), up to 4 characters, if it is nothing else.
fn repeated_unit(text: &str) -> Option<usize> {
    let chars: Vec<char> = text.chars().collect();
    (1..=4)
        .filter(|unit| chars.len() > *unit)
        .find(|unit| chars.iter().enumerate().all(|(i, c)| *c == chars[i % unit]))
}

/// Whether `text` is made only of runs of [`SEQUENCES`] (forwards or
/// backwards), each at least [`SEQUENCE_RUN`] long: `123456789012`,
/// `qwerty123456`, `zyxwvutsrqpo`.
fn is_sequence(text: &str) -> bool {
    // Every sequence is ASCII: anything else is not one.
    if text.is_empty() || !text.is_ascii() {
        return false;
    }
    let haystacks: Vec<String> = SEQUENCES
        .iter()
        .flat_map(|(run, wraps)| {
            let times = if *wraps {
                limits::PASSWORD / run.len() + 2
            } else {
                1
            };
            let forwards = run.repeat(times);
            let backwards: String = forwards.chars().rev().collect();
            [forwards, backwards]
        })
        .collect();
    let within = |piece: &str| haystacks.iter().any(|h| h.contains(piece));
    let mut start = 0;
    while start < text.len() {
        let mut end = start + SEQUENCE_RUN;
        if end > text.len() || !within(&text[start..end]) {
            return false;
        }
        while end < text.len() && within(&text[start..=end]) {
            end += 1;
        }
        start = end;
    }
    true
}

/// A letter written as a digit or symbol, read back as the letter.
fn unleet(c: char) -> char {
    match c {
        '@' | '4' => 'a',
        '3' => 'e',
        '1' | '!' => 'i',
        '0' => 'o',
        '$' | '5' => 's',
        '7' => 't',
        other => other,
    }
}

/// The parts of an email's local part and of a name that a password must
/// not contain, lowercase: the whole local part and each word of either,
/// if at least [`PERSONAL_PART`] characters long.
fn personal_parts<'a>(email: &'a str, name: &'a str) -> impl Iterator<Item = String> + 'a {
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    let words: Vec<String> = local
        .split(|c: char| !c.is_alphanumeric())
        .chain(name.split(|c: char| !c.is_alphanumeric()))
        .map(str::to_lowercase)
        .collect();
    std::iter::once(local)
        .chain(words)
        .filter(|part| part.chars().count() >= PERSONAL_PART)
}

/// An email as stored: trimmed and lowercase, so uniqueness ignores case.
pub(crate) fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Tags as stored: trimmed, lowercase, without duplicates, sorted.
///
/// Each character is lowercased on its own, to the first character of
/// its lowercase: the one letter whose lowercase is longer (`İ`, whose
/// lowercase is `i` and a combining dot) becomes `i`. A stored tag keeps
/// its length and passes [`Validator::tags`] again, as it must when a
/// fork or an update sends it back; `str::to_lowercase` made `İ` two
/// characters, the second not a letter, and 50 of them too long to store.
pub(crate) fn normalize_tags(tags: &[String]) -> Vec<String> {
    let lowercase = |tag: &str| -> String {
        tag.chars()
            .map(|c| c.to_lowercase().next().unwrap_or(c))
            .collect()
    };
    let mut out: Vec<String> = tags.iter().map(|t| lowercase(t.trim())).collect();
    out.sort();
    out.dedup();
    out
}

/// A URL-friendly slug from a name: `Sales by Region!` -> `sales-by-region`.
pub(crate) fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    // Cut to length first, then trim: a cut can end on a '-', which the
    // slug rule refuses.
    let slug = slug.chars().take(limits::SLUG).collect::<String>();
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "dashboard".to_owned()
    } else {
        slug.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut v = Validator::new();
        v.name("name", "");
        v.name("title", &"x".repeat(201));
        v.email("email", "not an email");
        v.tags("tags", &["ok".into(), "no spaces".into()]);
        let err = v.finish().unwrap_err();
        let fields: Vec<&str> = err
            .field_errors()
            .iter()
            .map(|e| e.field.as_str())
            .collect();
        assert_eq!(fields, ["name", "title", "email", "tags[1]"]);
        assert_eq!(err.code(), "validation.failed");
    }

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        let weakness = |p: &str| password_weakness(p, "erin.lopez@acme.test", "Erin Lopez");
        for (password, reason) in [
            ("            ", "only spaces"),
            ("aaaaaaaaaaaa", "one character"),
            ("abababababab", "short pattern"),
            ("123456789012", "sequence"),
            ("zyxwvutsrqpo", "sequence"),
            ("qwerty123456", "sequence"),
            ("1qaz2wsx3edc4rfv", "sequence"),
            ("password1234", "most common"),
            ("Password1234!", "common password with"),
            ("p@ssw0rd!2024", "common password with"),
            ("erin lopez 1990", "name or email"),
            ("the lopez family rocks", "name or email"),
            ("short", "at least 12"),
        ] {
            let why = weakness(password).unwrap_or_default();
            assert!(why.contains(reason), "{password:?}: {why:?}");
        }
        assert!(weakness(&"x1".repeat(200)).is_some(), "too long");
        for strong in [
            "correct horse battery staple",
            "vic's next passphrase",
            "mauve elephant ladder 42",
            "9f$Kq2!vLx7#",
        ] {
            assert_eq!(weakness(strong), None, "{strong:?}");
        }
    }

    #[test]
    fn the_common_password_list_is_loaded() {
        assert!(COMMON_PASSWORDS.len() > 9_000);
        assert!(COMMON_PASSWORDS.contains("password"));
        assert!(!COMMON_PASSWORDS.iter().any(|p| p.starts_with('#')));
    }

    #[test]
    fn stored_tags_pass_the_tag_rule_again() {
        let given: Vec<String> = ["İstanbul", "ẞ", "ǅ", "Ⅻ", "ABC", &"İ".repeat(50)]
            .iter()
            .map(|t| (*t).to_owned())
            .collect();
        let stored = normalize_tags(&given);
        assert_eq!(
            stored,
            [
                "abc".to_owned(),
                "i".repeat(50),
                "istanbul".into(),
                "ß".into(),
                "ǆ".into(),
                "ⅻ".into()
            ]
        );
        let mut v = Validator::new();
        v.tags("tags", &stored);
        assert!(v.is_ok(), "{:?}", v.fields());
    }

    #[test]
    fn emails_and_slugs() {
        let mut v = Validator::new();
        for ok in ["a@b.co", "ana.lopez+x@example.com"] {
            v.email("email", ok);
        }
        assert!(v.is_ok());
        assert_eq!(normalize_email("  Ana@Example.COM "), "ana@example.com");
        assert_eq!(slugify("Sales by Region!"), "sales-by-region");
        assert_eq!(slugify("!!!"), "dashboard");
        // A long name whose 100th slug character is a '-': the slug was
        // cut there and refused as ending in one.
        let name = format!("{} b", "a".repeat(99));
        assert_eq!(slugify(&name), "a".repeat(99));
    }
}
