//! Request policy cost per request: finding the route among 1,000 (indexed by host, and
//! the worst case of 1,000 host-less prefixes tried in turn), and applying five header
//! edits and a rewrite.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use http::header::HeaderName;
use http::{HeaderValue, Method};
use pingora_proxy::modules::{
    Expander, HeaderRules, PathRewrite, Regex, RequestVars, RouteMatcher, RouteTable,
};
use pingora_proxy::RequestHeader;

fn request(host: &str, path: &str) -> RequestHeader {
    let mut req = RequestHeader::new(Method::GET, path.parse().expect("uri"));
    req.headers
        .insert("host", HeaderValue::from_str(host).expect("host"));
    req.headers
        .insert("user-agent", HeaderValue::from_static("bench/1"));
    req
}

/// 100 hosts with 10 path prefixes each, then a catch-all.
fn by_host() -> RouteTable<usize> {
    let mut routes = Vec::new();
    for h in 0..100 {
        for p in 0..10 {
            let m = RouteMatcher::any()
                .host(&format!("site{h}.example.com"))
                .path_prefix(&format!("/section{p}/"));
            routes.push((m, routes.len()));
        }
    }
    routes.push((RouteMatcher::any(), routes.len()));
    RouteTable::new(routes)
}

/// 1,000 host-less prefixes: every one is tried for a request matching the last.
fn prefixes_only() -> RouteTable<usize> {
    let routes = (0..1000)
        .map(|i| (RouteMatcher::any().path_prefix(&format!("/p{i}/")), i))
        .collect();
    RouteTable::new(routes)
}

/// 999 prefixes and one regex route with methods and a header, last.
fn mixed() -> RouteTable<usize> {
    let mut routes: Vec<(RouteMatcher, usize)> = (0..999)
        .map(|i| (RouteMatcher::any().path_prefix(&format!("/p{i}/")), i))
        .collect();
    routes.push((
        RouteMatcher::any()
            .path_regex(Regex::new("^/users/([0-9]+)$").expect("regex"))
            .methods([Method::GET]),
        999,
    ));
    RouteTable::new(routes)
}

fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_match");
    let table = by_host();
    let hit = request("SITE99.example.com:8080", "/section9/page");
    group.bench_function("1000_routes_by_host/last", |b| {
        b.iter(|| table.find(black_box(&hit)))
    });
    let miss = request("unknown.example.org", "/x");
    group.bench_function("1000_routes_by_host/unknown_host", |b| {
        b.iter(|| table.find(black_box(&miss)))
    });
    let table = prefixes_only();
    let last = request("h", "/p999/x");
    group.bench_function("1000_prefixes/last", |b| {
        b.iter(|| table.find(black_box(&last)))
    });
    let first = request("h", "/p0/x");
    group.bench_function("1000_prefixes/first", |b| {
        b.iter(|| table.find(black_box(&first)))
    });
    let table = mixed();
    let user = request("h", "/users/42");
    group.bench_function("1000_routes/regex_last", |b| {
        b.iter(|| table.find(black_box(&user)))
    });
    group.finish();
}

fn edits(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_policy");
    let name = |s: &'static str| HeaderName::from_static(s);
    let expand = |s: &str| Expander::parse(s).expect("template");
    let rules = HeaderRules::new()
        .remove(name("x-internal"))
        .set(name("x-env"), expand("prod"))
        .set(name("x-forwarded-proto"), expand("https"))
        .add(name("x-via"), expand("$host"))
        .add(name("x-agent"), expand("$http_user_agent"));
    let rewrite = PathRewrite::StripPrefix("/api".into());
    let original = request("web.example.com", "/api/users?page=2");
    group.bench_function("five_header_edits_and_a_rewrite", |b| {
        b.iter(|| {
            let mut up = original.clone();
            let vars = RequestVars::new(&original);
            rewrite.apply(&mut up, &vars).expect("rewrite");
            rules.apply(&mut up.headers, &vars);
            up
        })
    });
    group.bench_function("baseline_clone_only", |b| {
        b.iter(|| black_box(&original).clone())
    });
    group.finish();
}

criterion_group!(benches, matching, edits);
criterion_main!(benches);
