//! Reading the PROXY header on accepted connections, over real sockets on 127.0.0.1:
//! only the header's bytes are taken (what follows reaches HTTP or TLS untouched),
//! headers split over several writes are waited for, and each refusal (missing,
//! malformed, untrusted, timeout, closed) closes the connection and is counted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora_core::protocols::proxy_protocol::{
    encode, HeaderOutcome, ProxyAddresses, ProxyProtocolOptions, ProxyVersion, RejectReason,
    V2_SIGNATURE,
};
use pingora_core::protocols::{ClientAddr, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// Bound on any one step: nothing here should come near it.
const T: Duration = Duration::from_secs(10);

/// A connected client and the accepted server side.
async fn pair() -> (TcpStream, Stream, ClientAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (tcp, peer) = listener.accept().await.unwrap();
    (client, Stream::Tcp(tcp), ClientAddr::Tcp(peer))
}

fn options(required: bool, timeout_ms: u64) -> ProxyProtocolOptions {
    ProxyProtocolOptions {
        timeout: Duration::from_millis(timeout_ms),
        ..ProxyProtocolOptions::new(required)
    }
}

async fn accept(
    opts: &ProxyProtocolOptions,
    stream: &mut Stream,
    peer: &ClientAddr,
) -> HeaderOutcome {
    timeout(T, opts.accept(stream, peer))
        .await
        .expect("accept is bounded")
}

/// Reads exactly `n` bytes of what follows the header on the server side.
async fn rest(stream: &mut Stream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    timeout(T, stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf
}

fn ends(source: &str, destination: &str) -> ProxyAddresses {
    ProxyAddresses {
        source: source.parse().unwrap(),
        destination: destination.parse().unwrap(),
    }
}

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test]
async fn v1_header_and_request_in_one_write() {
    let (mut client, mut stream, peer) = pair().await;
    let mut wire = encode(
        ProxyVersion::V1,
        Some(ends("192.0.2.1:1234", "10.0.0.1:80")),
    );
    wire.extend_from_slice(REQUEST);
    client.write_all(&wire).await.unwrap();
    let opts = options(true, 5000);
    match accept(&opts, &mut stream, &peer).await {
        HeaderOutcome::Header(h) => {
            assert_eq!(h.source(), Some("192.0.2.1:1234".parse().unwrap()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rest(&mut stream, REQUEST.len()).await, REQUEST);
}

#[tokio::test]
async fn v2_header_split_across_writes_is_waited_for() {
    let (mut client, mut stream, peer) = pair().await;
    let mut wire = encode(
        ProxyVersion::V2,
        Some(ends("[2001:db8::7]:5555", "[::1]:443")),
    );
    wire.extend_from_slice(b"\x16\x03\x01");
    let opts = options(true, 5000);
    let writer = tokio::spawn(async move {
        // Mid-signature, then mid-addresses, then the rest with the next protocol's bytes.
        for piece in [&wire[..5], &wire[5..30], &wire[30..]] {
            client.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client
    });
    match accept(&opts, &mut stream, &peer).await {
        HeaderOutcome::Header(h) => {
            assert_eq!(h.source(), Some("[2001:db8::7]:5555".parse().unwrap()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rest(&mut stream, 3).await, b"\x16\x03\x01");
    drop(writer.await.unwrap());
}

#[tokio::test]
async fn long_v2_header_with_tlvs_in_one_write() {
    let (mut client, mut stream, peer) = pair().await;
    let mut body = vec![127, 0, 0, 9, 127, 0, 0, 1, 0x30, 0x39, 0, 80];
    // An authority and a 2,000-byte application TLV: far beyond the first peek.
    body.extend_from_slice(&[0x02, 0, 11]);
    body.extend_from_slice(b"example.com");
    body.extend_from_slice(&[0xe0, 0x07, 0xd0]);
    body.extend_from_slice(&[b'z'; 2000]);
    let mut wire = V2_SIGNATURE.to_vec();
    wire.extend_from_slice(&[0x21, 0x11]);
    wire.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    wire.extend_from_slice(&body);
    wire.extend_from_slice(REQUEST);
    client.write_all(&wire).await.unwrap();
    let opts = options(false, 5000);
    match accept(&opts, &mut stream, &peer).await {
        HeaderOutcome::Header(h) => {
            assert_eq!(h.source(), Some("127.0.0.9:12345".parse().unwrap()));
            assert_eq!(h.authority(), Some("example.com"));
            assert_eq!(h.tlv(0xe0).map(<[u8]>::len), Some(2000));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rest(&mut stream, REQUEST.len()).await, REQUEST);
}

#[tokio::test]
async fn optional_passes_a_connection_without_header_untouched() {
    let (mut client, mut stream, peer) = pair().await;
    let opts = options(false, 5000);
    let writer = tokio::spawn(async move {
        // "P" alone could still become "PROXY ": the listener waits for the next byte.
        client.write_all(b"P").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.write_all(b"OST / HTTP/1.1\r\n").await.unwrap();
        client
    });
    assert!(matches!(
        accept(&opts, &mut stream, &peer).await,
        HeaderOutcome::NoHeader
    ));
    assert_eq!(rest(&mut stream, 17).await, b"POST / HTTP/1.1\r\n");
    assert_eq!(opts.rejects.get(RejectReason::Missing), 0);
    drop(writer.await.unwrap());
}

#[tokio::test]
async fn on_refuses_a_connection_without_header() {
    let (mut client, mut stream, peer) = pair().await;
    client.write_all(REQUEST).await.unwrap();
    let opts = options(true, 5000);
    assert!(matches!(
        accept(&opts, &mut stream, &peer).await,
        HeaderOutcome::Refused(Some(RejectReason::Missing))
    ));
    assert_eq!(opts.rejects.get(RejectReason::Missing), 1);
}

#[tokio::test]
async fn untrusted_senders_are_refused() {
    let elsewhere: Arc<[pingora_config::IpNet]> = vec!["10.0.0.0/8".parse().unwrap()].into();
    let trusting_elsewhere = |required| ProxyProtocolOptions {
        trusted: Some(Arc::clone(&elsewhere)),
        ..options(required, 5000)
    };
    let header = encode(ProxyVersion::V1, Some(ends("192.0.2.1:1", "10.0.0.1:80")));

    // `on`: refused before anything is read.
    let (_client, mut stream, peer) = pair().await;
    let on = trusting_elsewhere(true);
    assert!(matches!(
        accept(&on, &mut stream, &peer).await,
        HeaderOutcome::Refused(Some(RejectReason::Untrusted))
    ));
    // `optional`: a header is refused, no header is fine.
    let optional = trusting_elsewhere(false);
    let (mut client, mut stream, peer) = pair().await;
    client.write_all(&header).await.unwrap();
    assert!(matches!(
        accept(&optional, &mut stream, &peer).await,
        HeaderOutcome::Refused(Some(RejectReason::Untrusted))
    ));
    let (mut client, mut stream, peer) = pair().await;
    client.write_all(REQUEST).await.unwrap();
    assert!(matches!(
        accept(&optional, &mut stream, &peer).await,
        HeaderOutcome::NoHeader
    ));
    assert_eq!(optional.rejects.get(RejectReason::Untrusted), 1);

    // Trusted: believed.
    let loopback: Arc<[pingora_config::IpNet]> = vec!["127.0.0.0/8".parse().unwrap()].into();
    let trusting = ProxyProtocolOptions {
        trusted: Some(loopback),
        ..options(true, 5000)
    };
    let (mut client, mut stream, peer) = pair().await;
    client.write_all(&header).await.unwrap();
    assert!(matches!(
        accept(&trusting, &mut stream, &peer).await,
        HeaderOutcome::Header(_)
    ));
}

#[tokio::test]
async fn a_truncated_header_is_refused_when_the_timeout_passes() {
    let (mut client, mut stream, peer) = pair().await;
    client.write_all(b"PROXY TCP4 192.0.2.1 ").await.unwrap();
    let opts = options(false, 300);
    let started = Instant::now();
    assert!(matches!(
        accept(&opts, &mut stream, &peer).await,
        HeaderOutcome::Refused(Some(RejectReason::Timeout))
    ));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(opts.rejects.get(RejectReason::Timeout), 1);
    drop(client);
}

#[tokio::test]
async fn malformed_headers_are_refused_at_once() {
    let long_line = {
        let mut l = b"PROXY TCP4 ".to_vec();
        l.resize(300, b'1');
        l
    };
    let mut bad_family = V2_SIGNATURE.to_vec();
    bad_family.extend_from_slice(&[0x21, 0x51, 0, 0]);
    let mut too_long = V2_SIGNATURE.to_vec();
    too_long.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    for wire in [
        b"PROXY TCP4 1.2.3 4.5.6.7 1 2\r\n".to_vec(),
        long_line,
        bad_family,
        too_long,
    ] {
        let (mut client, mut stream, peer) = pair().await;
        client.write_all(&wire).await.unwrap();
        // A long timeout: the refusal must not wait for it.
        let opts = options(false, 60_000);
        assert!(matches!(
            accept(&opts, &mut stream, &peer).await,
            HeaderOutcome::Refused(Some(RejectReason::Malformed))
        ));
        assert_eq!(opts.rejects.get(RejectReason::Malformed), 1);
    }
}

#[tokio::test]
async fn closing_within_the_header_or_before_anything() {
    let (mut client, mut stream, peer) = pair().await;
    client.write_all(b"PROXY TCP6 ").await.unwrap();
    drop(client);
    let opts = options(true, 60_000);
    assert!(matches!(
        accept(&opts, &mut stream, &peer).await,
        HeaderOutcome::Refused(Some(RejectReason::Closed))
    ));
    // A connection closed before sending a byte (a TCP health check) is not a refusal.
    let (client, mut stream, peer) = pair().await;
    drop(client);
    assert!(matches!(
        accept(&opts, &mut stream, &peer).await,
        HeaderOutcome::Refused(None)
    ));
    assert_eq!(opts.rejects.get(RejectReason::Closed), 1);
    assert_eq!(opts.rejects.get(RejectReason::Missing), 0);
}

#[tokio::test]
async fn unix_socket_connections_too() {
    let dir = test_support::TestDir::new().unwrap();
    let path = dir.path().join("s.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let mut client = tokio::net::UnixStream::connect(&path).await.unwrap();
    let (unix, _) = listener.accept().await.unwrap();
    let mut stream = Stream::Unix(unix);
    let mut wire = encode(
        ProxyVersion::V2,
        Some(ends("198.51.100.3:999", "10.0.0.1:80")),
    );
    wire.extend_from_slice(REQUEST);
    client.write_all(&wire).await.unwrap();
    let opts = options(true, 5000);
    match accept(&opts, &mut stream, &ClientAddr::Unix).await {
        HeaderOutcome::Header(h) => {
            let source: SocketAddr = "198.51.100.3:999".parse().unwrap();
            assert_eq!(h.source(), Some(source));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rest(&mut stream, REQUEST.len()).await, REQUEST);
}
