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
//! `missing required field "name"`. Deletes are always accepted. A binding
//! whose config is not a schema this plugin supports rejects every create
//! and setData with `the binding's schema is invalid: ...`. The supported
//! subset of JSON Schema is listed in `schema.rs`.

mod schema;

use warren_sdk::{Change, ChangeKind, Validator};

struct JsonSchema;

impl Validator for JsonSchema {
    fn validate(change: Change, config: Vec<u8>) -> Result<(), String> {
        match change.kind {
            ChangeKind::Delete => Ok(()),
            ChangeKind::Create | ChangeKind::SetData => {
                schema::check(&config, change.new_data.as_deref().unwrap_or_default())
            }
        }
    }
}

warren_sdk::export_validator!(JsonSchema);
