//! Test plugin `testing/picky`: a validator that takes no configuration.
//! Its `prepare` refuses any but an empty one, and prepares what it sees of
//! the host, `zxid=<zxid> time=<time-ms>`; its `validate` rejects the data
//! `show` with the prepared bytes as the reason, and accepts the rest.

use warren_sdk::{Change, Validator, host};

struct Picky;

impl Validator for Picky {
    fn prepare(config: Vec<u8>) -> Result<Vec<u8>, String> {
        if !config.is_empty() {
            return Err(format!("it takes no configuration, got {} bytes", config.len()));
        }
        Ok(format!("zxid={} time={}", host::zxid(), host::time_ms()).into_bytes())
    }

    fn validate(change: Change, prepared: Vec<u8>) -> Result<(), String> {
        match change.new_data.as_deref() {
            Some(b"show") => Err(String::from_utf8_lossy(&prepared).into_owned()),
            _ => Ok(()),
        }
    }
}

warren_sdk::export_validator!(Picky);
