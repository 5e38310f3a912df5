//! Example validator `json-schema`: every node at or below the binding's
//! prefix must hold JSON that matches the binding's config, a JSON schema.
//!
//! ```text
//! warren plugin install json-schema target/plugins/json-schema.wasm
//! warren plugin bind json-schema /services --config service.schema.json
//! ```
//!
//! A create or setData whose data is not JSON, or does not match, is rejected
//! with a reason naming the failing part as a JSON pointer, for example
//! `/port: expected an integer, got a string` or
//! `missing required field "name"`. Deletes are always accepted. A schema
//! this plugin does not support is refused when it is bound, with the
//! reason. The schema is parsed once, at bind, into a compact form that
//! each validation reads (see `schema.rs`). The supported subset of JSON
//! Schema is listed in `schema.rs`.

mod schema;

use warren_sdk::{Change, ChangeKind, Validator};

struct JsonSchema;

impl Validator for JsonSchema {
    fn prepare(config: Vec<u8>) -> Result<Vec<u8>, String> {
        schema::prepare(&config)
    }

    fn validate(change: Change, prepared: Vec<u8>) -> Result<(), String> {
        match change.kind {
            ChangeKind::Delete => Ok(()),
            ChangeKind::Create | ChangeKind::SetData => {
                schema::check(&prepared, change.new_data.as_deref().unwrap_or_default())
            }
        }
    }
}

warren_sdk::export_validator!(JsonSchema);
