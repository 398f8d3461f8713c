//! The command line's `--param NAME[:TYPE]=VALUE` flags: the input is the
//! flags, one a line. Parsing never panics; a refusal says which flag or
//! parameter is wrong; what parses prints back to flags that parse to the
//! same definitions and values (parse -> print -> parse).

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_core::{ItemType, ParameterDef, ParameterType, ParameterValues, parameters_from_flags};
use serde_json::Value as Json;

/// The flags that give `defs` and `values`.
fn print(defs: &[ParameterDef], values: &ParameterValues) -> Vec<String> {
    let mut flags = Vec::new();
    for def in defs {
        let ty = match &def.ty {
            ParameterType::List { item, options } => {
                assert!(options.is_empty(), "a flag list has no options: {def:?}");
                match item {
                    ItemType::Text => "text",
                    ItemType::Integer => "integer",
                    ItemType::Number => "number",
                    ItemType::Date => "date",
                }
            }
            other => other.name(),
        };
        let given = match values.get(&def.name) {
            Some(Json::String(one)) => vec![one.as_str()],
            Some(Json::Array(many)) => many
                .iter()
                .map(|v| match v {
                    Json::String(s) => s.as_str(),
                    other => panic!("{}: a flag value is text, not {other}", def.name),
                })
                .collect(),
            other => panic!("{}: parsed to {other:?}", def.name),
        };
        for value in given {
            flags.push(format!("{}:{ty}={value}", def.name));
        }
    }
    flags
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let flags: Vec<String> = text.lines().map(str::to_owned).collect();
    match parameters_from_flags(&flags) {
        Ok((defs, values)) => {
            assert_eq!(
                defs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
                values.keys().map(String::as_str).collect::<Vec<_>>(),
                "one value per definition, by name"
            );
            for def in &defs {
                if let Err(e) = def.validate() {
                    panic!("{flags:?} gave an invalid definition {def:?}: {e}");
                }
            }
            let printed = print(&defs, &values);
            match parameters_from_flags(&printed) {
                Ok(again) => assert_eq!(again, (defs, values), "{flags:?} printed as {printed:?}"),
                Err(e) => panic!("{flags:?} printed as {printed:?}, which is refused: {e}"),
            }
        }
        Err(message) => assert!(
            message.starts_with("--param ") || message.starts_with("parameter \""),
            "{flags:?}: the refusal names no flag or parameter: {message}"
        ),
    }
});
