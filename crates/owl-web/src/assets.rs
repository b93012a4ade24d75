//! Static files, embedded in the binary: nothing is fetched from elsewhere,
//! and `owl serve` needs no files beside itself.
//!
//! Vendored files carry their version in the name and our own files a hash
//! of their content, so every asset can be cached forever (`immutable`).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr, $file:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $file)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("htmx-2.0.11.min.js", JS, "vendor/htmx-2.0.11.min.js"),
    asset!(
        "htmx-ext-ws-2.0.4.min.js",
        JS,
        "vendor/htmx-ext-ws-2.0.4.min.js"
    ),
    asset!(
        "idiomorph-ext-0.8.0.min.js",
        JS,
        "vendor/idiomorph-ext-0.8.0.min.js"
    ),
    asset!(
        "uPlot-1.6.32.iife.min.js",
        JS,
        "vendor/uPlot-1.6.32.iife.min.js"
    ),
    asset!("uPlot-1.6.32.min.css", CSS, "vendor/uPlot-1.6.32.min.css"),
    asset!("app.js", JS, "app.js"),
    asset!("app.css", CSS, "app.css"),
    asset!("favicon.svg", "image/svg+xml", "favicon.svg"),
];

/// The URL of an embedded asset, with a content hash for our own files so a
/// new build is never served from a stale cache.
pub(crate) fn url(name: &str) -> String {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no embedded asset named {name}"));
    // Vendored files carry their version in the name; ours get a hash.
    if asset.name.starts_with("app.") || asset.name.starts_with("favicon.") {
        format!("/assets/{}?v={:08x}", asset.name, fingerprint(asset.body))
    } else {
        format!("/assets/{}", asset.name)
    }
}

/// FNV-1a, 32 bits: a cache key, not a security measure.
fn fingerprint(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// `GET /assets/{name}`.
pub(crate) async fn serve(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}
