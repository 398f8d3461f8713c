//! Integration tests of loupe-core, one binary with a module per area.

mod store;
mod store_props;
mod template_props;
mod types;
