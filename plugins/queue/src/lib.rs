//! Example operation `queue`: pops the head of a queue, and optionally claims
//! it by moving it under another node, in one atomic step.
//!
//! ```text
//! warren plugin invoke queue /jobs/queue
//! warren plugin invoke queue /jobs/queue '{"to": "/jobs/claimed"}'
//! ```
//!
//! `path` is the queue's node and its children are the items; the head is
//! the child with the lowest name, so items created as persistent-sequential
//! children (`/jobs/queue/item-0000000007`) pop in order. The output is the
//! head's data. The head is deleted (at the version read); with args
//! `{"to": "/jobs/claimed"}` it is also created, persistent, as
//! `/jobs/claimed/<item name>` with the same data: both happen or neither.
//! An empty queue, or no node at `path`, is an error.

use serde_json::Value;
use warren_sdk::{Operation, Outcome, Write, tree};

struct Queue;

impl Operation for Queue {
    fn invoke(path: String, args: Vec<u8>) -> Result<Outcome, String> {
        let claim_under = parse_args(&args)?;
        let children =
            tree::get_children(&path)?.ok_or_else(|| format!("queue {path} does not exist"))?;
        let name = children.into_iter().min().ok_or_else(|| format!("queue {path} is empty"))?;
        let head = child(&path, &name);
        let node = tree::get_data(&head)?.ok_or_else(|| format!("queue item {head} vanished"))?;
        let mut outcome =
            Outcome::output(node.data.clone()).with_write(Write::delete(&head, node.stat.version));
        if let Some(parent) = claim_under {
            outcome = outcome.with_write(Write::create(child(&parent, &name), node.data));
        }
        Ok(outcome)
    }
}

/// `None` for a plain pop, or the node to claim the head under.
fn parse_args(args: &[u8]) -> Result<Option<String>, String> {
    if args.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let usage = r#"queue args must be empty or JSON {"to": "/claimed/parent"}"#;
    let Ok(Value::Object(mut fields)) = serde_json::from_slice(args) else {
        return Err(usage.into());
    };
    let to = fields.remove("to");
    if let Some(name) = fields.keys().next() {
        return Err(format!("{usage}: unknown field {name:?}"));
    }
    match to {
        None => Ok(None),
        Some(Value::String(to)) if to.starts_with('/') => Ok(Some(to)),
        Some(_) => Err(format!("{usage}: \"to\" must be an absolute path")),
    }
}

/// The path of `name` under `parent`.
fn child(parent: &str, name: &str) -> String {
    format!("{}/{name}", parent.trim_end_matches('/'))
}

warren_sdk::export_operation!(Queue);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args() {
        assert_eq!(parse_args(b""), Ok(None));
        assert_eq!(parse_args(b"{}"), Ok(None));
        assert_eq!(parse_args(br#"{"to": "/done"}"#), Ok(Some("/done".into())));
        assert!(
            parse_args(br#"{"to": "done"}"#).unwrap_err().ends_with("must be an absolute path")
        );
        assert!(parse_args(br#"{"from": "/a"}"#).unwrap_err().ends_with(r#"unknown field "from""#));
        assert!(parse_args(b"/done").is_err());
    }

    #[test]
    fn children() {
        assert_eq!(child("/q", "item-1"), "/q/item-1");
        assert_eq!(child("/q/", "item-1"), "/q/item-1");
        assert_eq!(child("/", "item-1"), "/item-1");
    }
}
