//! The console's stylesheet and script, compiled into the binary (no CDN, no download: the
//! console works offline). The script only refreshes the parts of a page marked
//! `data-live="<fragment url>"` every two seconds, and pauses while the tab is hidden.

use axum::http::header;
use axum::response::IntoResponse;

pub async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../assets/console.css"))
}

pub async fn js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../assets/console.js"))
}
