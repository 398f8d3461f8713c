//! Integration tests of loupe-core, one binary with a module per area.

mod store;
mod template_props;
mod types;
