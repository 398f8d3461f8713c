//! Any text, in every dialect: parsing must not panic, and a template that
//! parses, bound with every parameter as the text `"x"`, must render exactly
//! one positional placeholder per bound value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_core::{Dialect, ParameterDef, ParameterType, ParameterValues, Template};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for dialect in Dialect::ALL {
        let Ok(template) = Template::parse(&text, dialect) else {
            continue;
        };
        let names = template.parameter_names();
        let defs: Vec<ParameterDef> = names
            .iter()
            .map(|name| ParameterDef::new(*name, ParameterType::Text))
            .collect();
        let values: ParameterValues = names
            .iter()
            .map(|name| ((*name).to_owned(), "x".into()))
            .collect();
        let stmt = match template.bind(&defs, &values) {
            Ok(stmt) => stmt,
            // `{{ name.field }}` is only valid for date ranges.
            Err(e) if e.code() == "param.invalid_field" => continue,
            Err(e) => panic!("{dialect}: {text:?} parsed but does not bind: {e}"),
        };
        let count = match stmt.placeholder_count() {
            Ok(count) => count,
            Err(e) => panic!(
                "{dialect}: {text:?} rendered as {:?}, which does not scan: {e}",
                stmt.sql
            ),
        };
        assert_eq!(
            count,
            stmt.params.len(),
            "{dialect}: {text:?} rendered as {:?}",
            stmt.sql
        );
    }
});
