//! Jute, ZooKeeper's serialization, for the records of its client
//! protocol (`zookeeper.jute`, ZooKeeper 3.9): big-endian `int` and
//! `long`, a one-byte `boolean`, `buffer` and `ustring` as a 4-byte length
//! (−1 for null) and the bytes, `vector` as a 4-byte count (−1 for null)
//! and the elements. Every length is checked against a bound before
//! anything is allocated, and every read against the bytes left, so a
//! truncated, garbage or hostile frame is an error, never a panic or a
//! large allocation.

use thiserror::Error;
use warren_client::{Acl, Id, Perms, Stat, Zxid};

/// Why a frame's bytes are not the record they should be.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum JuteError {
    #[error("the {what} is cut short: {needed} more bytes were needed")]
    Truncated { what: &'static str, needed: usize },
    #[error("the {what} is {len} long, over the limit of {max}")]
    TooLong { what: &'static str, len: usize, max: usize },
    #[error("the {what} has a negative length ({len})")]
    NegativeLength { what: &'static str, len: i32 },
    #[error("the {what} is not UTF-8")]
    NotUtf8 { what: &'static str },
    #[error("the {what} is null where a value is required")]
    Null { what: &'static str },
    #[error("opcode {0} is not one of ZooKeeper's")]
    UnknownOp(i32),
    #[error("{0} operations are not allowed inside this kind of multi")]
    NotInMulti(&'static str),
}

/// Bounds on what one frame may ask the decoder to hold.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Bytes of one buffer or string (ZooKeeper's `jute.maxbuffer`).
    pub bytes_max: usize,
    /// Elements of one vector (children, ACL entries, watches, multi ops).
    pub elements_max: usize,
}

/// Reads jute values from a frame's bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pub(super) bounds: Bounds,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], bounds: Bounds) -> Reader<'a> {
        Reader { bytes, bounds }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], JuteError> {
        if self.bytes.len() < n {
            return Err(JuteError::Truncated { what, needed: n - self.bytes.len() });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub fn int(&mut self, what: &'static str) -> Result<i32, JuteError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn long(&mut self, what: &'static str) -> Result<i64, JuteError> {
        let b = self.take(8, what)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(b);
        Ok(i64::from_be_bytes(word))
    }

    pub fn bool(&mut self, what: &'static str) -> Result<bool, JuteError> {
        Ok(self.take(1, what)?[0] != 0)
    }

    /// A length or count: −1 is null (`None`), other negatives are errors.
    fn length(&mut self, what: &'static str, max: usize) -> Result<Option<usize>, JuteError> {
        let len = self.int(what)?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(JuteError::NegativeLength { what, len });
        }
        let len = len as usize;
        if len > max {
            return Err(JuteError::TooLong { what, len, max });
        }
        Ok(Some(len))
    }

    /// A buffer; null reads as empty (ZooKeeper treats them alike).
    pub fn buffer(&mut self, what: &'static str) -> Result<Vec<u8>, JuteError> {
        match self.length(what, self.bounds.bytes_max)? {
            None => Ok(Vec::new()),
            Some(len) => Ok(self.take(len, what)?.to_vec()),
        }
    }

    /// A string that may be null.
    pub fn ustring_or_null(&mut self, what: &'static str) -> Result<Option<String>, JuteError> {
        match self.length(what, self.bounds.bytes_max)? {
            None => Ok(None),
            Some(len) => {
                let bytes = self.take(len, what)?;
                let text = std::str::from_utf8(bytes).map_err(|_| JuteError::NotUtf8 { what })?;
                Ok(Some(text.to_string()))
            }
        }
    }

    /// A string that must be there.
    pub fn ustring(&mut self, what: &'static str) -> Result<String, JuteError> {
        self.ustring_or_null(what)?.ok_or(JuteError::Null { what })
    }

    /// A vector, each element read by `element`; null reads as empty.
    pub fn vector<T>(
        &mut self,
        what: &'static str,
        mut element: impl FnMut(&mut Reader<'a>) -> Result<T, JuteError>,
    ) -> Result<Vec<T>, JuteError> {
        let Some(count) = self.length(what, self.bounds.elements_max)? else {
            return Ok(Vec::new());
        };
        // Each element takes at least one byte: a count beyond what is
        // left is garbage, refused before anything is reserved.
        if count > self.bytes.len() {
            return Err(JuteError::Truncated { what, needed: count - self.bytes.len() });
        }
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(element(self)?);
        }
        Ok(out)
    }

    pub fn strings(&mut self, what: &'static str) -> Result<Vec<String>, JuteError> {
        self.vector(what, |r| r.ustring(what))
    }

    pub fn id(&mut self) -> Result<Id, JuteError> {
        Ok(Id { scheme: self.ustring("id scheme")?, id: self.ustring("id")? })
    }

    pub fn acl(&mut self) -> Result<Vec<Acl>, JuteError> {
        self.vector("ACL", |r| {
            let perms = Perms(r.int("ACL perms")? as u32);
            Ok(Acl { perms, id: r.id()? })
        })
    }
}

/// Writes jute values into a frame.
#[derive(Default)]
pub struct Writer {
    pub bytes: Vec<u8>,
}

impl Writer {
    pub fn int(&mut self, value: i32) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    pub fn long(&mut self, value: i64) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    pub fn bool(&mut self, value: bool) {
        self.bytes.push(u8::from(value));
    }

    /// A buffer or string's bytes (`None` writes null).
    pub fn buffer(&mut self, value: Option<&[u8]>) {
        match value {
            None => self.int(-1),
            Some(bytes) => {
                self.int(bytes.len() as i32);
                self.bytes.extend_from_slice(bytes);
            }
        }
    }

    pub fn ustring(&mut self, value: &str) {
        self.buffer(Some(value.as_bytes()));
    }

    pub fn strings<S: AsRef<str>>(&mut self, values: &[S]) {
        self.int(values.len() as i32);
        for value in values {
            self.ustring(value.as_ref());
        }
    }

    pub fn id(&mut self, id: &Id) {
        self.ustring(&id.scheme);
        self.ustring(&id.id);
    }

    pub fn acl(&mut self, acl: &[Acl]) {
        self.int(acl.len() as i32);
        for entry in acl {
            self.int(entry.perms.0 as i32);
            self.id(&entry.id);
        }
    }

    /// A Stat as ZooKeeper lays it out.
    pub fn stat(&mut self, stat: &Stat) {
        self.long(stat.czxid.0 as i64);
        self.long(stat.mzxid.0 as i64);
        self.long(stat.ctime);
        self.long(stat.mtime);
        self.int(stat.version);
        // ZooKeeper counts a node's creations of children internally (its
        // sequence numbers) and shows clients twice that less the children
        // left: every creation and every deletion. Warren's tree counts
        // creations too.
        self.int(stat.cversion.wrapping_mul(2).wrapping_sub(stat.num_children as i32));
        self.int(stat.aversion);
        // ZooKeeper shows only a real session as a node's owner: its
        // container and TTL markers read as 0 to clients.
        let owner = stat.ephemeral_owner as i64;
        self.long(if owner < 0 { 0 } else { owner });
        self.int(stat.data_length as i32);
        self.int(stat.num_children as i32);
        self.long(stat.pzxid.0 as i64);
    }
}

/// Reads a Stat (for clients of the codec and its tests).
pub fn read_stat(r: &mut Reader<'_>) -> Result<Stat, JuteError> {
    Ok(Stat {
        czxid: Zxid(r.long("czxid")? as u64),
        mzxid: Zxid(r.long("mzxid")? as u64),
        ctime: r.long("ctime")?,
        mtime: r.long("mtime")?,
        version: r.int("version")?,
        cversion: r.int("cversion")?,
        aversion: r.int("aversion")?,
        ephemeral_owner: r.long("ephemeralOwner")? as u64,
        data_length: r.int("dataLength")? as u32,
        num_children: r.int("numChildren")? as u32,
        pzxid: Zxid(r.long("pzxid")? as u64),
    })
}
