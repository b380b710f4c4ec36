//! The crate's error type: a kind, the side it came from, whether a retry may help, and a cause.

use std::fmt;

/// Which side of the proxy an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client talking to us.
    Downstream,
    /// The server we talk to on the client's behalf.
    Upstream,
    /// Neither: our own configuration or internal state.
    Internal,
}

/// What went wrong, as data a caller can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A message head that does not parse or breaks the protocol (answered with 400).
    InvalidHead,
    /// A message head larger than the configured limit (answered with 431).
    HeadTooLarge,
    /// Message body framing is invalid (bad chunk size, conflicting lengths...).
    InvalidBody,
    /// The peer closed the connection before the message was complete.
    ConnectionClosed,
    /// The peer reset the connection.
    ConnectionReset,
    /// A read did not complete in time.
    ReadTimeout,
    /// A write did not complete in time.
    WriteTimeout,
    /// Connecting to an upstream was refused.
    ConnectRefused,
    /// Connecting to an upstream did not complete in time.
    ConnectTimeout,
    /// Any other failure to connect to an upstream.
    ConnectError,
    /// A TLS handshake failed (the context names the cause, such as a certificate
    /// that does not verify).
    TlsHandshake,
    /// TLS settings could not be loaded (unreadable or mismatched certificate and key...).
    TlsConfig,
    /// No upstream peer could be chosen (for example none is healthy).
    NoUpstream,
    /// Binding a listening socket failed.
    BindError,
    /// Any other I/O failure.
    Io,
    /// An internal invariant or usage error.
    Internal,
    /// An HTTP/2 upstream did not process a stream: it reset it with REFUSED_STREAM,
    /// or sent a GOAWAY whose last stream id is below it. The request is safe to retry
    /// (such errors carry `retry == true`).
    H2StreamRefused,
    /// A request body larger than the configured limit (answered with 413).
    BodyTooLarge,
    /// A request uses something this proxy does not implement, such as a transfer
    /// coding other than `chunked` (answered with 501).
    NotImplemented,
    /// A deliberate answer with this status, raised by the application (for example a
    /// proxy phase refusing a request with 403): the client gets exactly this status.
    /// Built with [`Error::http_status`].
    HttpStatus(http::StatusCode),
    /// A failure of the application's own kind, named by it (the name shows in logs
    /// and metrics; keep it short, lowercase, like `"quota_exceeded"`). Built with
    /// [`Error::custom`].
    Custom(&'static str),
}

impl ErrorKind {
    /// A short lowercase name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidHead => "invalid_head",
            ErrorKind::HeadTooLarge => "head_too_large",
            ErrorKind::InvalidBody => "invalid_body",
            ErrorKind::ConnectionClosed => "connection_closed",
            ErrorKind::ConnectionReset => "connection_reset",
            ErrorKind::ReadTimeout => "read_timeout",
            ErrorKind::WriteTimeout => "write_timeout",
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::ConnectError => "connect_error",
            ErrorKind::TlsHandshake => "tls_handshake",
            ErrorKind::TlsConfig => "tls_config",
            ErrorKind::NoUpstream => "no_upstream",
            ErrorKind::BindError => "bind_error",
            ErrorKind::Io => "io",
            ErrorKind::Internal => "internal",
            ErrorKind::H2StreamRefused => "h2_stream_refused",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::NotImplemented => "not_implemented",
            ErrorKind::HttpStatus(_) => "http_status",
            ErrorKind::Custom(name) => name,
        }
    }
}

/// The boxed cause of an [`Error`].
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from pingora-core: a kind, a side, a retry flag, a context message and an optional cause.
#[derive(Debug)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Which side it came from.
    pub side: Side,
    /// Whether trying again (for example on a fresh upstream connection) may succeed.
    pub retry: bool,
    /// What we were doing, for humans.
    pub context: String,
    /// The underlying error, if any.
    pub cause: Option<Cause>,
}

/// Result alias with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an error with no cause.
    pub fn new(kind: ErrorKind, side: Side, context: impl Into<String>) -> Self {
        Error {
            kind,
            side,
            retry: false,
            context: context.into(),
            cause: None,
        }
    }

    /// Builds an error wrapping a cause.
    pub fn because(
        kind: ErrorKind,
        side: Side,
        context: impl Into<String>,
        cause: impl Into<Cause>,
    ) -> Self {
        Error {
            cause: Some(cause.into()),
            ..Error::new(kind, side, context)
        }
    }

    /// An error that answers the client with `status` (kind
    /// [`ErrorKind::HttpStatus`], side [`Side::Internal`]: the application decided it).
    /// `context` says why, for the log.
    pub fn http_status(status: http::StatusCode, context: impl Into<String>) -> Self {
        Error::new(ErrorKind::HttpStatus(status), Side::Internal, context)
    }

    /// An error of the application's own kind `name` (see [`ErrorKind::Custom`]), side
    /// [`Side::Internal`]; set [`Error::side`] when it is about the client or upstream.
    pub fn custom(name: &'static str, context: impl Into<String>) -> Self {
        Error::new(ErrorKind::Custom(name), Side::Internal, context)
    }

    /// The status the application asked the client to be answered with, if this is an
    /// [`ErrorKind::HttpStatus`] error.
    pub fn http_status_code(&self) -> Option<http::StatusCode> {
        match self.kind {
            ErrorKind::HttpStatus(status) => Some(status),
            _ => None,
        }
    }

    /// Marks the error as retryable (or not).
    pub fn with_retry(mut self, retry: bool) -> Self {
        self.retry = retry;
        self
    }

    /// Builds an error from an I/O error, classifying resets, closes and timeouts.
    pub fn from_io(side: Side, context: impl Into<String>, err: std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match err.kind() {
            Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe => {
                ErrorKind::ConnectionReset
            }
            Io::UnexpectedEof => ErrorKind::ConnectionClosed,
            Io::TimedOut => ErrorKind::ReadTimeout,
            Io::ConnectionRefused => ErrorKind::ConnectRefused,
            _ => ErrorKind::Io,
        };
        Error::because(kind, side, context, err)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.side {
            Side::Downstream => "downstream",
            Side::Upstream => "upstream",
            Side::Internal => "internal",
        };
        match self.kind {
            ErrorKind::HttpStatus(status) => write!(f, "http_status {}", status.as_u16())?,
            kind => f.write_str(kind.as_str())?,
        }
        write!(f, " ({side}): {}", self.context)?;
        if let Some(cause) = &self.cause {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_ref()
            .map(|c| c.as_ref() as &(dyn std::error::Error + 'static))
    }
}
