//! Reading a connector's options by its [`OptionSpec`] list, so that the
//! list the API shows (`GET /api/v1/connectors`) is the rule the connector
//! applies: a name the list does not hold is refused, the defaults it
//! states are the ones filled in, and URL text is typed by the option's
//! kind. A connector's serde structs read the completed options and state
//! no defaults of their own.

use loupe_core::{DatasourceOptions, Error, OptionKind, OptionSpec, Result};
use serde_json::Value;

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
        tuning: false,
    }
}

/// Another name an option is accepted under, as `(alias, name)`.
pub(crate) type Alias = (&'static str, &'static str);

/// `options` as a connector's serde struct reads them: each alias replaced
/// by its option's name, a name `specs` does not list refused, and each
/// missing option that has a default given that default.
pub(crate) fn complete(
    kind: &str,
    specs: &[OptionSpec],
    aliases: &[Alias],
    options: &DatasourceOptions,
) -> Result<DatasourceOptions> {
    let mut complete = DatasourceOptions::new();
    for (key, value) in options {
        let name = aliases
            .iter()
            .find(|(alias, _)| alias == key)
            .map_or(key.as_str(), |(_, name)| name);
        if !specs.iter().any(|s| s.name == name) {
            let known: Vec<String> = specs.iter().map(|s| format!("`{}`", s.name)).collect();
            return Err(Error::config(format!(
                "{kind} datasource: unknown field `{key}`, expected one of {}",
                known.join(", ")
            )));
        }
        if complete.insert(name.to_owned(), value.clone()).is_some() {
            return Err(Error::config(format!(
                "{kind} datasource: option {name} is given twice (once as {key})"
            )));
        }
    }
    for spec in specs {
        if let Some(default) = spec.default
            && !complete.contains_key(spec.name)
        {
            complete.insert(spec.name.to_owned(), typed_value(spec.kind, default));
        }
    }
    Ok(complete)
}

/// The JSON value of option `name` written as text (in a URL), typed by its
/// spec so that `?pool_size=4` reads as the number 4. A name `specs` does
/// not list stays text, to be refused by [`complete`].
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn url_value(specs: &[OptionSpec], name: &str, text: &str) -> Value {
    match specs.iter().find(|s| s.name == name) {
        Some(spec) => typed_value(spec.kind, text),
        None => text.into(),
    }
}

/// Text that does not read as its kind stays text, so that the serde
/// struct's error names the option and the value.
fn typed_value(kind: OptionKind, text: &str) -> Value {
    match kind {
        OptionKind::Integer => text.parse::<u64>().map_or_else(|_| text.into(), Into::into),
        OptionKind::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true.into(),
            "false" | "0" | "no" | "off" => false.into(),
            _ => text.into(),
        },
        OptionKind::String | OptionKind::Path | OptionKind::Duration => text.into(),
    }
}

/// Checks that tie a connector's spec list to the structs that read it.
#[cfg(test)]
pub(crate) mod checks {
    use super::*;

    /// Every option in `specs` is read by `build`: with only `required`
    /// given, every default parses; and a value of the wrong type for an
    /// option is refused by a message that names the option (a spec no
    /// struct reads would be refused as unknown instead).
    pub(crate) fn every_spec_is_read<T>(
        kind: &str,
        specs: &[OptionSpec],
        required: &DatasourceOptions,
        build: impl Fn(&DatasourceOptions) -> Result<T>,
    ) {
        if let Err(e) = build(required) {
            panic!("{kind}: the defaults of the spec list do not parse: {e}");
        }
        for spec in specs {
            let mut options = required.clone();
            options.insert(spec.name.into(), serde_json::json!({ "not": "a value" }));
            let message = match build(&options) {
                Ok(_) => panic!("{kind}: {} took a map as its value", spec.name),
                Err(e) => e.to_string(),
            };
            let named = format!("{kind} datasource option {}:", spec.name);
            assert!(message.contains(&named), "{message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SPECS: &[OptionSpec] = &[
        spec("size", OptionKind::Integer, false, false, Some("8"), "Size"),
        spec("on", OptionKind::Boolean, false, false, Some("true"), "On"),
        spec("mode", OptionKind::String, false, false, None, "Mode"),
    ];

    #[test]
    fn defaults_are_filled_typed_by_their_kind() {
        let options = complete("test", SPECS, &[], &DatasourceOptions::new()).unwrap();
        assert_eq!(options["size"], json!(8));
        assert_eq!(options["on"], json!(true));
        assert!(!options.contains_key("mode"), "no default, nothing filled");

        let mut given = DatasourceOptions::new();
        given.insert("size".into(), json!(2));
        let options = complete("test", SPECS, &[], &given).unwrap();
        assert_eq!(options["size"], json!(2), "a given value wins");
    }

    #[test]
    fn unknown_names_are_refused_with_the_known_ones() {
        let mut given = DatasourceOptions::new();
        given.insert("sise".into(), json!(2));
        let err = complete("test", SPECS, &[], &given).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration: test datasource: unknown field `sise`, expected one of `size`, `on`, `mode`"
        );
    }

    #[test]
    fn aliases_read_as_their_option_but_not_beside_it() {
        let aliases = [("kind", "mode")];
        let mut given = DatasourceOptions::new();
        given.insert("kind".into(), json!("fast"));
        let options = complete("test", SPECS, &aliases, &given).unwrap();
        assert_eq!(options["mode"], json!("fast"));
        assert!(!options.contains_key("kind"));

        given.insert("mode".into(), json!("slow"));
        let err = complete("test", SPECS, &aliases, &given).unwrap_err();
        assert!(err.to_string().contains("mode is given twice"), "{err}");
    }

    #[cfg(any(feature = "postgres", feature = "mysql"))]
    #[test]
    fn url_text_is_typed_by_the_spec() {
        assert_eq!(url_value(SPECS, "size", "4"), json!(4));
        assert_eq!(url_value(SPECS, "size", "four"), json!("four"));
        assert_eq!(url_value(SPECS, "on", "off"), json!(false));
        assert_eq!(url_value(SPECS, "on", "maybe"), json!("maybe"));
        assert_eq!(url_value(SPECS, "mode", "1"), json!("1"));
        assert_eq!(url_value(SPECS, "other", "1"), json!("1"));
    }
}
