//! Skipping request bodies (RFC 9112 §6, §7.1): a static server has no use for them, but it must
//! find where each one ends, or the body would be read as the next request (request smuggling).

use super::request::Framing;

/// Longest chunk-size line accepted, extensions included; a bound on what a client can make us
/// buffer while we look for its end.
const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;

/// Where we are in a body being skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodySkip {
    /// This many bytes remain, of a Content-Length body or of the current chunk's data.
    Remaining { bytes: u64, chunked: bool },
    /// Next comes a chunk-size line.
    ChunkSize,
    /// Next comes the CRLF that ends a chunk's data.
    ChunkEnd,
    /// After the last chunk: trailer fields, then an empty line.
    Trailers,
}

/// The result of feeding buffered bytes to a [`BodySkip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skipped {
    /// Consumed this many bytes; the body is not over, more input is needed.
    More(usize),
    /// Consumed this many bytes and the body is over.
    Done(usize),
    /// The body's framing is broken: nothing after it can be trusted, so close.
    Invalid,
}

impl BodySkip {
    /// Where to begin, or `None` when there is nothing to skip.
    pub(crate) fn start(framing: Option<Framing>) -> Option<BodySkip> {
        match framing {
            None | Some(Framing::Length(0)) => None,
            Some(Framing::Length(bytes)) => Some(BodySkip::Remaining {
                bytes,
                chunked: false,
            }),
            Some(Framing::Chunked) => Some(BodySkip::ChunkSize),
        }
    }

    /// Consumes as much of `input` as belongs to the body.
    pub(crate) fn skip(&mut self, input: &[u8], max_body: u64, skipped_so_far: &mut u64) -> Skipped {
        let mut at = 0;
        loop {
            let rest = &input[at..];
            match *self {
                BodySkip::Remaining { bytes, chunked } => {
                    let take = bytes.min(rest.len() as u64);
                    at += take as usize;
                    *skipped_so_far += take;
                    if *skipped_so_far > max_body {
                        return Skipped::Invalid;
                    }
                    if take < bytes {
                        *self = BodySkip::Remaining {
                            bytes: bytes - take,
                            chunked,
                        };
                        return Skipped::More(at);
                    }
                    if !chunked {
                        return Skipped::Done(at);
                    }
                    *self = BodySkip::ChunkEnd;
                }
                BodySkip::ChunkSize => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((len, 0))) => {
                        at += len;
                        *self = BodySkip::Trailers;
                    }
                    Ok(httparse::Status::Complete((len, bytes))) => {
                        at += len;
                        *self = BodySkip::Remaining { bytes, chunked: true };
                    }
                    Ok(httparse::Status::Partial) if rest.len() <= MAX_CHUNK_LINE => {
                        return Skipped::More(at)
                    }
                    _ => return Skipped::Invalid,
                },
                BodySkip::ChunkEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        at += 2;
                        *self = BodySkip::ChunkSize;
                    }
                    [] | [b'\r'] => return Skipped::More(at),
                    _ => return Skipped::Invalid,
                },
                BodySkip::Trailers => {
                    let mut fields = [httparse::EMPTY_HEADER; 32];
                    return match httparse::parse_headers(rest, &mut fields) {
                        Ok(httparse::Status::Complete((len, _))) => Skipped::Done(at + len),
                        Ok(httparse::Status::Partial) if rest.len() <= MAX_TRAILERS => Skipped::More(at),
                        _ => Skipped::Invalid,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes, as a slow client would, and returns how many
    /// bytes the body took, or `None` if the body never ended or was invalid.
    fn body_len(framing: Framing, input: &[u8], step: usize) -> Option<usize> {
        let mut skip = BodySkip::start(Some(framing))?;
        let mut buffered = Vec::new();
        let mut consumed = 0;
        let mut total = 0;
        for piece in input.chunks(step) {
            buffered.extend_from_slice(piece);
            match skip.skip(&buffered, 1 << 20, &mut total) {
                Skipped::More(n) => {
                    consumed += n;
                    buffered.drain(..n);
                }
                Skipped::Done(n) => return Some(consumed + n),
                Skipped::Invalid => return None,
            }
        }
        None
    }

    #[test]
    fn content_length_body_ends_where_it_says() {
        for step in 1..8 {
            assert_eq!(body_len(Framing::Length(5), b"helloGET", step), Some(5));
        }
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let body = b"5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nTrailer: x\r\n\r\nGET / HTTP/1.1";
        let expected = body.len() - b"GET / HTTP/1.1".len();
        for step in 1..body.len() {
            assert_eq!(
                body_len(Framing::Chunked, body, step),
                Some(expected),
                "step {step}"
            );
        }
    }

    #[test]
    fn broken_chunked_bodies_are_invalid() {
        for body in [
            &b"zz\r\n"[..],
            b"5\r\nhelloXX",
            b"5\nhello\r\n0\r\n\r\n",
            b"0\r\nBad Trailer\r\n\r\n",
        ] {
            assert_eq!(body_len(Framing::Chunked, body, body.len()), None, "{body:?}");
        }
    }

    #[test]
    fn oversized_chunked_body_is_invalid() {
        let mut skip = BodySkip::ChunkSize;
        let mut total = 0;
        let chunk = b"10\r\n0123456789abcdef\r\n";
        assert_eq!(skip.skip(chunk, 16, &mut total), Skipped::More(chunk.len()));
        assert_eq!(skip.skip(chunk, 16, &mut total), Skipped::Invalid);
    }
}
