// The plugins this crate builds; shared by build.rs and the library.

/// The example plugins: `json-schema` (a validator), `counter` and `queue`
/// (operations). Built to `target/plugins/<name>.wasm`.
pub const EXAMPLES: &[&str] = &["json-schema", "counter", "queue"];

/// The test plugins, which exist to exercise the host's limits, named with
/// their `testing/` prefix. Built to `target/plugins/testing/<name>.wasm`.
///
/// - `testing/spin`: an operation that loops forever (fuel budget).
/// - `testing/bomb`: an operation that allocates until it fails (memory cap).
/// - `testing/panic`: an operation that panics with
///   `the plugin panicked on purpose: <path>`.
/// - `testing/stamp-a`, `testing/stamp-b`: two versions of one operation;
///   each creates the persistent-sequential node `<path>/s-` holding `a` or
///   `b` and answers `a:<zxid>` or `b:<zxid>`.
/// - `testing/wasi`: an operation that imports `wasi:random/random@0.2.0`,
///   which the host must refuse to install.
/// - `testing/memory`: an operation that answers what it finds of an
///   earlier call in its memory (a data-segment static, a zeroed static, a
///   grown page) and leaves traces of its own; each call must answer
///   `pages=<initial> data=7 zeroed=0 grown=0`.
/// - `testing/picky`: a validator whose `prepare` refuses any configuration
///   but an empty one and prepares `zxid=<zxid> time=<time-ms>` as it sees
///   them; it rejects the data `show` with the prepared bytes as the reason.
pub const TESTING: &[&str] = &[
    "testing/spin",
    "testing/bomb",
    "testing/panic",
    "testing/stamp-a",
    "testing/stamp-b",
    "testing/wasi",
    "testing/memory",
    "testing/picky",
];
