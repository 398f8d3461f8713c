//! Field-level validation: collect every problem of an input, then fail
//! once with all of them, each naming its field.

use loupe_core::codes;
use std::collections::BTreeSet;

use loupe_core::Code;
use loupe_core::{Error, FieldError, ParameterDef, Result};
use secrecy::SecretString;

use crate::crypto::Passwords;
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

    /// A new password, against [`Passwords::check_policy`].
    pub(crate) fn password(&mut self, field: &str, password: &SecretString, email: &str) {
        if let Err(e) = Passwords::check_policy(password, email) {
            self.push(field, codes::field::WEAK_PASSWORD, e);
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

/// An email as stored: trimmed and lowercase, so uniqueness ignores case.
pub(crate) fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Tags as stored: trimmed, lowercase, without duplicates, sorted.
pub(crate) fn normalize_tags(tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = tags.iter().map(|t| t.trim().to_lowercase()).collect();
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
    let slug = slug
        .trim_end_matches('-')
        .chars()
        .take(limits::SLUG)
        .collect::<String>();
    if slug.is_empty() {
        "dashboard".to_owned()
    } else {
        slug
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
    fn emails_and_slugs() {
        let mut v = Validator::new();
        for ok in ["a@b.co", "ana.lopez+x@example.com"] {
            v.email("email", ok);
        }
        assert!(v.is_ok());
        assert_eq!(normalize_email("  Ana@Example.COM "), "ana@example.com");
        assert_eq!(slugify("Sales by Region!"), "sales-by-region");
        assert_eq!(slugify("!!!"), "dashboard");
    }
}
