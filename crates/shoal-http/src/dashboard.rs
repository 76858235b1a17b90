//! The web dashboard, served at `/`: the files that `npm run build` wrote
//! into `web/dist` (sources in `web/src`, layout by dagre), embedded in the
//! binary so a job needs nothing beside it. The page reads the JSON API
//! every second; it holds no numbers of its own.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The page.
const INDEX_HTML: &str = include_str!("../web/dist/index.html");
/// Its script (the dashboard and dagre, bundled by Vite).
const APP_JS: &str = include_str!("../web/dist/assets/app.js");
/// Its style sheet.
const APP_CSS: &str = include_str!("../web/dist/assets/app.css");

/// One embedded file with its content type; the browser revalidates it
/// (a rebuilt binary may serve new files under the same names).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`.
pub(crate) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /assets/app.js`.
pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /assets/app.css`.
pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page loads exactly the assets served beside it.
    #[test]
    fn the_page_refers_to_the_embedded_assets() {
        assert!(
            INDEX_HTML.contains("src=\"./assets/app.js\""),
            "{INDEX_HTML}"
        );
        assert!(
            INDEX_HTML.contains("href=\"./assets/app.css\""),
            "{INDEX_HTML}"
        );
        assert!(APP_JS.contains("/api/v1/job/graph"));
        assert!(APP_CSS.contains(".node-box"));
    }
}
