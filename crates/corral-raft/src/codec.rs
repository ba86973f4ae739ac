//! The encodings of what nodes write to disk and send each other.
//!
//! Since format 2 that is MessagePack with fields named, as JSON has them.
//! A self-describing encoding keeps every serde attribute of the state's
//! types working (internally tagged enums, fields skipped when empty), so
//! the types have one definition for JSON and for the binary form. It is
//! smaller than JSON and decodes about twice as fast (docs/benchmarks.md,
//! "Formats"). Values written in format 0 or 1 are JSON and stay readable.

use std::io::{Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// How a value is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// JSON: formats 0 and 1.
    Json,
    /// MessagePack with named fields: format 2.
    MessagePack,
}

/// The format numbers of disk values and peer messages written in
/// MessagePack; earlier numbers are JSON.
pub const FIRST_BINARY_FORMAT: u8 = 2;

impl Encoding {
    /// The encoding of format `format`.
    pub fn of_format(format: u8) -> Encoding {
        if format >= FIRST_BINARY_FORMAT {
            Encoding::MessagePack
        } else {
            Encoding::Json
        }
    }

    /// Appends `value`'s encoding to `bytes`.
    pub fn encode_into<T: Serialize + ?Sized>(
        self,
        bytes: &mut Vec<u8>,
        value: &T,
    ) -> Result<(), CodecError> {
        self.encode_to(bytes, value)
    }

    /// Writes `value`'s encoding to `writer`, as it is encoded.
    pub fn encode_to<W: Write, T: Serialize + ?Sized>(
        self,
        writer: W,
        value: &T,
    ) -> Result<(), CodecError> {
        match self {
            Encoding::Json => serde_json::to_writer(writer, value).map_err(CodecError::from),
            Encoding::MessagePack => {
                let mut serializer = rmp_serde::Serializer::new(writer).with_struct_map();
                value
                    .serialize(&mut serializer)
                    .map_err(|e| CodecError(e.to_string()))
            }
        }
    }

    /// Decodes one value from `reader`, reading it as it goes. Buffered:
    /// both decoders read a few bytes at a time, and with a 64 KiB buffer a
    /// table decodes from a reader about as fast as from a slice (0.20 s
    /// against 0.17 s for 100 000 leases, 0.49 s unbuffered).
    pub fn decode_from<R: Read, T: DeserializeOwned>(self, reader: R) -> Result<T, CodecError> {
        let reader = std::io::BufReader::with_capacity(64 << 10, reader);
        match self {
            Encoding::Json => serde_json::from_reader(reader).map_err(CodecError::from),
            Encoding::MessagePack => rmp_serde::from_read(reader).map_err(CodecError::from),
        }
    }

    /// `value` encoded.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        let mut bytes = Vec::new();
        self.encode_into(&mut bytes, value)?;
        Ok(bytes)
    }

    /// Decodes all of `bytes` as one value.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        match self {
            Encoding::Json => serde_json::from_slice(bytes).map_err(CodecError::from),
            Encoding::MessagePack => rmp_serde::from_slice(bytes).map_err(CodecError::from),
        }
    }
}

/// A value did not encode or decode; the encoder's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

impl From<serde_json::Error> for CodecError {
    fn from(e: serde_json::Error) -> CodecError {
        CodecError(e.to_string())
    }
}

impl From<rmp_serde::decode::Error> for CodecError {
    fn from(e: rmp_serde::decode::Error) -> CodecError {
        CodecError(e.to_string())
    }
}

#[cfg(test)]
#[path = "codec_test.rs"]
mod tests;
