//! Example operation `counter`: a bounded atomic counter.
//!
//! ```text
//! warren plugin invoke counter /jobs/running '{"delta": 1, "max": 10}'
//! ```
//!
//! `path` is the counter's node; its data is the value in decimal ASCII (no
//! node, or empty data, counts as 0; the node is created, persistent, by the
//! first invocation). `args` is JSON `{"delta": i64, "min": i64, "max": i64}`,
//! every field optional: `delta` defaults to 1 (so empty args count one up),
//! missing bounds are unbounded. The new value is written with the version
//! that was read and returned in decimal ASCII. A new value below `min` or
//! above `max`, or an overflow, is an error and writes nothing.

use serde_json::Value;
use warren_sdk::{Operation, Outcome, Write, tree};

struct Counter;

impl Operation for Counter {
    fn invoke(path: String, args: Vec<u8>) -> Result<Outcome, String> {
        let args = Args::parse(&args)?;
        let node = tree::get_data(&path)?;
        let new = next(&path, node.as_ref().map(|node| &node.data[..]), &args)?;
        let data = new.to_string();
        let write = match node {
            Some(node) => Write::set_data(&path, data.clone(), node.stat.version),
            None => Write::create(&path, data.clone()),
        };
        Ok(Outcome::output(data).with_write(write))
    }
}

/// The counter's new value, from its node's data (`None`: no node).
fn next(path: &str, data: Option<&[u8]>, args: &Args) -> Result<i64, String> {
    let value = match data {
        None | Some([]) => 0,
        Some(data) => std::str::from_utf8(data)
            .ok()
            .and_then(|text| text.parse::<i64>().ok())
            .ok_or_else(|| {
                let data = String::from_utf8_lossy(data);
                format!("counter {path} holds {data:?}, not a decimal integer")
            })?,
    };
    let Args { delta, min, max } = *args;
    let new = value
        .checked_add(delta)
        .ok_or_else(|| format!("counter {path} would overflow: {value} + {delta}"))?;
    if let Some(min) = min
        && new < min
    {
        return Err(format!("counter {path} would go to {new}, below its minimum {min}"));
    }
    if let Some(max) = max
        && new > max
    {
        return Err(format!("counter {path} would go to {new}, above its maximum {max}"));
    }
    Ok(new)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Args {
    delta: i64,
    min: Option<i64>,
    max: Option<i64>,
}

impl Args {
    fn parse(args: &[u8]) -> Result<Args, String> {
        let mut parsed = Args { delta: 1, min: None, max: None };
        if args.iter().all(u8::is_ascii_whitespace) {
            return Ok(parsed);
        }
        let usage = r#"counter args must be JSON {"delta": i64, "min": i64, "max": i64}"#;
        let Ok(Value::Object(fields)) = serde_json::from_slice(args) else {
            return Err(usage.into());
        };
        for (name, value) in fields {
            let Some(n) = value.as_i64() else {
                return Err(format!("{usage}: {name:?} is not a 64-bit integer"));
            };
            match name.as_str() {
                "delta" => parsed.delta = n,
                "min" => parsed.min = Some(n),
                "max" => parsed.max = Some(n),
                _ => return Err(format!("{usage}: unknown field {name:?}")),
            }
        }
        Ok(parsed)
    }
}

warren_sdk::export_operation!(Counter);

#[cfg(test)]
mod tests {
    use super::*;

    fn step(data: Option<&str>, args: &str) -> Result<i64, String> {
        next("/c", data.map(str::as_bytes), &Args::parse(args.as_bytes())?)
    }

    #[test]
    fn counts() {
        assert_eq!(step(None, ""), Ok(1));
        assert_eq!(step(Some(""), " "), Ok(1));
        assert_eq!(step(Some("41"), r#"{"delta": 1}"#), Ok(42));
        assert_eq!(step(Some("-3"), r#"{"delta": -2, "min": -5}"#), Ok(-5));
        assert_eq!(step(Some("9"), r#"{"max": 10}"#), Ok(10));
    }

    #[test]
    fn refuses() {
        let refused = |data, args| step(Some(data), args).unwrap_err();
        assert_eq!(
            refused("10", r#"{"delta": 1, "max": 10}"#),
            "counter /c would go to 11, above its maximum 10"
        );
        assert_eq!(
            refused("0", r#"{"delta": -1, "min": 0}"#),
            "counter /c would go to -1, below its minimum 0"
        );
        assert_eq!(
            refused("9223372036854775807", ""),
            "counter /c would overflow: 9223372036854775807 + 1"
        );
        assert_eq!(refused("x1", ""), r#"counter /c holds "x1", not a decimal integer"#);
        assert!(refused("1", r#"{"delta": 1.5}"#).ends_with(r#""delta" is not a 64-bit integer"#));
        assert!(refused("1", r#"{"step": 1}"#).ends_with(r#"unknown field "step""#));
        assert!(refused("1", "[1]").starts_with("counter args must be JSON"));
    }
}
