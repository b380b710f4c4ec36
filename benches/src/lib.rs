//! Criterion benchmarks live in `benches/`; this library holds what they share: the
//! request traces and the baseline cache policy of the cache-policy bench, and a
//! typical request head.

pub mod cache_traces;
pub mod sharded_lru;

/// A typical browser request head, about 400 bytes (the HTTP/1 codec and proxy header
/// benches).
pub const BROWSER_REQUEST: &[u8] = b"GET /assets/app.js?v=20240101 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: */*\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/\r\n\
Connection: keep-alive\r\n\
Cookie: session=4f2a9c1e7b3d; theme=dark\r\n\
Sec-Fetch-Dest: script\r\n\
Sec-Fetch-Mode: no-cors\r\n\
Sec-Fetch-Site: same-origin\r\n\
\r\n";
