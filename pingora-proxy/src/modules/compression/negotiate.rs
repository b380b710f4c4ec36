//! Choosing a content coding from `Accept-Encoding` (RFC 9110 §12.5.3) and the proxy's
//! preference, without allocating.

use http::header::{HeaderMap, ACCEPT_ENCODING};

use super::Encoding;

/// A q-value in thousandths (`q=0.5` is 500, no `q` is 1000).
type Quality = u16;

/// The encoding to use among `preference` for a request with `headers`: the one the
/// client accepts with the highest q-value (`*` standing for every coding it does not
/// name; `q=0` refusing), ties going to the earlier in `preference`. `None` when the
/// client accepts none of them (or sends no `Accept-Encoding`): the body goes as it is.
pub fn negotiate(headers: &HeaderMap, preference: &[Encoding]) -> Option<Encoding> {
    // Per encoding (indexed by `slot`): the q it was named with, if named.
    let mut named: [Option<Quality>; 3] = [None; 3];
    let mut star: Option<Quality> = None;
    for value in headers.get_all(ACCEPT_ENCODING) {
        for element in value.as_bytes().split(|b| *b == b',') {
            let Some((coding, q)) = parse_element(element) else {
                continue;
            };
            let slot = if coding == b"*" {
                &mut star
            } else {
                match coding_slot(coding) {
                    Some(i) => &mut named[i],
                    None => continue,
                }
            };
            // Named twice: the more generous one counts.
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
    }
    let mut best: Option<(Encoding, Quality)> = None;
    for &encoding in preference {
        let q = named[slot(encoding)].or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((encoding, q));
        }
    }
    best.map(|(e, _)| e)
}

fn slot(e: Encoding) -> usize {
    match e {
        Encoding::Zstd => 0,
        Encoding::Br => 1,
        Encoding::Gzip => 2,
    }
}

/// The slot of a coding name the proxy can produce (`x-gzip` is `gzip`).
fn coding_slot(name: &[u8]) -> Option<usize> {
    if name.eq_ignore_ascii_case(b"zstd") {
        Some(0)
    } else if name.eq_ignore_ascii_case(b"br") {
        Some(1)
    } else if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
        Some(2)
    } else {
        None
    }
}

/// One list element: `coding *( OWS ";" OWS name=value )`. `None` for an empty or
/// malformed element (it is ignored).
fn parse_element(element: &[u8]) -> Option<(&[u8], Quality)> {
    let mut parts = element.split(|b| *b == b';');
    let coding = trim(parts.next()?);
    if coding.is_empty() {
        return None;
    }
    let mut q = 1000;
    for param in parts {
        let param = trim(param);
        let eq = param.iter().position(|b| *b == b'=')?;
        let (name, value) = (trim(&param[..eq]), trim(&param[eq + 1..]));
        if name.eq_ignore_ascii_case(b"q") {
            q = parse_qvalue(value)?;
        }
    }
    Some((coding, q))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_qvalue(v: &[u8]) -> Option<Quality> {
    let (int, frac) = match v.iter().position(|b| *b == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Quality = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| Quality::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const ALL: [Encoding; 3] = [Encoding::Zstd, Encoding::Br, Encoding::Gzip];

    fn pick(accept: &[&str], preference: &[Encoding]) -> Option<Encoding> {
        let mut h = HeaderMap::new();
        for v in accept {
            h.append(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        negotiate(&h, preference)
    }

    #[test]
    fn no_header_or_nothing_known_is_identity() {
        assert_eq!(pick(&[], &ALL), None);
        assert_eq!(pick(&[""], &ALL), None);
        assert_eq!(pick(&["identity"], &ALL), None);
        assert_eq!(pick(&["deflate, compress"], &ALL), None);
        assert_eq!(pick(&["gzip"], &[Encoding::Br]), None);
    }

    #[test]
    fn equal_q_goes_to_the_configured_order() {
        assert_eq!(
            pick(&["gzip, deflate, br, zstd"], &ALL),
            Some(Encoding::Zstd)
        );
        assert_eq!(
            pick(&["gzip, br"], &[Encoding::Gzip, Encoding::Br]),
            Some(Encoding::Gzip)
        );
        assert_eq!(pick(&["gzip, br"], &ALL), Some(Encoding::Br));
    }

    #[test]
    fn highest_q_wins_over_the_order() {
        assert_eq!(
            pick(&["zstd;q=0.5, gzip;q=0.8"], &ALL),
            Some(Encoding::Gzip)
        );
        assert_eq!(pick(&["br;q=0.9, gzip"], &ALL), Some(Encoding::Gzip));
        assert_eq!(pick(&["br;q=1.0, gzip;q=0.999"], &ALL), Some(Encoding::Br));
        assert_eq!(
            pick(&["zstd ; q = 0.1 , br;Q=0.2"], &ALL),
            Some(Encoding::Br)
        );
    }

    #[test]
    fn q_zero_refuses() {
        assert_eq!(pick(&["gzip;q=0, br;q=0"], &ALL), None);
        assert_eq!(pick(&["gzip;q=0.000"], &ALL), None);
        assert_eq!(pick(&["*, zstd;q=0"], &ALL), Some(Encoding::Br));
    }

    #[test]
    fn star_stands_for_every_coding_not_named() {
        assert_eq!(pick(&["*"], &ALL), Some(Encoding::Zstd));
        assert_eq!(pick(&["*;q=0.5, gzip"], &ALL), Some(Encoding::Gzip));
        assert_eq!(pick(&["*;q=0.5, gzip;q=0.4"], &ALL), Some(Encoding::Zstd));
        assert_eq!(pick(&["*;q=0"], &ALL), None);
        assert_eq!(pick(&["br;q=0.3, *;q=0"], &ALL), Some(Encoding::Br));
    }

    #[test]
    fn several_fields_and_aliases() {
        assert_eq!(pick(&["br;q=0.1", "gzip"], &ALL), Some(Encoding::Gzip));
        assert_eq!(pick(&["X-GZIP"], &ALL), Some(Encoding::Gzip));
        assert_eq!(pick(&["BR"], &ALL), Some(Encoding::Br));
    }

    #[test]
    fn malformed_elements_are_ignored() {
        for bad in [
            "gzip;q=2",
            "gzip;q=1.5",
            "gzip;q=0.1234",
            "gzip;q=",
            "gzip;q=abc",
            "gzip;q",
            "gzip;q=-1",
            ";q=1",
        ] {
            assert_eq!(pick(&[bad], &ALL), None, "{bad}");
        }
        assert_eq!(pick(&["gzip;q=7, br"], &ALL), Some(Encoding::Br));
        // Other parameters do not matter.
        assert_eq!(pick(&["gzip;level=1;q=0.5"], &ALL), Some(Encoding::Gzip));
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_qvalue(b"1"), Some(1000));
        assert_eq!(parse_qvalue(b"1.000"), Some(1000));
        assert_eq!(parse_qvalue(b"1.001"), None);
        assert_eq!(parse_qvalue(b"0.5"), Some(500));
        assert_eq!(parse_qvalue(b"0.05"), Some(50));
        assert_eq!(parse_qvalue(b"0."), Some(0));
        assert_eq!(parse_qvalue(b"0"), Some(0));
        assert_eq!(parse_qvalue(b"00"), None);
    }
}
