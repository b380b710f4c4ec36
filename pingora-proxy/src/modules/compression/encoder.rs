//! One response body's encoder: pieces in, compressed pieces out, each piece flushed
//! so that what came in so far can be decoded by the client at once.

use std::io::Write;

use bytes::buf::Writer;
use bytes::{BufMut, Bytes, BytesMut};

use super::Encoding;

/// The output buffer the encoders write into; its contents are split off as one
/// piece after each input piece.
type Sink = Writer<BytesMut>;

/// Brotli's window: 2^19 bytes (512 KiB) bounds each stream's memory.
const BROTLI_WINDOW_LOG: u32 = 19;
/// Zstandard's window: 2^19 bytes (512 KiB) bounds each stream's memory (level 3
/// would take 2 MiB).
const ZSTD_WINDOW_LOG: u32 = 19;
/// Brotli's internal buffer between the encoder and the sink.
const BROTLI_BUFFER: usize = 4096;

/// A streaming encoder of one of the [`Encoding`]s.
pub(super) enum Encoder {
    Gzip(flate2::write::GzEncoder<Sink>),
    /// `None` once finished (finishing consumes Brotli's writer).
    Br(Option<Box<brotli::CompressorWriter<Sink>>>),
    Zstd(zstd::stream::write::Encoder<'static, Sink>),
}

impl Encoder {
    /// An encoder of `encoding` at `level` (already within the algorithm's range).
    pub(super) fn new(encoding: Encoding, level: u32) -> std::io::Result<Encoder> {
        let sink = BytesMut::new().writer();
        Ok(match encoding {
            Encoding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                sink,
                flate2::Compression::new(level.min(9)),
            )),
            Encoding::Br => Encoder::Br(Some(Box::new(brotli::CompressorWriter::new(
                sink,
                BROTLI_BUFFER,
                level.min(11),
                BROTLI_WINDOW_LOG,
            )))),
            Encoding::Zstd => {
                let level = i32::try_from(level).unwrap_or(3);
                let mut e = zstd::stream::write::Encoder::new(sink, level)?;
                e.window_log(ZSTD_WINDOW_LOG)?;
                Encoder::Zstd(e)
            }
        })
    }

    /// Compresses `input` and flushes: returns every byte the encoder has produced
    /// since the last call (the piece to send).
    pub(super) fn push(&mut self, input: &[u8]) -> std::io::Result<Bytes> {
        match self {
            Encoder::Gzip(e) => {
                e.write_all(input)?;
                e.flush()?;
                Ok(take(e.get_mut()))
            }
            Encoder::Br(Some(e)) => {
                e.write_all(input)?;
                e.flush()?;
                Ok(take(e.get_mut()))
            }
            Encoder::Br(None) => Ok(Bytes::new()),
            Encoder::Zstd(e) => {
                e.write_all(input)?;
                e.flush()?;
                Ok(take(e.get_mut()))
            }
        }
    }

    /// Ends the stream: returns what is left to send (the trailer).
    pub(super) fn finish(&mut self) -> std::io::Result<Bytes> {
        match self {
            Encoder::Gzip(e) => {
                e.try_finish()?;
                Ok(take(e.get_mut()))
            }
            Encoder::Br(e) => Ok(match e.take() {
                Some(e) => e.into_inner().into_inner().freeze(),
                None => Bytes::new(),
            }),
            Encoder::Zstd(e) => {
                e.do_finish()?;
                Ok(take(e.get_mut()))
            }
        }
    }
}

/// Splits off what the sink holds.
fn take(sink: &mut Sink) -> Bytes {
    sink.get_mut().split().freeze()
}
