//! Makes gRPC clients that name the socket in `:authority` work on the announcer's unix socket.
//!
//! # Why
//!
//! Over a unix socket there is no host to name, and gRPC clients disagree on what to send as the
//! HTTP/2 `:authority`: grpc-go and tonic send `localhost`, but gRPC C-core since 1.57 (Python's
//! `grpcio`, Ruby, PHP, C++) sends the percent-encoded socket path (`run%2Fferrolb%2Fannouncer.sock`
//! for `unix:/run/ferrolb/announcer.sock`), and grpc-java and older grpcurl send the path itself.
//! Neither is a valid URI authority, and the HTTP/2 server under tonic (h2 0.4,
//! `Peer::convert_poll_message` in `h2::server`) parses `:authority` with `http::uri::Authority` and
//! answers a value it rejects with `RST_STREAM(PROTOCOL_ERROR)` before the request reaches tonic.
//! The client sees `INTERNAL: Received RST_STREAM with error code 1` on every call. h2 has no
//! option to relax this (its pull request #487 for unix sockets is unmerged), hyper and tonic add
//! none, and a CNI agent cannot always set `grpc.default_authority`.
//!
//! # What
//!
//! [`AuthorityRewriter`] sits between the socket and h2, on the bytes the client sends. It passes
//! the connection preface and every frame through unchanged except header blocks (HEADERS with
//! their CONTINUATION frames): it decodes each block with an HPACK decoder that follows the client's
//! dynamic table, replaces an `:authority` that h2 would reject with `localhost` (what grpc-go
//! sends), and encodes the block again with literal fields only. Because no block it emits adds
//! to h2's dynamic table, h2's decoder never needs the client's table, so every block is re-encoded,
//! not only those that change. A valid `:authority` is kept as it is, and a field the client sent
//! never-indexed stays out of every table (nothing is indexed). The bytes h2 sends back are not
//! touched. [`NormalizeAuthority`] is that rewriter over a socket, for tonic's `incoming`.
//!
//! The first request decides for the whole connection. A gRPC channel sends one `:authority` on
//! every request of a connection, so when the first one is valid (grpc-go, tonic, a client with
//! `grpc.default_authority` set), that block and every byte after it pass through untouched and the
//! connection costs nothing more than a copy. Decoding is not free: the HPACK decoder builds a
//! Huffman table for each Huffman-coded string, which was 42 % of the server's time per `GetOwner`
//! call when every block was decoded (docs/benchmarks.md). A client that changed its `:authority`
//! to an invalid one later on the same connection would get h2's `RST_STREAM`; none does.
//!
//! A block that cannot be decoded, or frames that break HTTP/2's header-block rules, end the
//! connection with an I/O error: h2 would have closed it with a connection error for the same bytes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The `:authority` a rewritten request carries: what grpc-go and tonic send over unix sockets.
pub const UNIX_AUTHORITY: &str = "localhost";

/// The client connection preface (RFC 9113 section 3.4), passed through as it is.
const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
const PRIORITY_LEN: usize = 5;
/// The largest frame every HTTP/2 peer accepts (the SETTINGS_MAX_FRAME_SIZE floor): rewritten
/// blocks are cut to it, whatever h2 advertised.
const MAX_FRAME: usize = 16_384;
/// The HPACK dynamic table size h2 advertises (it sends no SETTINGS_HEADER_TABLE_SIZE, so the
/// protocol default holds): the client may not grow its table past it.
const CLIENT_TABLE_SIZE: usize = 4_096;
/// The longest header block kept while waiting for its CONTINUATION frames. h2 allows header lists
/// of 16 KiB by default (hyper's `max_header_list_size`); a client that sends more is refused either
/// way, and this bounds what one connection can make us hold.
const MAX_BLOCK: usize = 1 << 20;

/// Why a connection was ended while its header blocks were rewritten.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// A header block could not be decoded (a COMPRESSION_ERROR for h2 too).
    #[error("HTTP/2 header block on stream {stream_id} cannot be decoded: {reason}")]
    Decode {
        /// The stream the block belongs to.
        stream_id: u32,
        /// The HPACK decoder's reason.
        reason: String,
    },
    /// The frames break HTTP/2's rules for header blocks (a PROTOCOL_ERROR for h2 too).
    #[error("HTTP/2 framing: {0}")]
    Framing(&'static str),
    /// A header block is longer than `MAX_BLOCK` (1 MiB).
    #[error("HTTP/2 header block on stream {stream_id} is longer than {MAX_BLOCK} bytes")]
    TooLong {
        /// The stream the block belongs to.
        stream_id: u32,
    },
}

impl From<RewriteError> for io::Error {
    fn from(error: RewriteError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }
}

/// A header block whose CONTINUATION frames have not all arrived.
struct PendingBlock {
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; PRIORITY_LEN]>,
    fragment: Vec<u8>,
    /// The block's frames as the client sent them, kept for the connection's first block only: if
    /// its `:authority` is valid, they go on unchanged.
    raw: Option<Vec<u8>>,
}

/// What a connection's header blocks get, decided by its first request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No header block has ended yet.
    Undecided,
    /// The first request's `:authority` was invalid: every block is re-encoded.
    Rewrite,
    /// The first request's `:authority` was valid: every byte passes as it is.
    PassThrough,
}

/// The client-to-server half of an HTTP/2 connection, with every header block re-encoded and an
/// invalid `:authority` replaced by [`UNIX_AUTHORITY`]. No I/O: feed it what the socket gave.
pub struct AuthorityRewriter {
    preface_left: usize,
    /// Payload bytes of a frame that passes through as it is and has not fully arrived.
    passthrough_left: usize,
    pending: Option<PendingBlock>,
    decoder: loona_hpack::Decoder<'static>,
    mode: Mode,
    rewritten: u64,
}

impl std::fmt::Debug for AuthorityRewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityRewriter")
            .field("preface_left", &self.preface_left)
            .field("passthrough_left", &self.passthrough_left)
            .field("pending_stream", &self.pending.as_ref().map(|p| p.stream_id))
            .field("mode", &self.mode)
            .field("rewritten", &self.rewritten)
            .finish_non_exhaustive()
    }
}

impl Default for AuthorityRewriter {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthorityRewriter {
    /// A rewriter for a new connection (which starts with the client preface).
    pub fn new() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(CLIENT_TABLE_SIZE);
        Self {
            preface_left: PREFACE_LEN,
            passthrough_left: 0,
            pending: None,
            decoder,
            mode: Mode::Undecided,
            rewritten: 0,
        }
    }

    /// Whether everything from now on passes as it is: the preface is through and the first
    /// request's `:authority` was valid.
    pub fn passes_through(&self) -> bool {
        self.mode == Mode::PassThrough && self.preface_left == 0
    }

    /// How many requests had their `:authority` replaced so far.
    pub fn rewritten(&self) -> u64 {
        self.rewritten
    }

    /// Moves what can be processed from `input` to `output`; leaves an incomplete header frame in
    /// `input` for the next call.
    pub fn rewrite(&mut self, input: &mut BytesMut, output: &mut BytesMut) -> Result<(), RewriteError> {
        loop {
            if self.passes_through() {
                output.extend_from_slice(input);
                input.clear();
                return Ok(());
            }
            if self.preface_left > 0 || self.passthrough_left > 0 {
                let left = self.preface_left.max(self.passthrough_left);
                let n = left.min(input.len());
                output.extend_from_slice(&input[..n]);
                input.advance(n);
                if self.preface_left > 0 {
                    self.preface_left -= n;
                } else {
                    self.passthrough_left -= n;
                }
                if n < left {
                    return Ok(());
                }
                continue;
            }
            if input.len() < FRAME_HEADER_LEN {
                return Ok(());
            }
            let length = usize::from(input[0]) << 16 | usize::from(input[1]) << 8 | usize::from(input[2]);
            let kind = input[3];
            let flags = input[4];
            let stream_id = u32::from_be_bytes([input[5], input[6], input[7], input[8]]) & 0x7fff_ffff;
            if kind != HEADERS && kind != CONTINUATION {
                if self.pending.is_some() {
                    return Err(RewriteError::Framing(
                        "a frame other than CONTINUATION inside a header block",
                    ));
                }
                output.extend_from_slice(&input[..FRAME_HEADER_LEN]);
                input.advance(FRAME_HEADER_LEN);
                self.passthrough_left = length;
                continue;
            }
            if length > MAX_BLOCK {
                return Err(RewriteError::TooLong { stream_id });
            }
            if input.len() < FRAME_HEADER_LEN + length {
                // Ask for the rest of the frame at once rather than growing the buffer in steps.
                input.reserve(FRAME_HEADER_LEN + length - input.len());
                return Ok(());
            }
            let raw = (self.mode == Mode::Undecided).then(|| input[..FRAME_HEADER_LEN + length].to_vec());
            input.advance(FRAME_HEADER_LEN);
            let payload = input.split_to(length);
            if kind == HEADERS {
                self.start_block(stream_id, flags, &payload, raw)?;
            } else {
                let Some(pending) = self.pending.as_mut() else {
                    return Err(RewriteError::Framing("CONTINUATION without a HEADERS frame before it"));
                };
                if pending.stream_id != stream_id {
                    return Err(RewriteError::Framing("CONTINUATION on another stream than its HEADERS"));
                }
                if pending.fragment.len() + payload.len() > MAX_BLOCK {
                    return Err(RewriteError::TooLong { stream_id });
                }
                pending.fragment.extend_from_slice(&payload);
                if let (Some(kept), Some(raw)) = (pending.raw.as_mut(), raw) {
                    kept.extend_from_slice(&raw);
                }
            }
            if flags & END_HEADERS != 0 {
                let block = self.pending.take().expect("a HEADERS frame started the block");
                self.finish_block(block, output)?;
            }
        }
    }

    fn start_block(
        &mut self,
        stream_id: u32,
        flags: u8,
        payload: &[u8],
        raw: Option<Vec<u8>>,
    ) -> Result<(), RewriteError> {
        if self.pending.is_some() {
            return Err(RewriteError::Framing("HEADERS inside another header block"));
        }
        let mut payload = payload;
        if flags & PADDED != 0 {
            let Some((&pad, rest)) = payload.split_first() else {
                return Err(RewriteError::Framing("PADDED HEADERS without a pad length"));
            };
            let Some(unpadded) = rest.len().checked_sub(usize::from(pad)) else {
                return Err(RewriteError::Framing("HEADERS padding longer than the frame"));
            };
            payload = &rest[..unpadded];
        }
        let priority = if flags & PRIORITY != 0 {
            let Some((priority, rest)) = payload.split_first_chunk::<PRIORITY_LEN>() else {
                return Err(RewriteError::Framing("HEADERS with PRIORITY shorter than its priority fields"));
            };
            payload = rest;
            Some(*priority)
        } else {
            None
        };
        self.pending = Some(PendingBlock {
            stream_id,
            end_stream: flags & END_STREAM != 0,
            priority,
            fragment: payload.to_vec(),
            raw,
        });
        Ok(())
    }

    fn finish_block(&mut self, block: PendingBlock, output: &mut BytesMut) -> Result<(), RewriteError> {
        let mut encoded = Vec::with_capacity(block.fragment.len() + 64);
        let mut replaced = false;
        self.decoder
            .decode_with_cb(&block.fragment, |name, value| {
                let value: &[u8] = if name.as_ref() == b":authority" && !is_valid_authority(&value) {
                    replaced = true;
                    UNIX_AUTHORITY.as_bytes()
                } else {
                    &value
                };
                encode_literal(&name, value, &mut encoded);
            })
            .map_err(|error| RewriteError::Decode {
                stream_id: block.stream_id,
                reason: error.to_string(),
            })?;
        if replaced {
            self.rewritten += 1;
        }
        match (self.mode, block.raw.as_deref()) {
            // The client's own bytes keep h2's dynamic table in step with the client's, so nothing
            // after them needs decoding.
            (Mode::Undecided, Some(raw)) if !replaced => {
                self.mode = Mode::PassThrough;
                output.extend_from_slice(raw);
            }
            _ => {
                self.mode = Mode::Rewrite;
                write_block(&block, &encoded, output);
            }
        }
        Ok(())
    }
}

/// What h2 accepts as `:authority`, checked the way h2 checks it.
fn is_valid_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// A literal header field without indexing, new name, no Huffman coding (RFC 7541 section 6.2.2):
/// it leaves the receiver's dynamic table as it is.
fn encode_literal(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0x00);
    for string in [name, value] {
        loona_hpack::encoder::encode_integer_into(string.len(), 7, 0, out)
            .expect("writing to a Vec cannot fail");
        out.extend_from_slice(string);
    }
}

/// The HEADERS frame (and CONTINUATION frames when the block is longer than [`MAX_FRAME`]) that
/// carry `encoded` for `block`'s stream, without padding.
fn write_block(block: &PendingBlock, encoded: &[u8], output: &mut BytesMut) {
    let first_room = MAX_FRAME - block.priority.map_or(0, |_| PRIORITY_LEN);
    let (first, mut rest) = encoded.split_at(encoded.len().min(first_room));
    let mut flags = if block.end_stream { END_STREAM } else { 0 };
    if block.priority.is_some() {
        flags |= PRIORITY;
    }
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    let priority = block.priority.as_ref().map_or(&[][..], |p| &p[..]);
    write_frame_header(output, priority.len() + first.len(), HEADERS, flags, block.stream_id);
    output.extend_from_slice(priority);
    output.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(rest.len().min(MAX_FRAME));
        rest = after;
        let flags = if rest.is_empty() { END_HEADERS } else { 0 };
        write_frame_header(output, chunk.len(), CONTINUATION, flags, block.stream_id);
        output.extend_from_slice(chunk);
    }
}

fn write_frame_header(output: &mut BytesMut, length: usize, kind: u8, flags: u8, stream_id: u32) {
    let length = u32::try_from(length).expect("frames are cut to MAX_FRAME");
    output.put_slice(&length.to_be_bytes()[1..]);
    output.put_u8(kind);
    output.put_u8(flags);
    output.put_u32(stream_id);
}

/// A server-side connection whose incoming header blocks go through an [`AuthorityRewriter`];
/// writes go to the socket as they are.
#[derive(Debug)]
pub struct NormalizeAuthority<S> {
    inner: S,
    rewriter: AuthorityRewriter,
    /// One read from the socket.
    chunk: Box<[u8]>,
    /// Read from the socket, not processed yet.
    input: BytesMut,
    /// Processed, not handed to the reader yet.
    output: BytesMut,
    eof: bool,
}

impl<S> NormalizeAuthority<S> {
    /// How much is read from the socket at a time.
    const READ_CHUNK: usize = 16 * 1024;

    /// Wraps a freshly accepted connection.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            rewriter: AuthorityRewriter::new(),
            chunk: vec![0; Self::READ_CHUNK].into_boxed_slice(),
            input: BytesMut::new(),
            output: BytesMut::new(),
            eof: false,
        }
    }

    /// The socket.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// How many requests on this connection had their `:authority` replaced.
    pub fn rewritten(&self) -> u64 {
        self.rewriter.rewritten()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for NormalizeAuthority<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output[..n]);
                this.output.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.rewriter.passes_through() && this.input.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            if this.eof {
                // A frame cut by the client's close goes on as it came, so that h2 sees the same
                // truncated connection it would have seen without us.
                if this.input.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.output = this.input.split();
                continue;
            }
            let mut read = ReadBuf::new(&mut this.chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let filled = read.filled();
            if filled.is_empty() {
                this.eof = true;
                continue;
            }
            this.input.extend_from_slice(filled);
            this.rewriter.rewrite(&mut this.input, &mut this.output)?;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for NormalizeAuthority<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for NormalizeAuthority<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PREFACE: &[u8; PREFACE_LEN] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    /// The first two HEADERS payloads grpcio 1.85.1 (gRPC C-core 58) sent on one connection for
    /// `grpc.insecure_channel("unix:/tmp/cap2.sock")`: the second block names `:path` and
    /// `:authority` through the client's dynamic table only.
    const GRPCIO_FIRST: &str = "40053a706174681e2f666572726f6c622e76312e416e6e6f756e6365722f4765744f776e6572400a3a617574686f726974790f746d70253246636170322e736f636b8386400c636f6e74656e742d74797065106170706c69636174696f6e2f677270634002746508747261696c6572734014677270632d6163636570742d656e636f64696e67176964656e746974792c206465666c6174652c20677a6970400c677270632d74696d656f7574043439376d400a757365722d6167656e7430677270632d707974686f6e2f312e38352e3120677270632d632f35382e302e3020286c696e75783b2063687474703229";
    const GRPCIO_SECOND: &str = "c4c38386c2c1c0400c677270632d74696d656f7574043530316dbf";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_frame_header(&mut out, payload.len(), kind, flags, stream_id);
        out.extend_from_slice(payload);
        out.to_vec()
    }

    /// A frame as h2 would read it.
    #[derive(Debug, PartialEq)]
    struct Frame {
        kind: u8,
        flags: u8,
        stream_id: u32,
        payload: Vec<u8>,
    }

    fn rewrite_all(input: &[u8]) -> Result<Vec<u8>, RewriteError> {
        let mut rewriter = AuthorityRewriter::new();
        let (mut input, mut output) = (BytesMut::from(input), BytesMut::new());
        rewriter.rewrite(&mut input, &mut output)?;
        assert!(input.is_empty(), "everything complete is processed");
        Ok(output.to_vec())
    }

    /// The frames after the preface.
    fn frames(bytes: &[u8]) -> Vec<Frame> {
        assert_eq!(&bytes[..PREFACE_LEN], PREFACE, "the preface passes as it is");
        let mut rest = &bytes[PREFACE_LEN..];
        let mut frames = Vec::new();
        while !rest.is_empty() {
            let length = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            let stream_id = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
            frames.push(Frame {
                kind: rest[3],
                flags: rest[4],
                stream_id,
                payload: rest[9..9 + length].to_vec(),
            });
            rest = &rest[9 + length..];
        }
        frames
    }

    /// Decodes a rewritten block the way h2 would, with a decoder that has no dynamic table at all:
    /// proof that the block needs none.
    fn decode_stateless(block: &[u8]) -> Vec<(String, String)> {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_table_size(0);
        decoder
            .decode(block)
            .unwrap()
            .into_iter()
            .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn grpcio_requests_get_localhost_and_keep_every_other_header() {
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        input.extend(frame(HEADERS, END_HEADERS, 1, &hex(GRPCIO_FIRST)));
        input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\x03\x0a\x01x")); // DATA
        input.extend(frame(HEADERS, END_HEADERS, 3, &hex(GRPCIO_SECOND)));
        let mut rewriter = AuthorityRewriter::new();
        let (mut pending, mut output) = (BytesMut::from(&input[..]), BytesMut::new());
        rewriter.rewrite(&mut pending, &mut output).unwrap();
        assert_eq!(rewriter.rewritten(), 2);

        let frames = frames(&output);
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[0], Frame { kind: 0x4, flags: 0, stream_id: 0, payload: vec![] });
        assert_eq!(frames[2].payload, b"\0\0\0\0\x03\x0a\x01x", "DATA passes as it is");
        let mut original = loona_hpack::Decoder::new();
        for (frame, block) in [(&frames[1], GRPCIO_FIRST), (&frames[3], GRPCIO_SECOND)] {
            assert_eq!((frame.kind, frame.flags), (HEADERS, END_HEADERS));
            let rewritten = decode_stateless(&frame.payload);
            let sent: Vec<(String, String)> = original
                .decode(&hex(block))
                .unwrap()
                .into_iter()
                .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                .collect();
            assert_eq!(header(&sent, ":authority"), Some("tmp%2Fcap2.sock"));
            assert_eq!(header(&rewritten, ":authority"), Some(UNIX_AUTHORITY));
            let others = |headers: &[(String, String)]| {
                headers.iter().filter(|(n, _)| n != ":authority").cloned().collect::<Vec<_>>()
            };
            assert_eq!(others(&rewritten), others(&sent), "same headers, same order");
            assert_eq!(header(&rewritten, ":path"), Some("/ferrolb.v1.Announcer/GetOwner"));
        }
    }

    #[test]
    fn a_valid_first_authority_passes_the_connection_through() {
        // RFC 7541 C.4.1 and C.4.2: GET http://www.example.com/ with Huffman-coded strings, then a
        // request that names the authority through the dynamic table only.
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &hex("828684418cf1e3c2e5f23a6ba0ab90f4ff")));
        input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &hex("828684be5886a8eb10649cbf")));
        // A third block that would be replaced if it were first: the connection is decided.
        let late = loona_hpack::Encoder::new().encode([(&b":authority"[..], &b"/a.sock"[..])]);
        input.extend(frame(HEADERS, END_HEADERS, 5, &late));
        let mut rewriter = AuthorityRewriter::new();
        let (mut pending, mut output) = (BytesMut::from(&input[..PREFACE_LEN + 30]), BytesMut::new());
        rewriter.rewrite(&mut pending, &mut output).unwrap();
        assert!(!rewriter.passes_through(), "the first block has not ended");
        pending.extend_from_slice(&input[PREFACE_LEN + 30..]);
        rewriter.rewrite(&mut pending, &mut output).unwrap();
        assert!(rewriter.passes_through());
        assert!(pending.is_empty());
        assert_eq!(&output[..], &input[..], "every byte as the client sent it");
        assert_eq!(rewriter.rewritten(), 0);
    }

    #[test]
    fn path_like_authorities_are_replaced() {
        for authority in
            ["/run/ferrolb/announcer.sock", "run%2Fferrolb%2Fannouncer.sock", "unix:/run/x.sock", ""]
        {
            let block = loona_hpack::Encoder::new()
                .encode([(&b":authority"[..], authority.as_bytes()), (b":path", b"/x")]);
            let mut input = PREFACE.to_vec();
            input.extend(frame(HEADERS, END_HEADERS, 1, &block));
            let frames = frames(&rewrite_all(&input).unwrap());
            let headers = decode_stateless(&frames[0].payload);
            assert_eq!(header(&headers, ":authority"), Some(UNIX_AUTHORITY), "{authority:?}");
            assert_eq!(header(&headers, ":path"), Some("/x"));
        }
        for kept in ["localhost", "announcer.ferrolb.local", "127.0.0.1:50051", "[::1]:8080"] {
            let block = loona_hpack::Encoder::new().encode([(&b":authority"[..], kept.as_bytes())]);
            let mut input = PREFACE.to_vec();
            input.extend(frame(HEADERS, END_HEADERS, 1, &block));
            assert_eq!(rewrite_all(&input).unwrap(), input, "{kept:?} passes as it is");
        }
    }

    #[test]
    fn padding_is_dropped_priority_and_continuations_are_kept() {
        let block = loona_hpack::Encoder::new().encode([
            (&b":authority"[..], &b"/a.sock"[..]),
            (b":path", b"/y"),
            (b"x-pad", &[b'v'; 40][..]),
        ]);
        let (head, tail) = block.split_at(10);
        let mut first = vec![3u8]; // pad length
        first.extend([0x80, 0, 0, 1, 200]); // exclusive dependency on stream 1, weight 201
        first.extend(head);
        first.extend([0, 0, 0]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_STREAM | PADDED | PRIORITY, 5, &first));
        input.extend(frame(CONTINUATION, END_HEADERS, 5, tail));
        let frames = frames(&rewrite_all(&input).unwrap());
        assert_eq!(frames.len(), 1);
        assert_eq!((frames[0].flags, frames[0].stream_id), (END_STREAM | PRIORITY | END_HEADERS, 5));
        assert_eq!(frames[0].payload[..PRIORITY_LEN], [0x80, 0, 0, 1, 200]);
        let headers = decode_stateless(&frames[0].payload[PRIORITY_LEN..]);
        assert_eq!(header(&headers, ":authority"), Some(UNIX_AUTHORITY));
        assert_eq!(header(&headers, "x-pad").map(str::len), Some(40));
    }

    #[test]
    fn a_block_longer_than_a_frame_is_cut_into_continuations() {
        let long = vec![b'a'; 40_000];
        let block =
            loona_hpack::Encoder::new().encode([(&b":authority"[..], &b"/s"[..]), (b"x-long", &long[..])]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, 0, 7, &block[..20_000]));
        input.extend(frame(CONTINUATION, END_HEADERS, 7, &block[20_000..]));
        let frames = frames(&rewrite_all(&input).unwrap());
        let kinds: Vec<_> = frames.iter().map(|f| (f.kind, f.flags, f.payload.len() <= MAX_FRAME)).collect();
        assert_eq!(
            kinds,
            vec![(HEADERS, 0, true), (CONTINUATION, 0, true), (CONTINUATION, END_HEADERS, true)]
        );
        let joined: Vec<u8> = frames.iter().flat_map(|f| f.payload.clone()).collect();
        assert_eq!(header(&decode_stateless(&joined), "x-long").map(str::len), Some(40_000));
    }

    #[test]
    fn broken_header_blocks_end_the_connection() {
        let cases: [(Vec<u8>, &str); 4] = [
            (frame(CONTINUATION, END_HEADERS, 1, b"\x82"), "CONTINUATION without a HEADERS"),
            (
                [frame(HEADERS, 0, 1, b"\x82"), frame(0x8, 0, 0, &[0, 0, 0, 1])].concat(),
                "other than CONTINUATION",
            ),
            (
                [frame(HEADERS, 0, 1, b"\x82"), frame(CONTINUATION, END_HEADERS, 3, b"\x84")].concat(),
                "another stream",
            ),
            // Index 70 with an empty dynamic table.
            (frame(HEADERS, END_HEADERS, 1, b"\xc6"), "cannot be decoded"),
        ];
        for (frames, expected) in cases {
            let error = rewrite_all(&[&PREFACE[..], &frames].concat()).unwrap_err();
            assert!(error.to_string().contains(expected), "{error} should say {expected}");
        }
    }

    proptest! {
        /// However the socket cuts the bytes, the same frames come out: the client's bytes when its
        /// first `:authority` is valid, else header blocks that decode without a dynamic table to the
        /// client's headers with `:authority` made valid.
        #[test]
        fn any_split_of_any_requests_gives_the_same_result(
            requests in prop::collection::vec(
                (prop::sample::select(vec!["/run/ferrolb/announcer.sock", "tmp%2Fa.sock", "localhost", "h:1"]),
                 "[a-z]{1,12}", prop::collection::vec(("x-[a-z]{1,8}", "[ -~]{0,300}"), 0..6), any::<bool>()),
                1..6),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut encoder = loona_hpack::Encoder::new();
            let mut input = PREFACE.to_vec();
            let mut expected = Vec::new();
            for (n, (authority, path, extra, end_stream)) in requests.iter().enumerate() {
                let path = format!("/{path}");
                let mut headers: Vec<(&[u8], &[u8])> = vec![(b":path", path.as_bytes()), (b":authority", authority.as_bytes())];
                headers.extend(extra.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
                let stream_id = 2 * n as u32 + 1;
                input.extend(frame(HEADERS, END_HEADERS | if *end_stream { END_STREAM } else { 0 }, stream_id, &encoder.encode(headers.clone())));
                input.extend(frame(0x0, END_STREAM, stream_id, path.as_bytes()));
                let fixed = if is_valid_authority(authority.as_bytes()) { *authority } else { UNIX_AUTHORITY };
                let mut want: Vec<(String, String)> = vec![(":path".into(), path.clone()), (":authority".into(), fixed.into())];
                want.extend(extra.iter().cloned());
                expected.push(want);
            }
            let whole = rewrite_all(&input).unwrap();

            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len())).collect();
            cuts.sort_unstable();
            let mut rewriter = AuthorityRewriter::new();
            let (mut pending, mut output, mut from) = (BytesMut::new(), BytesMut::new(), 0);
            for cut in cuts.into_iter().chain([input.len()]) {
                pending.extend_from_slice(&input[from..cut]);
                from = cut;
                rewriter.rewrite(&mut pending, &mut output).unwrap();
            }
            prop_assert!(pending.is_empty());
            prop_assert_eq!(&output[..], &whole[..]);
            if is_valid_authority(requests[0].0.as_bytes()) {
                prop_assert_eq!(&whole[..], &input[..], "the first request decided: pass through");
            } else {
                let blocks: Vec<_> = frames(&whole).into_iter().filter(|f| f.kind == HEADERS).map(|f| decode_stateless(&f.payload)).collect();
                prop_assert_eq!(blocks, expected);
            }
        }
    }
}
