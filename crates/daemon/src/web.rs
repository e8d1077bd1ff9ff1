//! The web page's side of the HTTP surface: its files, built into the
//! binary and served at `/ui/` on the TCP listener (`/` redirects there),
//! the safety headers every response carries, and the `Origin` rule of
//! WebSocket upgrades.
//!
//! The page is a pure client of the JSON-RPC API: nothing here is made per
//! user, and nothing is fetched from outside the machine. The Content
//! Security Policy allows scripts, styles and connections to this origin
//! only (no inline code), images from here or `data:` (the QR code), and
//! no framing, base URL or form submission.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

/// The policy on every response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// HTTPS only, for a year, once a browser has seen the TLS listener.
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

/// One file of the page.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! assets {
    ($( $path:literal => $type:literal ),* $(,)?) => {
        &[$( Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../web/", $path)),
        } ),*]
    };
}

static ASSETS: &[Asset] = assets! {
    "index.html" => "text/html; charset=utf-8",
    "app.css" => "text/css; charset=utf-8",
    "icon.svg" => "image/svg+xml",
    "js/main.js" => "text/javascript; charset=utf-8",
    "js/rpc.js" => "text/javascript; charset=utf-8",
    "js/dom.js" => "text/javascript; charset=utf-8",
    "js/signin.js" => "text/javascript; charset=utf-8",
    "js/mine.js" => "text/javascript; charset=utf-8",
    "js/admin.js" => "text/javascript; charset=utf-8",
};

/// `/` and `/ui`: to the page.
pub async fn to_page() -> Redirect {
    Redirect::to("/ui/")
}

/// `/ui/`: the page itself.
pub async fn index() -> Response {
    asset("index.html")
}

/// `/ui/{*path}`: a file of the page, or 404.
pub async fn file(axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    asset(&path)
}

fn asset(path: &str) -> Response {
    match ASSETS.iter().find(|a| a.path == path) {
        Some(a) => {
            let mut r = a.body.into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(a.content_type),
            );
            // Revalidated on every load: an upgraded daemon serves its own page.
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Puts the safety headers on `response` (and HSTS when `tls`).
pub fn secure(response: &mut Response, tls: bool) {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(STRICT_TRANSPORT_SECURITY),
        );
    }
}

/// Whether a WebSocket upgrade may go ahead: with no `Origin` (a CLI, an
/// SDK), yes; with one, only the page's own origin — the scheme of this
/// listener and the `Host` the request was sent to. Anything else (another
/// site's page, `null`) is refused: a browser would otherwise let any site
/// the user visits talk to the daemon (cross-site WebSocket hijacking).
pub fn origin_allowed(headers: &HeaderMap, tls: bool) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(header::HOST).map(HeaderValue::to_str),
    ) else {
        return false;
    };
    let scheme = if tls { "https" } else { "http" };
    let own = format!("{scheme}://{host}");
    !host.is_empty() && origin.eq_ignore_ascii_case(&own)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origins() {
        assert!(origin_allowed(
            &headers(&[("host", "127.0.0.1:6000")]),
            false
        ));
        assert!(origin_allowed(
            &headers(&[
                ("host", "127.0.0.1:6000"),
                ("origin", "http://127.0.0.1:6000")
            ]),
            false
        ));
        assert!(origin_allowed(
            &headers(&[
                ("host", "nas.example:6000"),
                ("origin", "HTTPS://NAS.example:6000")
            ]),
            true
        ));
        for (host, origin, tls) in [
            ("127.0.0.1:6000", "http://evil.example", false),
            ("127.0.0.1:6000", "null", false),
            ("127.0.0.1:6000", "http://127.0.0.1:6001", false),
            ("127.0.0.1:6000", "https://127.0.0.1:6000", false),
            ("127.0.0.1:6000", "http://127.0.0.1:6000", true),
            (
                "127.0.0.1:6000",
                "http://127.0.0.1:6000.evil.example",
                false,
            ),
        ] {
            let h = headers(&[("host", host), ("origin", origin)]);
            assert!(!origin_allowed(&h, tls), "{origin} for {host}");
        }
        assert!(!origin_allowed(&headers(&[("origin", "http://x")]), false));
    }

    const JS: &str = "text/javascript; charset=utf-8";

    #[test]
    fn every_asset_is_there_and_typed() {
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{}", a.path);
            if a.path.ends_with(".js") {
                assert_eq!(a.content_type, JS);
            }
        }
        assert!(ASSETS.iter().any(|a| a.path == "index.html"));
    }
}
