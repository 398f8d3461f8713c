//! The [`Registry`]: which datasource kinds exist in this build, and how to
//! build one from options or a URL. A value, not a global: an embedding
//! application decides what it registers.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::datasource::{Datasource, DatasourceFactory, DatasourceOptions};
use crate::error::{Error, Result};

/// Maps datasource kinds to their factories.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    factories: BTreeMap<&'static str, Arc<dyn DatasourceFactory>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the factory for its kind.
    pub fn register(&mut self, factory: Arc<dyn DatasourceFactory>) -> &mut Self {
        self.factories.insert(factory.kind(), factory);
        self
    }

    /// The same registry with `factory` added.
    pub fn with(mut self, factory: Arc<dyn DatasourceFactory>) -> Self {
        self.register(factory);
        self
    }

    /// The registered factories, by kind.
    pub fn factories(&self) -> impl Iterator<Item = &Arc<dyn DatasourceFactory>> {
        self.factories.values()
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.factories.keys().copied()
    }

    /// The factory for `kind`.
    ///
    /// # Errors
    /// [`Error::UnknownKind`] listing the kinds that are enabled.
    pub fn factory(&self, kind: &str) -> Result<&Arc<dyn DatasourceFactory>> {
        self.factories.get(kind).ok_or_else(|| self.unknown(kind))
    }

    /// Builds a datasource of `kind` from `options`.
    pub fn build(&self, kind: &str, options: &DatasourceOptions) -> Result<Arc<dyn Datasource>> {
        self.factory(kind)?.build(options)
    }

    /// Builds a datasource from a URL (`postgres://…`) or, without a
    /// scheme, a directory path (the `file` scheme).
    ///
    /// # Errors
    /// [`Error::UnknownKind`] when no enabled connector handles the scheme;
    /// [`Error::Config`] when the URL is not valid for its connector.
    pub fn from_url(&self, source: &str) -> Result<Arc<dyn Datasource>> {
        let scheme = url_scheme(source).unwrap_or("file");
        let factory = self
            .factories
            .values()
            .find(|f| {
                f.url_schemes()
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(scheme))
            })
            .ok_or_else(|| self.unknown(scheme))?;
        let options = factory.options_from_url(source)?;
        factory.build(&options)
    }

    fn unknown(&self, kind: &str) -> Error {
        let enabled = if self.factories.is_empty() {
            "none".to_owned()
        } else {
            self.kinds().collect::<Vec<_>>().join(", ")
        };
        Error::UnknownKind {
            kind: kind.to_owned(),
            enabled,
        }
    }
}

/// The scheme of `source` when it is written as `scheme://…`.
fn url_scheme(source: &str) -> Option<&str> {
    let (scheme, rest) = source.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (valid && (!rest.is_empty() || scheme == "file")).then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_recognised() {
        assert_eq!(url_scheme("postgres://u@h/db"), Some("postgres"));
        assert_eq!(url_scheme("file:///data"), Some("file"));
        assert_eq!(url_scheme("./data"), None);
        assert_eq!(url_scheme("/abs/path"), None);
        assert_eq!(url_scheme("1x://a"), None);
    }

    #[test]
    fn unknown_kind_lists_what_is_enabled() {
        let err = Registry::new().from_url("mssql://h/db").unwrap_err();
        assert_eq!(err.to_string(), "no connector for \"mssql\"; enabled: none");
        assert_eq!(err.code(), "datasource.unknown_kind");
    }
}
