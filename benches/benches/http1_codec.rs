//! Benchmarks of the HTTP/1 codec on its hot path: parsing a browser-like request
//! head, writing it back, and decoding a chunked body as it arrives in socket reads.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pingora_benches::BROWSER_REQUEST;
use pingora_core::protocols::http::v1::{
    parse_request, write_request_head, BodyDecoder, BodyEncoder, BodyEvent, BodyFraming, HeadLimits,
};

/// Body size for the chunked decode benchmark.
const BODY_LEN: usize = 100 * 1024;
/// Size of each simulated socket read.
const READ_LEN: usize = 16 * 1024;
/// Size of each chunk on the wire (what a typical upstream writes).
const CHUNK_LEN: usize = 4096;

fn parse_head(c: &mut Criterion) {
    let limits = HeadLimits::default();
    let mut group = c.benchmark_group("http1_head");
    group.throughput(Throughput::Bytes(BROWSER_REQUEST.len() as u64));
    group.bench_function("parse_request", |b| {
        b.iter_batched(
            || BytesMut::from(BROWSER_REQUEST),
            |mut buf| black_box(parse_request(&mut buf, &limits)),
            BatchSize::SmallInput,
        )
    });
    let req = parse_request(&mut BytesMut::from(BROWSER_REQUEST), &limits)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("benchmark request does not parse"));
    let mut out = BytesMut::with_capacity(1024);
    group.bench_function("write_request_head", |b| {
        b.iter(|| {
            out.clear();
            write_request_head(black_box(&req), &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

/// The chunked encoding of a `BODY_LEN` body, in `CHUNK_LEN` chunks.
fn chunked_wire() -> Vec<u8> {
    let body = vec![b'x'; BODY_LEN];
    let mut encoder = BodyEncoder::new(BodyFraming::Chunked);
    let mut wire = BytesMut::new();
    for chunk in body.chunks(CHUNK_LEN) {
        let frame = encoder
            .frame_data(chunk.len())
            .unwrap_or_else(|e| panic!("{e}"));
        wire.extend_from_slice(frame.prefix());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(frame.suffix());
    }
    encoder
        .finish(None, &mut wire)
        .unwrap_or_else(|e| panic!("{e}"));
    wire.to_vec()
}

/// Decodes `wire` fed in `READ_LEN` reads into one reused buffer; returns the body size.
fn decode_chunked(wire: &[u8], buf: &mut BytesMut) -> usize {
    let mut decoder = BodyDecoder::new(BodyFraming::Chunked);
    let mut reads = wire.chunks(READ_LEN);
    let mut body = 0;
    loop {
        match decoder.decode(buf) {
            Ok(Some(BodyEvent::Data(data))) => body += black_box(data).len(),
            Ok(Some(BodyEvent::Trailers(_))) => {}
            Ok(Some(BodyEvent::End)) => return body,
            Ok(None) => match reads.next() {
                Some(read) => buf.extend_from_slice(read),
                None => panic!("chunked body cut short"),
            },
            Err(e) => panic!("{e}"),
        }
    }
}

fn chunked_body(c: &mut Criterion) {
    let wire = chunked_wire();
    let mut group = c.benchmark_group("http1_body");
    group.throughput(Throughput::Bytes(BODY_LEN as u64));
    let mut buf = BytesMut::with_capacity(2 * READ_LEN);
    group.bench_function("decode_chunked_100k_in_16k_reads", |b| {
        b.iter(|| {
            let n = decode_chunked(&wire, &mut buf);
            assert_eq!(n, BODY_LEN);
        })
    });
    group.finish();
}

criterion_group!(benches, parse_head, chunked_body);
criterion_main!(benches);
