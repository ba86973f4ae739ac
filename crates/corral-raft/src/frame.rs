//! Frames: how messages cross a byte stream, such as an HTTP body, that
//! arrives in chunks of any size. Each frame is a 4-byte big-endian length,
//! then that many bytes of one value, in the [`Encoding`] of the stream's
//! peer format (JSON before format 2, MessagePack since).

use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{CodecError, Encoding};

/// The largest frame accepted: a batch of entries, far above what openraft
/// sends in one request.
pub const FRAME_BYTES_MAX: usize = 256 << 20;

/// A frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A frame claims more bytes than the largest accepted (256 MiB).
    #[error("frame of {0} bytes is too large")]
    TooLarge(usize),
    /// A frame's value does not encode, or does not decode as what was
    /// expected.
    #[error("frame does not decode: {0}")]
    Codec(#[from] CodecError),
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame")]
    Truncated,
    /// The transport under the stream failed (its error, as text: the
    /// stream's error type is the caller's).
    #[error("{0}")]
    Transport(String),
}

/// Encodes `value` as one frame.
pub fn encode_frame<T: Serialize>(encoding: Encoding, value: &T) -> Result<Vec<u8>, FrameError> {
    let mut frame = vec![0; 4];
    encoding.encode_into(&mut frame, value)?;
    let len = frame.len() - 4;
    let len = u32::try_from(len)
        .ok()
        .filter(|_| len <= FRAME_BYTES_MAX)
        .ok_or(FrameError::TooLarge(len))?;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    Ok(frame)
}

/// Cuts a byte stream, which arrives in chunks of any size, into frames.
#[derive(Debug)]
pub struct FrameReader {
    encoding: Encoding,
    buffer: Vec<u8>,
    start: usize,
}

impl FrameReader {
    /// A reader of frames in `encoding`.
    pub fn new(encoding: Encoding) -> FrameReader {
        FrameReader {
            encoding,
            buffer: Vec::new(),
            start: 0,
        }
    }

    /// Adds bytes that arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame, decoded; `None` until one has arrived.
    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Option<Result<T, FrameError>> {
        let pending = &self.buffer[self.start..];
        let header: [u8; 4] = pending.get(..4)?.try_into().ok()?;
        let len = u32::from_be_bytes(header) as usize;
        if len > FRAME_BYTES_MAX {
            return Some(Err(FrameError::TooLarge(len)));
        }
        let body = pending.get(4..4 + len)?;
        let decoded = self.encoding.decode(body).map_err(FrameError::from);
        self.start += 4 + len;
        if self.start > self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        Some(decoded)
    }

    /// Whether bytes of an unfinished frame are waiting.
    pub fn is_inside_frame(&self) -> bool {
        self.start < self.buffer.len()
    }
}

/// The decoded frames of a byte stream. Ends at the first bad frame or
/// transport error, with it.
pub fn frames<T, B, E>(
    encoding: Encoding,
    bytes: impl Stream<Item = Result<B, E>> + Unpin,
) -> impl Stream<Item = Result<T, FrameError>>
where
    T: DeserializeOwned,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let reader = FrameReader::new(encoding);
    futures::stream::unfold(Some((bytes, reader)), |state| async move {
        let (mut bytes, mut reader) = state?;
        loop {
            if let Some(frame) = reader.next_frame::<T>() {
                return match frame {
                    Ok(value) => Some((Ok(value), Some((bytes, reader)))),
                    Err(e) => Some((Err(e), None)),
                };
            }
            match bytes.next().await {
                Some(Ok(chunk)) => reader.push(chunk.as_ref()),
                Some(Err(e)) => return Some((Err(FrameError::Transport(e.to_string())), None)),
                None if reader.is_inside_frame() => {
                    return Some((Err(FrameError::Truncated), None))
                }
                None => return None,
            }
        }
    })
}

#[cfg(test)]
#[path = "frame_test.rs"]
mod tests;
