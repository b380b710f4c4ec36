//! [`Redirect`]: answers a request with a redirect to a templated location.

use http::{header, HeaderValue, StatusCode};
use pingora_core::protocols::http::ResponseHeader;
use pingora_core::{Error, ErrorKind, Result, Side};

use super::vars::{Expander, RequestVars};

/// A redirect: `status` (301, 302, 303, 307 or 308) with `Location` rendered from a
/// template, and an empty body.
#[derive(Debug, Clone)]
pub struct Redirect {
    status: StatusCode,
    location: Expander,
}

impl Redirect {
    /// A redirect with `status` to `location`; fails for a status that is not a redirect.
    pub fn new(status: StatusCode, location: Expander) -> Result<Redirect> {
        if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
            return Err(Error::new(
                ErrorKind::Internal,
                Side::Internal,
                format!("{status} is not a redirect status (301, 302, 303, 307, 308)"),
            ));
        }
        Ok(Redirect { status, location })
    }

    /// The status answered.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Whether the location uses `$1`..`$9`.
    pub fn uses_captures(&self) -> bool {
        self.location.uses_captures()
    }

    /// The response head for a request (body: none, `Content-Length: 0`).
    pub fn response(&self, vars: &RequestVars<'_>) -> ResponseHeader {
        let mut resp = ResponseHeader::new(self.status);
        match self.location.header_value(vars) {
            Some(location) => {
                resp.headers.insert(header::LOCATION, location);
            }
            None => log::warn!("redirect: the rendered location is not a header value"),
        }
        resp.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;
    use pingora_core::protocols::http::RequestHeader;

    #[test]
    fn renders_the_location() {
        let r = Redirect::new(
            StatusCode::MOVED_PERMANENTLY,
            Expander::parse("https://$host$request_uri").unwrap(),
        )
        .unwrap();
        let mut req = RequestHeader::new(Method::GET, "/a?b=1".parse().unwrap());
        req.headers
            .insert("host", HeaderValue::from_static("example.com:80"));
        let resp = r.response(&RequestVars::new(&req));
        assert_eq!(resp.status, 301);
        assert_eq!(resp.headers["location"], "https://example.com/a?b=1");
        assert!(Redirect::new(StatusCode::OK, Expander::parse("/").unwrap()).is_err());
    }
}
