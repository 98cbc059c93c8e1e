//! Concatenated compressed streams decoded as Python's `bz2.decompress` and
//! `lzma.decompress` (so numcodecs' `BZ2` and `LZMA`) decode them: streams one after another,
//! their outputs joined; bytes after a whole stream that fail to decode as another stream are
//! ignored, but a stream that decodes without ending is an error.

use crate::codec::{size_mismatch, CodecError};

/// A decoder of one stream.
pub(crate) trait StreamDecoder {
    /// Decodes from `input` into `output`: (bytes consumed, bytes produced, whether the
    /// stream ended), or why the data is invalid.
    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize, bool), String>;
}

/// Where decoded bytes go: a buffer of exactly the expected size, or a growing vector.
pub(crate) enum Sink<'a> {
    /// Must be filled exactly; more output is an error.
    Exact(&'a mut [u8]),
    /// Grows as needed up to a bound (more output is an error), never allocating past it.
    Grow(&'a mut Vec<u8>, usize),
}

/// Decodes the streams in `input` into `sink`; `new` starts a decoder for each stream.
/// `empty_ok`: empty input decodes to nothing (bz2) rather than being an error (lzma).
pub(crate) fn decode_streams<D: StreamDecoder>(
    codec: &str,
    empty_ok: bool,
    input: &[u8],
    mut sink: Sink<'_>,
    new: impl Fn() -> Result<D, String>,
) -> Result<(), CodecError> {
    let mut rest = input;
    let mut written = 0usize;
    let mut streams = 0usize;
    while !rest.is_empty() || (streams == 0 && !empty_ok) {
        let start = written;
        let result = new()
            .map_err(Failure::Invalid)
            .and_then(|mut decoder| decode_one(codec, &mut decoder, rest, &mut sink, &mut written));
        match result {
            Ok(Some(consumed)) => rest = &rest[consumed..],
            Ok(None) => {
                return Err(CodecError::corrupt(
                    codec,
                    "compressed data ended before the end-of-stream marker",
                ))
            }
            Err(Failure::Invalid(reason)) if streams == 0 => {
                return Err(CodecError::corrupt(codec, reason))
            }
            // Bytes after a whole stream that are no stream are ignored.
            Err(Failure::Invalid(_)) => {
                written = start;
                break;
            }
            Err(Failure::Fatal(err)) => return Err(err),
        }
        streams += 1;
    }
    match sink {
        Sink::Exact(out) if written != out.len() => Err(size_mismatch(codec, written, out.len())),
        Sink::Exact(_) => Ok(()),
        Sink::Grow(out, _) => {
            out.truncate(written);
            Ok(())
        }
    }
}

/// Why a stream did not decode: invalid data (ignored after the first stream), or an error
/// that stops decoding (output beyond the expected size, no memory).
enum Failure {
    Invalid(String),
    Fatal(CodecError),
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        Failure::Invalid(reason)
    }
}

/// Decodes one stream from the start of `input`, appending at `*written`; the input bytes it
/// took, or `None` when the input ended first.
fn decode_one(
    codec: &str,
    decoder: &mut impl StreamDecoder,
    input: &[u8],
    sink: &mut Sink<'_>,
    written: &mut usize,
) -> Result<Option<usize>, Failure> {
    let mut consumed = 0usize;
    let mut scratch = [0u8; 1];
    let limit = match sink {
        Sink::Exact(out) => out.len(),
        Sink::Grow(_, max_len) => *max_len,
    };
    loop {
        let full = limit == *written;
        let output: &mut [u8] = match sink {
            // A full sink decodes into a scratch byte: any output is too much.
            _ if full => &mut scratch,
            Sink::Exact(out) => &mut out[*written..],
            Sink::Grow(out, _) => {
                if out.len() == *written {
                    let grow = out.len().clamp(64 << 10, 64 << 20).min(limit - *written);
                    out.try_reserve_exact(grow).map_err(|_| {
                        Failure::Fatal(CodecError::corrupt(codec, "no memory for decoded data"))
                    })?;
                    out.resize(out.len() + grow, 0);
                }
                &mut out[*written..]
            }
        };
        let (used, produced, ended) = decoder.step(&input[consumed..], output)?;
        if full && produced > 0 {
            return Err(Failure::Fatal(match sink {
                Sink::Exact(_) => CodecError::corrupt(
                    codec,
                    format!("decoded data exceeds the expected size of {limit} bytes"),
                ),
                Sink::Grow(..) => CodecError::corrupt(
                    codec,
                    format!("decodes to more than the {limit} bytes a chunk may hold"),
                ),
            }));
        }
        consumed += used;
        *written += produced;
        if ended {
            return Ok(Some(consumed));
        }
        if used == 0 && produced == 0 {
            return Ok(None);
        }
    }
}
