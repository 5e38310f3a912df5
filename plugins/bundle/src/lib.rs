//! Warren's example and test plugins, built as WebAssembly components.
//!
//! Building this crate (`cargo build -p warren-plugins` from the repository
//! root) builds the plugins workspace, `plugins/Cargo.toml`, for
//! wasm32-unknown-unknown (in `target/wasm/`), turns each plugin into a
//! component and leaves it in `target/plugins/`:
//!
//! - the examples, [`EXAMPLES`], as `target/plugins/<name>.wasm`;
//! - the test plugins, [`TESTING`], as `target/plugins/testing/<name>.wasm`.
//!
//! It needs the target's standard library: `rustup target add
//! wasm32-unknown-unknown`. This library gives tests and tools the components
//! by name, as files ([`path`]) or embedded bytes ([`bytes`]). The build
//! script reruns when the plugins, the SDK (`guest-sdk/`) or the WIT
//! (`wit/`) change; if `target/plugins/` alone was deleted, run
//! `cargo clean -p warren-plugins` so that it runs again.

use std::path::PathBuf;

mod names;

pub use names::{EXAMPLES, TESTING};

/// Where the components are written: the repository's `target/plugins/`.
const DIR: &str = include!(concat!(env!("OUT_DIR"), "/dir.rs"));

/// The file of the plugin `name`: `target/plugins/<name>.wasm`, so an
/// example's (`"counter"`) is `target/plugins/counter.wasm` and a test
/// plugin's (`"testing/spin"`) is `target/plugins/testing/spin.wasm`. The
/// path is absolute; the file exists once this crate is built.
///
/// # Panics
///
/// If `name` is not in [`EXAMPLES`] or [`TESTING`].
pub fn path(name: &str) -> PathBuf {
    known(name);
    PathBuf::from(DIR).join(format!("{name}.wasm"))
}

/// The component of the plugin `name`, embedded in this library when it was
/// built (the same bytes as the file at [`path`]).
///
/// # Panics
///
/// If `name` is not in [`EXAMPLES`] or [`TESTING`].
pub fn bytes(name: &str) -> &'static [u8] {
    known(name);
    include!(concat!(env!("OUT_DIR"), "/embedded.rs")).expect("every known plugin is embedded")
}

fn known(name: &str) {
    if !EXAMPLES.contains(&name) && !TESTING.contains(&name) {
        panic!("no plugin named {name:?}: the plugins are {EXAMPLES:?} and {TESTING:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plugin_is_a_component_on_disk() {
        for name in EXAMPLES.iter().chain(TESTING) {
            let bytes = bytes(name);
            // A component's preamble: magic, then version 0x0d and layer 1.
            assert_eq!(&bytes[..8], b"\0asm\x0d\0\x01\0", "{name}");
            assert_eq!(std::fs::read(path(name)).unwrap(), bytes, "{name}");
        }
        assert!(path("testing/spin").ends_with("target/plugins/testing/spin.wasm"));
        assert!(path("counter").ends_with("target/plugins/counter.wasm"));
    }

    #[test]
    #[should_panic(expected = "no plugin named \"spin\"")]
    fn unknown_names_panic() {
        bytes("spin");
    }
}
