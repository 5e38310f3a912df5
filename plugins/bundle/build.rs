//! Builds the plugins workspace (`plugins/Cargo.toml`) for
//! wasm32-unknown-unknown with a nested cargo, checks that each core module
//! imports only Warren's interfaces, turns each into a component with
//! wit-component and writes it to `target/plugins/` (the repository's
//! `target/`, whatever the outer build's target directory).
//!
//! The nested build has its own target directory, `target/wasm`: a separate
//! cargo lock, so it cannot deadlock with the outer build, and not under
//! `OUT_DIR`, so it stays warm when this script's hash changes (another
//! profile, another `-p`, clippy).

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio, exit};

#[path = "src/names.rs"]
mod names;

const TARGET: &str = "wasm32-unknown-unknown";
const ADD_TARGET: &str = "rustup target add wasm32-unknown-unknown";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"));
    let repo = manifest_dir.join("../..").canonicalize().expect("the repository exists");
    let plugins = repo.join("plugins");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("run by cargo"));

    for input in [
        "plugins/Cargo.toml",
        "plugins/Cargo.lock",
        "plugins/json-schema",
        "plugins/counter",
        "plugins/queue",
        "plugins/testing",
        "guest-sdk/Cargo.toml",
        "guest-sdk/src",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", repo.join(input).display());
    }

    check_target_installed();
    let wasm_target = repo.join("target/wasm");
    build_plugins(&plugins, &wasm_target);

    let modules = wasm_target.join(TARGET).join("release");
    let components = repo.join("target/plugins");
    let mut embedded = String::from("match name {\n");
    for name in names::EXAMPLES.iter().chain(names::TESTING) {
        let module = modules.join(format!("{}.wasm", name.replace(['-', '/'], "_")));
        let core = fs::read(&module)
            .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", module.display())));
        check_imports(name, &core);
        let component = wit_component::ComponentEncoder::default()
            .module(&core)
            .and_then(|encoder| encoder.validate(true).encode())
            .unwrap_or_else(|e| fail(&format!("cannot make plugin {name} a component: {e:#}")));
        let file = components.join(format!("{name}.wasm"));
        write_if_changed(&file, &component);
        embedded += &format!("    {name:?} => Some(&include_bytes!({:?})[..]),\n", file.display());
    }
    embedded += "    _ => None,\n}\n";
    write_if_changed(&out_dir.join("embedded.rs"), embedded.as_bytes());
    write_if_changed(&out_dir.join("dir.rs"), format!("{:?}", components.display()).as_bytes());
}

/// Fails with one sentence naming the fix if the target's standard library is
/// missing (`RUSTUP_AUTO_INSTALL=0` or no rustup at all).
fn check_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let has_core = libdir.and_then(|dir| fs::read_dir(dir).ok()).is_some_and(|entries| {
        entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
    });
    if !has_core {
        fail(&format!(
            "the {TARGET} target is not installed, and Warren's plugins build for it: \
             run `{ADD_TARGET}`"
        ));
    }
}

fn build_plugins(plugins: &Path, wasm_target: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut nested = Command::new(cargo);
    nested
        .current_dir(plugins)
        .args(["build", "--release", "--locked", "--quiet", "--target", TARGET, "--workspace"])
        .arg("--target-dir")
        .arg(wasm_target)
        // Its output must not reach cargo as this script's directives.
        .stdout(std::io::stderr());
    // The outer build's flags, target and wrappers are not the plugins'.
    // CARGO_MAKEFLAGS stays: the nested cargo shares the outer -j tokens.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        nested.env_remove(var);
    }
    if env::var_os("RUSTC_WRAPPER").is_some_and(|w| is_clippy_driver(&w)) {
        nested.env_remove("RUSTC_WRAPPER");
    }
    match nested.status() {
        Ok(status) if status.success() => {}
        Ok(_) => {
            // Exiting with an error makes cargo also show the nested errors.
            println!(
                "cargo::error=building the plugins (plugins/Cargo.toml) for {TARGET} failed, \
                 see the errors below; if the target is missing, run `{ADD_TARGET}`"
            );
            exit(1)
        }
        Err(e) => fail(&format!("cannot run cargo to build the plugins: {e}")),
    }
}

fn is_clippy_driver(wrapper: &OsString) -> bool {
    Path::new(wrapper)
        .file_stem()
        .is_some_and(|stem| stem.to_string_lossy().starts_with("clippy-driver"))
}

/// A plugin's core module may import only Warren's interfaces: nothing from
/// `env`, WASI or wasm-bindgen, which a dependency could bring in. The test
/// plugin `testing/wasi` imports WASI on purpose.
fn check_imports(name: &str, core: &[u8]) {
    let mut imports = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(core) {
        let payload = payload.unwrap_or_else(|e| fail(&format!("plugin {name}: {e}")));
        if let wasmparser::Payload::ImportSection(section) = payload {
            for import in section.into_imports() {
                let import = import.unwrap_or_else(|e| fail(&format!("plugin {name}: {e}")));
                imports.push(format!("{}::{}", import.module, import.name));
            }
        }
    }
    if name == "testing/wasi" {
        if !imports.iter().any(|i| i.starts_with("wasi:random/random@0.2.0::")) {
            fail(&format!("plugin {name} should import wasi:random but imports {imports:?}"));
        }
    } else if let Some(bad) = imports.iter().find(|i| !i.starts_with("warren:plugin/")) {
        fail(&format!(
            "plugin {name} imports {bad}, which Warren does not provide (a dependency that \
             needs WASI, wasm-bindgen or getrandom?)"
        ));
    }
}

/// Writes through a temporary file and a rename (another build may be
/// reading), and not at all if the content is the same (no needless rebuild
/// of what includes it).
fn write_if_changed(path: &Path, content: &[u8]) {
    if fs::read(path).is_ok_and(|old| old == content) {
        return;
    }
    let dir = path.parent().expect("a file in a directory");
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if let Err(e) = fs::create_dir_all(dir)
        .and_then(|()| fs::write(&tmp, content))
        .and_then(|()| fs::rename(&tmp, path))
    {
        fail(&format!("cannot write {}: {e}", path.display()));
    }
}

/// Fails the build with one line, which cargo prints as an error (not a
/// panic's backtrace, nor this script's whole output).
fn fail(message: &str) -> ! {
    println!("cargo::error={}", message.replace('\n', " "));
    exit(0)
}
