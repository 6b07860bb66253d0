//! The auditor's dashboard: server-rendered HTML pages at `/` (overview), `/ui/units/{unit}`
//! and `/ui/parties/{party}`, with every asset embedded in the binary and a strict
//! Content-Security-Policy (nothing is loaded from anywhere but this server; no inline
//! script or style). The pages work without JavaScript; the one embedded script re-verifies
//! a unit's event signatures and hashes in the browser with WebCrypto.

pub mod overview;
mod party;
mod unit;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::problem::Problem;
use super::AppState;

/// No source but this server; no inline script or style; not framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const CSS: &str = include_str!("app.css");
const JS: &str = include_str!("app.js");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview::handler))
        .route("/ui/units/{unit}", get(unit::handler))
        .route("/ui/parties/{party}", get(party::handler))
        .route("/ui/app.css", get(css))
        .route("/ui/app.js", get(js))
}

fn secured(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

async fn css() -> Response {
    secured(([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response())
}

async fn js() -> Response {
    secured(
        (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            JS,
        )
            .into_response(),
    )
}

/// HTML-escapes text for element content and attribute values.
pub(super) fn e(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Percent-encodes a path segment.
pub(super) fn seg(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// A whole page: `title`, the ledger's name, and `body` (already HTML).
pub(super) fn page(state: &AppState, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{} · custody</title>\n<link rel=\"stylesheet\" href=\"/ui/app.css\">\n<script src=\"/ui/app.js\" defer></script>\n</head>\n<body>\n<a class=\"skip\" href=\"#main\">Skip to content</a>\n<header><nav aria-label=\"Main\"><a href=\"/\" class=\"brand\">custody</a> <span class=\"ledger\">ledger {}</span></nav></header>\n<main id=\"main\">\n{body}\n</main>\n<footer><p>Every page is rendered from the signed log. Verify anything here offline: <code>custody verify-bundle</code>, <code>custody audit --server</code>.</p></footer>\n</body>\n</html>\n",
        e(title),
        e(state.ledger.name().as_str())
    );
    secured(
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
    )
}

/// An error page (HTML, with the problem's status).
pub(super) fn error_page(state: &AppState, p: &Problem) -> Response {
    let mut r = page(
        state,
        "Not available",
        &format!(
            "<h1>Not available</h1><p role=\"alert\">{}</p><p><a href=\"/\">Back to the overview</a></p>",
            e(&p.detail)
        ),
    );
    *r.status_mut() = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

pub(super) fn verdict_class(v: &str) -> &'static str {
    match v {
        "clear" => "v-clear",
        "review" => "v-review",
        "diverted" => "v-diverted",
        "broken" => "v-broken",
        _ => "v-sanctioned",
    }
}
