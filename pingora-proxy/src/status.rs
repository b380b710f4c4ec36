//! Which HTTP status a failure is answered with.

use http::StatusCode;
use pingora_core::{Error, ErrorKind, Side};

/// The status for an error: the status of an [`ErrorKind::HttpStatus`] error (one a
/// phase raised, or an upstream status the retry rule lists), 400 malformed request,
/// 431 head too large, 408 slow client, 413 request body too large, 501 an unsupported
/// transfer coding, 502 upstream refused/reset/garbled, 503 no upstream, 504 upstream
/// timeout, 500 otherwise (a [`ErrorKind::Custom`] error included, unless its side is
/// upstream: 502).
pub fn for_error(e: &Error) -> StatusCode {
    match (e.side, e.kind) {
        (_, ErrorKind::HttpStatus(status)) => status,
        (Side::Downstream, ErrorKind::HeadTooLarge) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        (Side::Downstream, ErrorKind::InvalidHead | ErrorKind::InvalidBody) => {
            StatusCode::BAD_REQUEST
        }
        (Side::Downstream, ErrorKind::ReadTimeout) => StatusCode::REQUEST_TIMEOUT,
        (_, ErrorKind::BodyTooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
        (Side::Downstream, ErrorKind::NotImplemented) => StatusCode::NOT_IMPLEMENTED,
        (_, ErrorKind::NoUpstream) => StatusCode::SERVICE_UNAVAILABLE,
        (
            Side::Upstream,
            ErrorKind::ConnectTimeout | ErrorKind::ReadTimeout | ErrorKind::WriteTimeout,
        ) => StatusCode::GATEWAY_TIMEOUT,
        (Side::Upstream, _) => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Whether the client's connection is sound after `error`, so that the error's answer
/// need not close it: a status raised on purpose ([`ErrorKind::HttpStatus`]), or a
/// failure on the upstream side (including finding no upstream). The connection still
/// closes when the request body was not read to its end.
pub fn keeps_client_connection(error: &Error) -> bool {
    error.http_status_code().is_some()
        || error.side == Side::Upstream
        || error.kind == ErrorKind::NoUpstream
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_each_failure() {
        let e = |side, kind| Error::new(kind, side, "t");
        assert_eq!(for_error(&e(Side::Downstream, ErrorKind::InvalidHead)), 400);
        assert_eq!(
            for_error(&e(Side::Downstream, ErrorKind::HeadTooLarge)),
            431
        );
        assert_eq!(
            for_error(&e(Side::Upstream, ErrorKind::ConnectRefused)),
            502
        );
        assert_eq!(for_error(&e(Side::Upstream, ErrorKind::InvalidHead)), 502);
        assert_eq!(
            for_error(&e(Side::Upstream, ErrorKind::ConnectionReset)),
            502
        );
        assert_eq!(for_error(&e(Side::Upstream, ErrorKind::ReadTimeout)), 504);
        assert_eq!(
            for_error(&e(Side::Upstream, ErrorKind::ConnectTimeout)),
            504
        );
        assert_eq!(for_error(&e(Side::Internal, ErrorKind::NoUpstream)), 503);
        assert_eq!(
            for_error(&e(Side::Downstream, ErrorKind::BodyTooLarge)),
            413
        );
        assert_eq!(for_error(&e(Side::Internal, ErrorKind::Internal)), 500);
        assert_eq!(
            for_error(&e(Side::Downstream, ErrorKind::NotImplemented)),
            501
        );
        assert_eq!(
            for_error(&Error::http_status(StatusCode::FORBIDDEN, "no")),
            403
        );
        assert_eq!(
            for_error(&e(
                Side::Upstream,
                ErrorKind::HttpStatus(StatusCode::SERVICE_UNAVAILABLE)
            )),
            503
        );
        assert_eq!(for_error(&Error::custom("quota", "over")), 500);
        assert_eq!(for_error(&e(Side::Upstream, ErrorKind::Custom("odd"))), 502);
    }

    #[test]
    fn upstream_failures_keep_the_client_connection() {
        let e = |side, kind| Error::new(kind, side, "t");
        assert!(keeps_client_connection(&e(
            Side::Upstream,
            ErrorKind::ConnectRefused
        )));
        assert!(keeps_client_connection(&e(
            Side::Upstream,
            ErrorKind::ReadTimeout
        )));
        assert!(keeps_client_connection(&e(
            Side::Internal,
            ErrorKind::NoUpstream
        )));
        assert!(!keeps_client_connection(&e(
            Side::Downstream,
            ErrorKind::InvalidBody
        )));
        assert!(!keeps_client_connection(&e(
            Side::Internal,
            ErrorKind::Internal
        )));
    }
}
