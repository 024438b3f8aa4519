//! The routing table: which path is which route, with its allowed
//! methods, metrics label and body limit.

use crate::http::compat;
use crate::http::config::BodyKind;
use crate::http::metrics::RouteId;
use crate::http::params::decode_key;
use crate::http::percent::{decode_path, form_value, FormPairs};
use crate::http::request::Method;
use crate::http::response::Response;

pub(crate) const GET_HEAD: &str = "GET, HEAD";

/// A matched route with its decoded path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Kv(Vec<u8>),
    KvScan,
    Ping,
    Status,
    Metrics,
    Digest,
    AdminCompact,
    AdminMembers,
    AdminBackup,
    Txn,
    Watch(Vec<u8>),
    Compat(compat::Route),
    /// `/`: the status page.
    Page,
    /// `POST /ui/token`: the status page's read pass.
    ReadPass,
}

pub(crate) fn match_path(path: &str) -> Option<Result<(Route, &'static str), String>> {
    let fixed = match path {
        "/kv" => Some(Route::KvScan),
        "/ping" => Some(Route::Ping),
        "/status" => Some(Route::Status),
        "/metrics" => Some(Route::Metrics),
        "/digest" => Some(Route::Digest),
        "/" => Some(Route::Page),
        _ => None,
    };
    if let Some(route) = fixed {
        return Some(Ok((route, GET_HEAD)));
    }
    if path == "/admin/backup" {
        return Some(Ok((Route::AdminBackup, GET_HEAD)));
    }
    if path == "/admin/compact" {
        return Some(Ok((Route::AdminCompact, "POST")));
    }
    if path == "/ui/token" {
        return Some(Ok((Route::ReadPass, "POST")));
    }
    if path == "/txn" {
        return Some(Ok((Route::Txn, "POST")));
    }
    if let Some(encoded) = path.strip_prefix("/watch/") {
        let prefix = decode_path(encoded.as_bytes()).map_err(|e| format!("prefix: {e}"));
        return Some(prefix.map(|prefix| (Route::Watch(prefix), GET_HEAD)));
    }
    if path == "/admin/members" {
        return Some(Ok((Route::AdminMembers, "GET, HEAD, POST")));
    }
    if let Some(encoded) = path.strip_prefix("/kv/") {
        let key = decode_key(encoded, "/kv/{key}");
        return Some(key.map(|key| (Route::Kv(key), "GET, HEAD, PUT, DELETE")));
    }
    compat::match_path(path).map(|found| found.map(|(route, allow)| (Route::Compat(route), allow)))
}

pub(crate) fn route_id(route: &Route, method: &Method, query: &FormPairs) -> RouteId {
    match route {
        Route::Kv(_) => match method {
            Method::Put => RouteId::KvPut,
            Method::Delete => RouteId::KvDelete,
            _ if form_value(query, "history").is_some() => RouteId::KvHistory,
            _ => RouteId::KvGet,
        },
        Route::KvScan => RouteId::KvScan,
        Route::Ping => RouteId::Ping,
        Route::Status => RouteId::Status,
        Route::Metrics => RouteId::Metrics,
        Route::Digest => RouteId::Digest,
        Route::AdminCompact => RouteId::AdminCompact,
        Route::AdminMembers => RouteId::AdminMembers,
        Route::AdminBackup => RouteId::AdminBackup,
        Route::Txn => RouteId::Txn,
        Route::Watch(_) => RouteId::Watch,
        Route::Compat(route) => compat::route_id(route, method),
        Route::Page => RouteId::Page,
        Route::ReadPass => RouteId::ReadPass,
    }
}

pub(crate) fn body_kind(route: &Route, method: &Method) -> BodyKind {
    match route {
        Route::Kv(_) if *method == Method::Put => BodyKind::Value,
        Route::Txn => BodyKind::Envelope,
        Route::Compat(route) => compat::body_kind(route, method),
        _ => BodyKind::Unused,
    }
}

/// What `/admin/members` asks: nothing (`GET`: the list), or one change
/// (`POST ?add=ADDR` or `?remove=ADDR`).
pub(crate) fn member_change(
    method: &Method,
    query: &FormPairs,
) -> Result<Option<hypha_net::MemberChange>, Response> {
    if *method != Method::Post {
        return Ok(None);
    }
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    match (form_value(query, "add"), form_value(query, "remove")) {
        (Some(a), None) => Ok(Some(hypha_net::MemberChange::Add(text(a)))),
        (None, Some(r)) => Ok(Some(hypha_net::MemberChange::Remove(text(r)))),
        _ => Err(Response::error(
            400,
            "POST /admin/members changes one member: ?add=ADDR or ?remove=ADDR (ADDR like \
             [400::1]:7000)",
        )),
    }
}

pub(crate) fn not_found(path: &str) -> Response {
    let message = format!(
        "no route for {path}; the status page is /, the API is /kv/{{key}}, /kv?prefix=, /ping, /status, /metrics, \
         /digest, POST /txn, /watch/{{prefix}}, POST /admin/compact, /admin/members, /admin/backup and the compat routes /set, /get, /delete, /store, /fetch, /query"
    );
    Response::error(404, message)
}
