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
    let mut out = vec![0u8; 4];
    // Writing CBOR into a Vec cannot fail: no I/O, and the protocol types
    // all serialize.
    ciborium::into_writer(message, &mut out).expect("a protocol message always encodes");
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
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

/// Reads one frame; `Ok(None)` at a clean end of stream (before a frame).
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
