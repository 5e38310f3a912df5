//! ACL rules and storage: interning of ACL lists (most nodes share a handful,
//! as in ZooKeeper's reference-counted ACL cache), the create-time fix-up of a
//! requested ACL, and the permission check.

use crate::limits::Limits;
use crate::state::digest;
use hashbrown::HashMap;
use std::borrow::Cow;
use std::sync::Arc;
use warren_client::{Acl, AclError, ApiError, BadArgument, Id, Perms, PermsName};
use xxhash_rust::xxh3::Xxh3Builder;

/// An interned ACL list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct AclId(u32);

impl AclId {
    /// The position in [`AclTable::lists`].
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

struct AclEntry {
    acl: Arc<[Acl]>,
    refs: u32,
    hash: u64,
}

/// Reference-counted ACL lists. `intern` takes a reference, `release` drops
/// one; a list with no references is forgotten.
#[derive(Default)]
pub(crate) struct AclTable {
    entries: Vec<Option<AclEntry>>,
    free: Vec<u32>,
    by_value: HashMap<Arc<[Acl]>, AclId, Xxh3Builder>,
    /// The list interned last: most writes repeat it, and comparing is
    /// cheaper than hashing.
    last: Option<AclId>,
}

impl AclTable {
    /// Takes a reference on the list equal to `acl`, adding it if new.
    pub(crate) fn intern(&mut self, acl: &[Acl]) -> AclId {
        if let Some(id) = self.last
            && let Some(entry) = &mut self.entries[id.0 as usize]
            && *entry.acl == *acl
        {
            entry.refs += 1;
            return id;
        }
        let id = match self.by_value.get(acl) {
            Some(&id) => {
                self.entry_mut(id).refs += 1;
                id
            }
            None => self.add(Arc::from(acl)),
        };
        self.last = Some(id);
        id
    }

    fn add(&mut self, acl: Arc<[Acl]>) -> AclId {
        let entry = AclEntry { hash: digest::acl_hash(&acl), acl: acl.clone(), refs: 1 };
        let id = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = Some(entry);
                AclId(i)
            }
            None => {
                self.entries.push(Some(entry));
                // One entry per distinct ACL list; bounded by the node count.
                AclId(u32::try_from(self.entries.len() - 1).expect("over 4 billion ACL lists"))
            }
        };
        self.by_value.insert(acl, id);
        id
    }

    /// Drops one reference; returns the list.
    pub(crate) fn release(&mut self, id: AclId) -> Arc<[Acl]> {
        let entry = self.entry_mut(id);
        entry.refs -= 1;
        let acl = entry.acl.clone();
        if entry.refs == 0 {
            self.entries[id.0 as usize] = None;
            if self.last == Some(id) {
                self.last = None;
            }
            self.by_value.remove(&acl);
            self.free.push(id.0);
        }
        acl
    }

    /// Every list by id (`None` for free ids), for a frozen snapshot view.
    pub(crate) fn lists(&self) -> Vec<Option<Arc<[Acl]>>> {
        self.entries.iter().map(|e| e.as_ref().map(|e| e.acl.clone())).collect()
    }

    pub(crate) fn get(&self, id: AclId) -> &Arc<[Acl]> {
        &self.entry(id).acl
    }

    pub(crate) fn hash(&self, id: AclId) -> u64 {
        self.entry(id).hash
    }

    /// Distinct ACL lists in use.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_value.len()
    }

    fn entry(&self, id: AclId) -> &AclEntry {
        // Ids come only from `intern` and live while referenced.
        self.entries[id.0 as usize].as_ref().expect("released ACL id used")
    }

    fn entry_mut(&mut self, id: AclId) -> &mut AclEntry {
        self.entries[id.0 as usize].as_mut().expect("released ACL id used")
    }
}

/// Checks and expands a requested ACL as ZooKeeper's fixupACL does: removes
/// duplicates, refuses an empty list, unknown schemes and malformed ids, and
/// replaces `auth` entries with the caller's authenticated identities.
pub(crate) fn fixup<'a>(
    path: &str,
    requested: &'a [Acl],
    auth: &[Id],
    limits: &Limits,
) -> Result<Cow<'a, [Acl]>, ApiError> {
    let invalid = |why| ApiError::InvalidAcl { path: path.to_owned(), why };
    if requested.len() > limits.acl_entries_max {
        return Err(ApiError::BadArguments(BadArgument::TooManyAcls {
            count: requested.len(),
            max: limits.acl_entries_max,
        }));
    }
    // The common case, a valid list with no `auth` entry and no duplicate,
    // is used as it is.
    if requested.iter().all(|acl| acl.id.scheme != "auth")
        && requested.iter().enumerate().all(|(i, acl)| !requested[..i].contains(acl))
        && !requested.is_empty()
    {
        for acl in requested {
            check_entry(path, acl, limits)?;
        }
        return Ok(Cow::Borrowed(requested));
    }
    let mut out: Vec<Acl> = Vec::with_capacity(requested.len());
    let mut push = |acl: Acl| {
        if !out.contains(&acl) {
            out.push(acl);
        }
    };
    for acl in requested {
        if acl.id.scheme == "auth" {
            if !acl.perms.is_valid() {
                return Err(invalid(AclError::BadPerms { bits: acl.perms.0 }));
            }
            let mut any = false;
            for who in auth.iter().filter(|who| is_authenticated(who)) {
                push(Acl::new(acl.perms, who.clone()));
                any = true;
            }
            if !any {
                return Err(invalid(AclError::NoIdentity));
            }
        } else {
            check_entry(path, acl, limits)?;
            push(acl.clone());
        }
    }
    if out.is_empty() {
        return Err(invalid(AclError::Empty));
    }
    // `auth` entries expand to every identity of the session.
    if out.len() > limits.acl_entries_max {
        return Err(ApiError::BadArguments(BadArgument::TooManyAcls {
            count: out.len(),
            max: limits.acl_entries_max,
        }));
    }
    Ok(Cow::Owned(out))
}

/// One entry of a requested ACL: known scheme, well-formed id, valid bits.
fn check_entry(path: &str, acl: &Acl, limits: &Limits) -> Result<(), ApiError> {
    let invalid = |why| ApiError::InvalidAcl { path: path.to_owned(), why };
    if !acl.perms.is_valid() {
        return Err(invalid(AclError::BadPerms { bits: acl.perms.0 }));
    }
    let Id { scheme, id } = &acl.id;
    let well_formed = id.len() <= limits.acl_id_bytes_max
        && match scheme.as_str() {
            "world" => id == "anyone",
            "digest" => valid_digest_id(id),
            "x509" => !id.is_empty(),
            "ip" => parse_ip_range(id).is_some(),
            _ => return Err(invalid(AclError::UnknownScheme { scheme: scheme.clone() })),
        };
    if !well_formed {
        return Err(invalid(AclError::BadId { scheme: scheme.clone(), id: id.clone() }));
    }
    Ok(())
}

/// `user:hash`, one colon, both sides non-empty (ZooKeeper's check).
fn valid_digest_id(id: &str) -> bool {
    matches!(id.split_once(':'), Some((user, hash)) if !user.is_empty() && !hash.is_empty() && !hash.contains(':'))
}

/// Identities that prove something: x509 and digest. `world` does not.
fn is_authenticated(id: &Id) -> bool {
    matches!(id.scheme.as_str(), "x509" | "digest")
}

/// An `ip` ACL id: an address, or an address and a prefix length
/// (`10.0.0.0/8`, `::1/128`), as ZooKeeper's IPAuthenticationProvider
/// takes it.
fn parse_ip_range(id: &str) -> Option<(std::net::IpAddr, u32)> {
    let (addr, bits) = match id.split_once('/') {
        Some((addr, bits)) => (addr, Some(bits.parse::<u32>().ok()?)),
        None => (id, None),
    };
    let addr: std::net::IpAddr = addr.parse().ok()?;
    let width = if addr.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(width);
    (bits <= width).then_some((addr, bits))
}

/// Whether the client address `who` (an `ip` identity) is in the range
/// `range` (an `ip` ACL id).
fn ip_matches(range: &str, who: &str) -> bool {
    use std::net::IpAddr::{V4, V6};
    let (Some((net, bits)), Ok(addr)) = (parse_ip_range(range), who.parse()) else {
        return false;
    };
    // The first `bits` bits of a `width`-bit address agree.
    let same = |n: u128, a: u128, width: u32| {
        let shift = width - bits;
        shift >= 128 || n >> shift == a >> shift
    };
    match (net, addr) {
        (V4(n), V4(a)) => same(u32::from(n).into(), u32::from(a).into(), 32),
        (V6(n), V6(a)) => same(n.into(), a.into(), 128),
        _ => false,
    }
}

/// The digest identity of `user:password` credentials, as ZooKeeper's
/// DigestAuthenticationProvider makes it: `user:<base64 of the SHA-1 of
/// the whole credentials>` (the user is what comes before the first ':',
/// or all of it).
pub fn digest_id(credentials: &[u8]) -> String {
    use base64::Engine as _;
    let text = String::from_utf8_lossy(credentials);
    let user = text.split_once(':').map_or(&*text, |(user, _password)| user);
    let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, credentials);
    format!("{user}:{}", base64::engine::general_purpose::STANDARD.encode(sha1.as_ref()))
}

/// The scheme of the superuser identity a node gives a session that adds
/// the configured superuser digest: it passes every ACL check, as
/// ZooKeeper's `super` does.
pub const SUPER_SCHEME: &str = "super";

/// True when an identity of `auth` is granted any of `perms` by `acl`.
pub(crate) fn allows(acl: &[Acl], perms: Perms, auth: &[Id]) -> bool {
    acl.is_empty()
        || auth.iter().any(|who| who.scheme == SUPER_SCHEME)
        || acl.iter().any(|entry| {
            entry.perms.intersects(perms)
                && ((entry.id.scheme == "world" && entry.id.id == "anyone")
                    || (entry.id.scheme == "ip"
                        && auth
                            .iter()
                            .any(|who| who.scheme == "ip" && ip_matches(&entry.id.id, &who.id)))
                    || auth.contains(&entry.id))
        })
}

/// `allows`, or NoAuth naming the path and the permission.
pub(crate) fn check(acl: &[Acl], perms: Perms, auth: &[Id], path: &str) -> Result<(), ApiError> {
    if allows(acl, perms, auth) {
        Ok(())
    } else {
        Err(ApiError::NoAuth { path: path.to_owned(), needed: PermsName(perms) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_shares_and_forgets() {
        // Proves equal ACL lists share one id, and that the last release
        // forgets the list.
        let mut table = AclTable::default();
        let a = table.intern(&Acl::open());
        let b = table.intern(&Acl::open());
        let c = table.intern(&Acl::read_only());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(table.len(), 2);
        table.release(a);
        assert_eq!(table.len(), 2);
        table.release(b);
        assert_eq!(table.len(), 1);
        assert_eq!(table.intern(&Acl::read_only()), c);
    }

    #[test]
    fn ip_entries_match_their_range() {
        // Proves an ip ACL entry grants its address range (v4 and v6, with
        // and without a prefix length) and nothing outside it.
        let entry = |id: &str| vec![Acl::new(Perms::READ, Id::new("ip", id))];
        let from = |addr: &str| vec![Id::new("ip", addr)];
        assert!(allows(&entry("10.1.0.0/16"), Perms::READ, &from("10.1.200.3")));
        assert!(!allows(&entry("10.1.0.0/16"), Perms::READ, &from("10.2.0.1")));
        assert!(allows(&entry("127.0.0.1"), Perms::READ, &from("127.0.0.1")));
        assert!(!allows(&entry("127.0.0.1"), Perms::READ, &from("127.0.0.2")));
        assert!(allows(&entry("0.0.0.0/0"), Perms::READ, &from("192.168.1.1")));
        assert!(allows(&entry("fd00::/8"), Perms::READ, &from("fd12::1")));
        assert!(!allows(&entry("fd00::/8"), Perms::READ, &from("10.0.0.1")));
        assert!(!allows(&entry("127.0.0.1"), Perms::WRITE, &from("127.0.0.1")));
        // An ip identity in a digest entry's place matches nothing.
        assert!(!allows(&entry("127.0.0.1"), Perms::READ, &[Id::digest("127.0.0.1")]));
        assert!(parse_ip_range("10.0.0.0/33").is_none());
        assert!(parse_ip_range("host.example").is_none());
    }

    #[test]
    fn the_superuser_passes_every_check() {
        // Proves a session holding the super identity passes an ACL that
        // names nobody it has.
        let acl = vec![Acl::new(Perms::READ, Id::digest("alice:x"))];
        assert!(!allows(&acl, Perms::ADMIN, &[Id::digest("bob:y")]));
        assert!(allows(&acl, Perms::ADMIN, &[Id::new(SUPER_SCHEME, "root")]));
    }
}
