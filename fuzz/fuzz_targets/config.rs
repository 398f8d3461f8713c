//! The deployment configuration loader on any TOML text: the same sources
//! (defaults, then the file) and the same extraction and checks as
//! `loupe_services::config::load`, with the text in place of a file and
//! without the `LOUPE_*` environment (which is not input here).
//!
//! Loading never panics. A configuration that loads prints and reads back
//! as the same settings; a refusal names the key that is wrong (`` `key` ``) or, for text
//! that is not TOML, says where the syntax breaks.

#![no_main]

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use libfuzzer_sys::fuzz_target;
use loupe_services::DeploymentConfig;
use loupe_services::config::{extract, field_names};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let keys = field_names::<DeploymentConfig>();
    let figment =
        Figment::from(Serialized::defaults(DeploymentConfig::default())).merge(Toml::string(text));
    let loaded = extract::<DeploymentConfig>(&figment, &keys)
        .and_then(|config| config.check().map(|()| config));
    match loaded {
        Ok(config) => {
            // What `--print-config` shows reads back as the same settings.
            let printed = serde_json::to_value(&config);
            let again = Figment::from(Serialized::defaults(&config))
                .extract::<DeploymentConfig>()
                .map(|c| serde_json::to_value(&c));
            match (printed, again) {
                (Ok(printed), Ok(Ok(again))) => {
                    assert_eq!(printed, again, "{text:?} does not read back");
                }
                (printed, again) => {
                    panic!(
                        "{text:?}: a loaded configuration does not print and read back: {printed:?} / {again:?}"
                    )
                }
            }
        }
        Err(e) => {
            let message = e.to_string();
            let names_key = message.contains('`');
            let says_where = message.contains("line ") || message.contains("TOML");
            assert!(
                names_key || says_where,
                "{text:?}: the refusal names no key: {message}"
            );
        }
    }
});
