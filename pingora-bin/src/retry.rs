//! An upstream's `retry:` section as the proxy's [`RetryRule`].

use std::time::Duration;

use http::StatusCode;
use pingora_config::{RetryConf, RetryOnConf};
use pingora_proxy::{RetryOn, RetryRule};

/// The rule of a `retry:` section (validation has checked its statuses).
pub fn rule(conf: &RetryConf) -> RetryRule {
    let retries = usize::try_from(conf.retries).unwrap_or(usize::MAX);
    let mut rule = RetryRule::new(retries);
    for on in &conf.on {
        let failure = match *on {
            RetryOnConf::ConnectFailure => RetryOn::ConnectFailure,
            RetryOnConf::Timeout => RetryOn::Timeout,
            RetryOnConf::Reset => RetryOn::Reset,
            RetryOnConf::Status(code) => match StatusCode::from_u16(code) {
                Ok(status) => RetryOn::Status(status),
                Err(_) => continue,
            },
        };
        rule = rule.on(failure);
    }
    if let Some(ms) = conf.per_try_timeout_ms {
        rule = rule.per_try_timeout(Duration::from_millis(ms));
    }
    rule
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_condition_is_carried_over() {
        let conf = RetryConf {
            on: vec![
                RetryOnConf::ConnectFailure,
                RetryOnConf::Timeout,
                RetryOnConf::Reset,
                RetryOnConf::Status(503),
            ],
            retries: 2,
            per_try_timeout_ms: Some(1500),
        };
        let rule = rule(&conf);
        assert!(rule.retries_on(RetryOn::ConnectFailure));
        assert!(rule.retries_on(RetryOn::Timeout));
        assert!(rule.retries_on(RetryOn::Reset));
        assert!(rule.retries_on(RetryOn::Status(StatusCode::SERVICE_UNAVAILABLE)));
        assert!(!rule.retries_on(RetryOn::Status(StatusCode::BAD_GATEWAY)));
        assert_eq!(rule.retries(), 2);
        assert_eq!(rule.attempt_timeout(), Some(Duration::from_millis(1500)));
        let only_503 = RetryConf {
            on: vec![RetryOnConf::Status(503)],
            ..RetryConf::default()
        };
        assert!(!super::rule(&only_503).retries_on(RetryOn::ConnectFailure));
    }
}
