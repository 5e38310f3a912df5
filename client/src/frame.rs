//! Frames on a stream: a 4-byte big-endian length, then that many bytes of
//! CBOR. The one codec for client and peer streams. A frame over the limit,
//! or bytes that are not the expected type, are an error the caller reports
//! and closes the stream on; nothing here panics on input.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame: a 1 MiB value with its path, ACL and framing fits many
/// times over; a plugin upload or a snapshot chunk uses its own limit.
pub const FRAME_BYTES_MAX: usize = 16 << 20;

/// Why a frame could not be read or written.
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("the stream failed: {0}")]
    Io(#[from] io::Error),
    #[error("the peer announced a frame of {len} bytes, over the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("the frame is not a valid message: {0}")]
    Decode(String),
}

/// A frame's bytes: length prefix and CBOR body.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(message, &mut out);
    out
}

/// Appends a frame (length prefix and CBOR body) to `out`, so a writer can
/// gather several frames in one reused buffer.
pub fn encode_into<T: Serialize>(message: &T, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    // Writing CBOR into a Vec cannot fail: no I/O, and the protocol types
    // all serialize.
    ciborium::into_writer(message, &mut *out).expect("a protocol message always encodes");
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// A frame body's message.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let mut reader = body;
    let message =
        ciborium::from_reader(&mut reader).map_err(|e| FrameError::Decode(e.to_string()))?;
    if !reader.is_empty() {
        return Err(FrameError::Decode(format!("{} bytes after the message", reader.len())));
    }
    Ok(message)
}

/// Reads frames off a stream through one reused buffer: a read from the
/// stream takes whatever has arrived (often several frames), and frames are
/// decoded in place, without an allocation per frame. Unlike [`read`], it
/// is safe to cancel [`FrameReader::next`] (in a `select!`, say): a partly
/// read frame stays in the buffer for the next call.
pub struct FrameReader<R> {
    stream: R,
    /// Zero-initialised storage; the unread bytes are `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The buffer's usual size: grown for a longer frame, shrunk back after.
    chunk: usize,
    max: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader that asks the stream for up to `chunk` bytes at a time and
    /// refuses frames over `max` bytes.
    pub fn new(stream: R, chunk: usize, max: usize) -> FrameReader<R> {
        let chunk = chunk.max(64);
        FrameReader { stream, buf: vec![0; chunk], start: 0, end: 0, chunk, max }
    }

    /// The next frame; `Ok(None)` at a clean end of stream (between
    /// frames).
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        loop {
            let unread = &self.buf[self.start..self.end];
            let mut need = 4;
            if let Some(prefix) = unread.first_chunk::<4>() {
                let len = u32::from_be_bytes(*prefix) as usize;
                if len > self.max {
                    return Err(FrameError::TooLong { len, max: self.max });
                }
                if unread.len() >= 4 + len {
                    let body = &unread[4..4 + len];
                    self.start += 4 + len;
                    return decode(body).map(Some);
                }
                need = 4 + len;
            }
            if !self.fill(need).await? {
                if self.start == self.end {
                    return Ok(None);
                }
                return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// Reads more bytes from the stream, with room for a frame of `need`
    /// bytes in all; `false` at the stream's end. Cancelling it loses
    /// nothing: the buffer is only rearranged before the read.
    async fn fill(&mut self, need: usize) -> Result<bool, FrameError> {
        let unread = self.end - self.start;
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = unread;
        }
        let size = need.max(self.chunk);
        if self.buf.len() < size || self.buf.len() > size.max(4 * self.chunk) {
            self.buf.resize(size, 0);
            self.buf.shrink_to(size);
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n > 0)
    }
}

/// Reads one frame; `Ok(None)` at a clean end of stream (before a frame).
/// For a stream of many frames, [`FrameReader`] avoids an allocation per
/// frame.
pub async fn read<T: DeserializeOwned, R: AsyncRead + Unpin>(
    stream: &mut R,
    max: usize,
) -> Result<Option<T>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = stream.read(&mut len[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        got += n;
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLong { len, max });
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    decode(&body).map(Some)
}

/// Writes one frame.
pub async fn write<T: Serialize, W: AsyncWrite + Unpin>(
    stream: &mut W,
    message: &T,
) -> Result<(), FrameError> {
    stream.write_all(&encode(message)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::ReadBuf;

    /// A stream that hands out its bytes in pieces of the given sizes
    /// (cycled), as a network delivers them.
    struct Pieces {
        bytes: Vec<u8>,
        at: usize,
        sizes: Vec<usize>,
        turn: usize,
    }

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let size = self.sizes[self.turn % self.sizes.len()];
            self.turn += 1;
            let n = size.min(out.remaining()).min(self.bytes.len() - self.at);
            let at = self.at;
            out.put_slice(&self.bytes[at..at + n]);
            self.at += n;
            Poll::Ready(Ok(()))
        }
    }

    fn frames(messages: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in messages {
            encode_into(m, &mut out);
        }
        out
    }

    async fn read_all(bytes: Vec<u8>, sizes: Vec<usize>, chunk: usize) -> Vec<String> {
        let mut reader = FrameReader::new(Pieces { bytes, at: 0, sizes, turn: 0 }, chunk, 1 << 20);
        let mut got = Vec::new();
        while let Some(m) = reader.next::<String>().await.expect("valid frames") {
            got.push(m);
        }
        got
    }

    #[tokio::test]
    async fn frames_come_out_whole_however_the_stream_splits_them() {
        // Proves the reader reassembles frames split at every boundary,
        // packed several to a read, and longer than its chunk.
        let messages: Vec<String> =
            (0..40).map(|i| "x".repeat(i * 37 % 300) + &i.to_string()).collect();
        let bytes = frames(&messages);
        for sizes in [vec![1], vec![3, 1, 7], vec![4096], vec![5, 200, 1]] {
            for chunk in [64, 100, 1 << 16] {
                assert_eq!(read_all(bytes.clone(), sizes.clone(), chunk).await, messages);
            }
        }
    }

    #[tokio::test]
    async fn a_stream_ending_inside_a_frame_is_an_error() {
        // Proves a truncated last frame is reported, not taken as a clean end.
        let mut bytes = frames(&["one".to_owned(), "two".to_owned()]);
        bytes.pop();
        let mut reader =
            FrameReader::new(Pieces { bytes, at: 0, sizes: vec![2], turn: 0 }, 64, 1024);
        assert_eq!(reader.next::<String>().await.expect("first frame").as_deref(), Some("one"));
        assert!(matches!(reader.next::<String>().await, Err(FrameError::Io(_))));
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_is_refused_before_it_is_read() {
        // Proves the announced length is checked against the limit.
        let bytes = frames(&["y".repeat(2000)]);
        let mut reader =
            FrameReader::new(Pieces { bytes, at: 0, sizes: vec![8], turn: 0 }, 64, 1024);
        assert!(matches!(
            reader.next::<String>().await,
            Err(FrameError::TooLong { max: 1024, .. })
        ));
    }

    #[tokio::test]
    async fn a_cancelled_read_loses_nothing() {
        // Proves next() is cancel-safe: reads abandoned mid-frame (the
        // stream has nothing more yet) resume where they stopped.
        let messages: Vec<String> = (0..20).map(|i| "z".repeat(i * 11)).collect();
        let bytes = frames(&messages);
        let (rx, mut tx) = tokio::io::simplex(1 << 16);
        let mut reader = FrameReader::new(rx, 64, 1 << 20);
        let mut got = Vec::new();
        for piece in bytes.chunks(5) {
            tokio::io::AsyncWriteExt::write_all(&mut tx, piece).await.expect("written");
            // Poll once: either a frame completes, or the read is dropped.
            loop {
                tokio::select! {
                    biased;
                    m = reader.next::<String>() => got.push(m.expect("valid").expect("a frame")),
                    () = std::future::ready(()) => break,
                }
            }
        }
        assert_eq!(got, messages);
    }
}
