//! Write Warren plugins in Rust.
//!
//! A Warren plugin is a WebAssembly component for one of the two worlds of
//! `wit/plugin.wit`: a **validator**, bound to a path prefix and asked about
//! every write at or below it, or an **operation**, invoked by a client, that
//! reads the tree and returns writes that apply atomically. This crate hides
//! the generated bindings: a plugin is one short file that implements
//! [`Validator`] or [`Operation`] and calls [`export_validator!`] or
//! [`export_operation!`].
//!
//! A plugin crate is a `cdylib` built for `wasm32-unknown-unknown` and then
//! turned into a component (see `plugins/README.md`). It runs on every
//! replica, in commit order, with no WASI: no clock, no randomness, no files.
//! Everything it knows comes from its arguments and from [`host`] and
//! [`tree`].
//!
//! # A validator
//!
//! ```no_run
//! use warren_sdk::{Change, ChangeKind, Validator, host};
//!
//! /// Refuses data larger than the number of bytes in the binding's config.
//! struct MaxSize;
//!
//! impl Validator for MaxSize {
//!     /// Runs once per binding: refuses a config that is not a number, and
//!     /// hands `validate` the number as 8 bytes.
//!     fn prepare(config: Vec<u8>) -> Result<Vec<u8>, String> {
//!         let limit: u64 = std::str::from_utf8(&config)
//!             .ok()
//!             .and_then(|s| s.trim().parse().ok())
//!             .ok_or("the config must be a number of bytes")?;
//!         Ok(limit.to_le_bytes().to_vec())
//!     }
//!
//!     fn validate(change: Change, config: Vec<u8>) -> Result<(), String> {
//!         let limit = u64::from_le_bytes(config.try_into().map_err(|_| "not prepared")?);
//!         let limit = usize::try_from(limit).unwrap_or(usize::MAX);
//!         if change.kind == ChangeKind::Delete {
//!             return Ok(());
//!         }
//!         let len = change.new_data.map_or(0, |d| d.len());
//!         if len > limit {
//!             host::log(&format!("refused {} ({len} bytes)", change.path));
//!             return Err(format!("{len} bytes is more than the {limit} allowed"));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! warren_sdk::export_validator!(MaxSize);
//! ```
//!
//! # An operation
//!
//! ```no_run
//! use warren_sdk::{Operation, Outcome, Write, tree};
//!
//! /// Appends the arguments to the node's data; creates the node if needed.
//! struct Append;
//!
//! impl Operation for Append {
//!     fn invoke(path: String, args: Vec<u8>) -> Result<Outcome, String> {
//!         let write = match tree::get_data(&path)? {
//!             Some(node) => {
//!                 let mut data = node.data;
//!                 data.extend_from_slice(&args);
//!                 Write::set_data(&path, data, node.stat.version)
//!             }
//!             None => Write::create(&path, args.clone()),
//!         };
//!         Ok(Outcome::output(format!("{} bytes appended", args.len())).with_write(write))
//!     }
//! }
//!
//! warren_sdk::export_operation!(Append);
//! ```
//!
//! # Panics and limits
//!
//! Each call runs in a fresh instance, under a fuel budget and a memory cap
//! set when the plugin is installed. On every entry the SDK installs a panic
//! hook that sends one line, `panic: <message> (at <file>:<line>:<column>)`,
//! through [`host::log`] before the call traps; when a call traps, the host
//! reports the last log line starting with `panic: ` as the failure. Running
//! out of fuel or memory is reported by the host itself (an allocation
//! failure aborts without running the hook); a plugin that wants to recover
//! from a large allocation can use `Vec::try_reserve`.

// The generated bindings name this crate by its public name (`runtime_path`,
// `default_bindings_module`), which must also resolve inside it.
extern crate self as warren_sdk;

use std::marker::PhantomData;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// Generated bindings of the `operation` world (imports `host` and `tree`).
#[doc(hidden)]
pub mod __operation {
    wit_bindgen::generate!({
        path: "../wit",
        world: "warren:plugin/operation",
        pub_export_macro: true,
        export_macro_name: "__export_operation",
        default_bindings_module: "warren_sdk::__operation",
        runtime_path: "warren_sdk::__wit_bindgen::rt",
        additional_derives: [PartialEq, Eq],
    });
}

/// Generated bindings of the `validator` world (imports `host` only).
#[doc(hidden)]
#[allow(clippy::too_many_arguments)] // the flattened `change` of `validate`
pub mod __validator {
    wit_bindgen::generate!({
        path: "../wit",
        world: "warren:plugin/validator",
        pub_export_macro: true,
        export_macro_name: "__export_validator",
        default_bindings_module: "warren_sdk::__validator",
        runtime_path: "warren_sdk::__wit_bindgen::rt",
        additional_derives: [PartialEq, Eq],
    });
}

pub use __operation::warren::plugin::tree::{Node, Stat};
pub use __operation::{
    CheckWrite, CreateMode, CreateWrite, DeleteWrite, Outcome, SetDataWrite, Write,
};
pub use __validator::{Change, ChangeKind};

/// What every plugin may call. The answers depend only on the entry being
/// applied, so they are the same on every replica.
pub mod host {
    use crate::__operation::warren::plugin::host as imports;

    /// Writes a line to the node's log, at debug level, prefixed with the
    /// plugin's name. At most 16 lines of 1 KiB per call are kept.
    #[inline]
    pub fn log(message: &str) {
        imports::log(message)
    }

    /// The zxid of the entry being applied.
    #[inline]
    pub fn zxid() -> i64 {
        imports::zxid()
    }

    /// The leader's clock when it proposed the entry, in milliseconds since
    /// the Unix epoch: the same on every replica. Use this, never
    /// `std::time` (which panics on this target).
    #[inline]
    pub fn time_ms() -> i64 {
        imports::time_ms()
    }
}

/// Read access to the tree, **for operations only**: the validator world does
/// not offer it, so a validator that calls these functions imports
/// `warren:plugin/tree` and the host refuses to install it.
///
/// Reads see the tree as it is before the entry's writes, with the calling
/// session's permissions: a node it may not read is an error.
pub mod tree {
    use crate::__operation::warren::plugin::tree as imports;
    use crate::Node;

    /// The node at `path` (its data and [`Stat`](crate::Stat)), or `None` if
    /// there is none.
    #[inline]
    pub fn get_data(path: &str) -> Result<Option<Node>, String> {
        imports::get_data(path)
    }

    /// The names (not paths) of the children of `path`, sorted, or `None` if
    /// there is no node at `path`.
    #[inline]
    pub fn get_children(path: &str) -> Result<Option<Vec<String>>, String> {
        imports::get_children(path)
    }
}

/// A validator: implement this, then call [`export_validator!`] on the type.
pub trait Validator {
    /// Checks a binding's configuration bytes (`warren plugin bind NAME
    /// PREFIX --config FILE`, empty if none was given) when it is bound,
    /// and returns the bytes every [`validate`](Validator::validate) of that
    /// binding gets as its `config`. An error refuses the binding with the
    /// reason. Parse the configuration here, once, into a form that is
    /// cheap to read: each validation runs in a fresh instance and would
    /// otherwise parse it again. The result must depend on `config` alone
    /// (it is computed again after a restart): [`host::zxid`] and
    /// [`host::time_ms`] return 0 here. By default the configuration is
    /// accepted as it is.
    fn prepare(config: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(config)
    }

    /// Accepts the change with `Ok(())` or rejects it with a reason for the
    /// client. `config` is what [`prepare`](Validator::prepare) returned for
    /// the binding: by default, its configuration bytes.
    fn validate(change: Change, config: Vec<u8>) -> Result<(), String>;
}

/// An operation: implement this, then call [`export_operation!`] on the type.
pub trait Operation {
    /// Returns the writes to apply atomically and the output for the caller,
    /// or an error for the caller (then nothing is written). `path` and
    /// `args` are what the client passed to `warren plugin invoke`.
    fn invoke(path: String, args: Vec<u8>) -> Result<Outcome, String>;
}

/// Exports a [`Validator`] as the plugin's `validate` function. Call it once,
/// at the crate's top level.
#[macro_export]
macro_rules! export_validator {
    ($validator:ty) => {
        const _: () = {
            type __WarrenValidator = $crate::__ValidatorAdapter<$validator>;
            $crate::__validator::__export_validator!(
                __WarrenValidator with_types_in $crate::__validator
            );
        };
    };
}

/// Exports an [`Operation`] as the plugin's `invoke` function. Call it once,
/// at the crate's top level.
#[macro_export]
macro_rules! export_operation {
    ($operation:ty) => {
        const _: () = {
            type __WarrenOperation = $crate::__OperationAdapter<$operation>;
            $crate::__operation::__export_operation!(
                __WarrenOperation with_types_in $crate::__operation
            );
        };
    };
}

#[doc(hidden)]
pub struct __ValidatorAdapter<T>(PhantomData<T>);

impl<T: Validator> __validator::Guest for __ValidatorAdapter<T> {
    fn prepare(config: Vec<u8>) -> Result<Vec<u8>, String> {
        install_panic_hook();
        T::prepare(config)
    }

    fn validate(change: Change, prepared: Vec<u8>) -> Result<(), String> {
        install_panic_hook();
        T::validate(change, prepared)
    }
}

#[doc(hidden)]
pub struct __OperationAdapter<T>(PhantomData<T>);

impl<T: Operation> __operation::Guest for __OperationAdapter<T> {
    fn invoke(path: String, args: Vec<u8>) -> Result<Outcome, String> {
        install_panic_hook();
        T::invoke(path, args)
    }
}

/// Sends a panic's message to the host's log, as `panic: <message> (at
/// <file>:<line>:<column>)`, before the call traps (`panic = "abort"`).
/// Installed on every entry: each call runs in a fresh instance.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info.payload_as_str().unwrap_or("Box<dyn Any>");
        let line = match info.location() {
            Some(at) => format!("panic: {message} (at {at})"),
            None => format!("panic: {message}"),
        };
        host::log(&line);
    }));
}

impl Write {
    /// Creates a persistent node at `path` holding `data`.
    pub fn create(path: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        Self::create_with_mode(path, data, CreateMode::Persistent)
    }

    /// Creates a node at `path` holding `data`, in the given mode. A
    /// sequential node's name gets a 10-digit suffix; ephemerals belong to
    /// the calling session.
    pub fn create_with_mode(
        path: impl Into<String>,
        data: impl Into<Vec<u8>>,
        mode: CreateMode,
    ) -> Self {
        Write::Create(CreateWrite { path: path.into(), data: data.into(), mode })
    }

    /// Replaces the data of the node at `path`, if its version is `version`
    /// (`None` matches any version).
    pub fn set_data(
        path: impl Into<String>,
        data: impl Into<Vec<u8>>,
        version: impl Into<Option<i32>>,
    ) -> Self {
        Write::SetData(SetDataWrite {
            path: path.into(),
            data: data.into(),
            version: version.into(),
        })
    }

    /// Deletes the node at `path`, if its version is `version` (`None`
    /// matches any version).
    pub fn delete(path: impl Into<String>, version: impl Into<Option<i32>>) -> Self {
        Write::Delete(DeleteWrite { path: path.into(), version: version.into() })
    }

    /// Writes nothing, but fails the whole operation unless the node at
    /// `path` exists at `version` (`None`: exists at all).
    pub fn check(path: impl Into<String>, version: impl Into<Option<i32>>) -> Self {
        Write::Check(CheckWrite { path: path.into(), version: version.into() })
    }
}

impl Outcome {
    /// No writes and no output.
    pub fn new() -> Self {
        Outcome { writes: Vec::new(), output: Vec::new() }
    }

    /// No writes (yet) and this output for the caller.
    pub fn output(output: impl Into<Vec<u8>>) -> Self {
        Outcome { writes: Vec::new(), output: output.into() }
    }

    /// Adds a write, applied after the ones already added.
    pub fn with_write(mut self, write: Write) -> Self {
        self.writes.push(write);
        self
    }

    /// Replaces the output for the caller.
    pub fn with_output(mut self, output: impl Into<Vec<u8>>) -> Self {
        self.output = output.into();
        self
    }
}

impl Default for Outcome {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors() {
        let create = Write::create("/a", "x");
        let expected =
            CreateWrite { path: "/a".into(), data: b"x".to_vec(), mode: CreateMode::Persistent };
        assert_eq!(create, Write::Create(expected));
        assert_eq!(
            Write::set_data("/a", vec![1], 3),
            Write::SetData(SetDataWrite { path: "/a".into(), data: vec![1], version: Some(3) })
        );
        assert_eq!(
            Write::delete(String::from("/a"), None),
            Write::Delete(DeleteWrite { path: "/a".into(), version: None })
        );
        assert_eq!(
            Write::check("/a", Some(0)),
            Write::Check(CheckWrite { path: "/a".into(), version: Some(0) })
        );
        let outcome = Outcome::output("out").with_write(Write::delete("/b", 1)).with_write(create);
        assert_eq!(outcome.output, b"out");
        assert_eq!(outcome.writes.len(), 2);
        assert_eq!(Outcome::default(), Outcome::new().with_output(""));
    }
}
