//! Path rules (ZooKeeper's, plus a length limit) and the cheap splits of a
//! valid path into parent and name. Pure string logic; knows no tree.

use warren_client::PathError;

/// Checks a path against ZooKeeper's rules: absolute, `/`-separated, no empty
/// segment, no trailing `/` except the root, no `.` or `..` segment, no NUL,
/// control or reserved characters, and at most `max_bytes` bytes.
pub fn validate(path: &str, max_bytes: usize) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > max_bytes {
        return Err(PathError::TooLong { len: path.len(), max: max_bytes });
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(PathError::TrailingSlash);
    }
    // One pass over the bytes: ASCII is checked directly, and only
    // non-ASCII characters are decoded.
    let bytes = path.as_bytes();
    let mut segment_start = 1;
    let mut at = 1;
    while at <= bytes.len() {
        let b = if at < bytes.len() { bytes[at] } else { b'/' };
        if b == b'/' {
            match &bytes[segment_start..at] {
                [] => return Err(PathError::EmptySegment { at: segment_start }),
                b"." | b".." => return Err(PathError::RelativeSegment { at: segment_start }),
                _ => {}
            }
            segment_start = at + 1;
            at += 1;
        } else if b < 0x80 {
            if b < 0x20 || b == 0x7f {
                return Err(PathError::BadCharacter { at });
            }
            at += 1;
        } else {
            // `at` is a char boundary: we only ever step over whole chars.
            let c = path[at..].chars().next().expect("non-empty tail");
            if is_forbidden(c) {
                return Err(PathError::BadCharacter { at });
            }
            at += c.len_utf8();
        }
    }
    Ok(())
}

/// ZooKeeper's forbidden characters: NUL, C0 and C1 controls, DEL, the
/// private-use range (surrogates cannot occur in a Rust string), and the
/// specials block's noncharacters.
fn is_forbidden(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{e000}'..='\u{f8ff}'
        | '\u{fff0}'..='\u{ffff}')
}

/// The parent of a valid, non-root path: `/a/b` → `/a`, `/a` → `/`.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last segment of a valid, non-root path: `/a/b` → `b`.
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, name: &str) -> String {
    let mut out = String::with_capacity(parent.len() + 1 + name.len());
    out.push_str(parent);
    if parent != "/" {
        out.push('/');
    }
    out.push_str(name);
    out
}

/// True when `path` is `ancestor` or lies below it.
pub fn is_within(path: &str, ancestor: &str) -> bool {
    if ancestor == "/" {
        return true;
    }
    path.starts_with(ancestor)
        && (path.len() == ancestor.len() || path.as_bytes()[ancestor.len()] == b'/')
}

/// The strict ancestors of a valid path, nearest first, ending with `/`.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = if path == "/" { None } else { Some(path) };
    std::iter::from_fn(move || {
        let p = parent(rest?);
        rest = if p == "/" { None } else { Some(p) };
        Some(p)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_zookeeper() {
        // Proves each ZooKeeper path rule by example, accepted and refused.
        for ok in ["/", "/a", "/a/b", "/a.b", "/..a", "/a/.b/c", "/ü/日本"] {
            assert_eq!(validate(ok, 4096), Ok(()), "{ok}");
        }
        let bad: &[(&str, PathError)] = &[
            ("", PathError::Empty),
            ("a", PathError::NotAbsolute),
            ("/a/", PathError::TrailingSlash),
            ("//a", PathError::EmptySegment { at: 1 }),
            ("/a//b", PathError::EmptySegment { at: 3 }),
            ("/a/./b", PathError::RelativeSegment { at: 3 }),
            ("/..", PathError::RelativeSegment { at: 1 }),
            ("/a\0b", PathError::BadCharacter { at: 2 }),
            ("/a\u{7f}", PathError::BadCharacter { at: 2 }),
            ("/\u{e000}", PathError::BadCharacter { at: 1 }),
            ("/\u{fff5}", PathError::BadCharacter { at: 1 }),
        ];
        for (path, err) in bad {
            assert_eq!(validate(path, 4096).as_ref(), Err(err), "{path:?}");
        }
        assert_eq!(validate("/abcd", 4), Err(PathError::TooLong { len: 5, max: 4 }));
    }

    #[test]
    fn splits_and_ancestry() {
        // Proves parent/name/join/ancestors/is_within on the root and below.
        assert_eq!((parent("/a"), name("/a")), ("/", "a"));
        assert_eq!((parent("/a/b/c"), name("/a/b/c")), ("/a/b", "c"));
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), ["/a/b", "/a", "/"]);
        assert_eq!(ancestors("/").count(), 0);
        assert!(is_within("/a/b", "/a") && is_within("/a", "/a") && is_within("/x", "/"));
        assert!(!is_within("/ab", "/a") && !is_within("/a", "/a/b"));
    }
}
