//! Which URIs an unsafe request invalidates (RFC 9111 §4.4): resolving `Location` and
//! `Content-Location` against the request and keeping only those on the same host.

/// The path and query of `target` (a `Location` or `Content-Location` value) when it
/// is on `host`, the request's host: an absolute URI (`http` or `https`) or a
/// network-path reference with that host (the port is not compared), an absolute path,
/// or a relative path resolved against `base`, the request's path. `None` for another
/// host or a value that is not a usable URI reference.
pub(crate) fn same_host_target(host: &str, base: &str, target: &str) -> Option<String> {
    let target = target.trim();
    let target = target.split('#').next().unwrap_or("");
    if target.is_empty() {
        return None;
    }
    let lower = target.to_ascii_lowercase();
    let after_scheme = ["http://", "https://"]
        .iter()
        .find_map(|s| lower.starts_with(s).then(|| &target[s.len()..]))
        .or_else(|| target.strip_prefix("//"));
    if let Some(rest) = after_scheme {
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let authority = authority.rsplit('@').next().unwrap_or("");
        if !host_of(authority).eq_ignore_ascii_case(host_of(host)) {
            return None;
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        return Some(path);
    }
    if target.contains("://") || target.contains(':') && !target.starts_with(['/', '.', '?']) {
        // Another scheme (`mailto:`, `urn:`...).
        return None;
    }
    if target.starts_with('/') {
        return Some(target.to_string());
    }
    let base_path = base.split('?').next().unwrap_or("/");
    if let Some(query) = target.strip_prefix('?') {
        return Some(format!("{base_path}?{query}"));
    }
    let dir = match base_path.rfind('/') {
        Some(i) => &base_path[..=i],
        None => "/",
    };
    Some(format!("{dir}{target}"))
}

/// The host part of `host[:port]` or `[v6]:port`.
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split(']').next().map_or(authority, |h| &h[1..]);
    }
    authority.split(':').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_host_targets_are_resolved() {
        let t = |target| same_host_target("example.com:8080", "/a/b?x=1", target);
        assert_eq!(t("/c?y=2").as_deref(), Some("/c?y=2"));
        assert_eq!(t("c").as_deref(), Some("/a/c"));
        assert_eq!(t("?z").as_deref(), Some("/a/b?z"));
        assert_eq!(t("http://Example.COM/d").as_deref(), Some("/d"));
        assert_eq!(t("https://example.com:443/e#frag").as_deref(), Some("/e"));
        assert_eq!(t("//example.com").as_deref(), Some("/"));
        assert_eq!(t("http://example.com?q").as_deref(), Some("/?q"));
    }

    #[test]
    fn other_hosts_and_schemes_are_left_alone() {
        let t = |target| same_host_target("example.com", "/a", target);
        assert_eq!(t("http://other.com/a"), None);
        assert_eq!(t("//other.com/a"), None);
        assert_eq!(t("http://example.com.evil.net/a"), None);
        assert_eq!(t("mailto:x@example.com"), None);
        assert_eq!(t(""), None);
        assert_eq!(t("#only-a-fragment"), None);
    }
}
