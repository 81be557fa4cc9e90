//! The district view at `/`: one page and its two assets, embedded in the
//! binary (no build step, no CDN, no map tiles). The page reads this engine's
//! own API, and its Content-Security-Policy lets it reach nothing else.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("ui/index.html");
const APP: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/style.css");

/// Same origin only: scripts, styles, and the API the page fetches and streams.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub(super) async fn app() -> Response {
    asset("text/javascript; charset=utf-8", APP)
}

pub(super) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}
