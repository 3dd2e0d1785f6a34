//! Page layout and the small pieces every page uses: HTML escaping, the frame (skip link,
//! banner, navigation, language switch, `main`, footer), error pages, the home page and the
//! stylesheet. No template engine: pages are built with `format!` over escaped values.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};

use super::i18n::Lang;
use super::server::Web;

/// `text` with `& < > " '` escaped, for element content and quoted attributes.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page ready to send.
pub(crate) struct Page {
    /// Its language.
    pub(crate) lang: Lang,
    /// The `<title>` and `<h1>`.
    pub(crate) title: String,
    /// The path, for the language switch.
    pub(crate) path: String,
    /// The agency line of the banner.
    pub(crate) agency: String,
    /// The HTML inside `<main>`, after the `<h1>`.
    pub(crate) body: String,
    /// The status code.
    pub(crate) status: StatusCode,
}

impl Page {
    /// A 200 page of `web`'s node.
    pub(crate) fn new(web: &Web, lang: Lang, uri: &Uri, title: impl Into<String>, body: String) -> Page {
        Page {
            lang,
            title: title.into(),
            path: uri.path().to_owned(),
            agency: format!("{} ({})", web.node.config.name, web.node.config.agency),
            body,
            status: StatusCode::OK,
        }
    }

    /// The same page with another status.
    pub(crate) fn status(mut self, status: StatusCode) -> Page {
        self.status = status;
        self
    }

    fn render(&self) -> String {
        let l = self.lang;
        let other = l.other();
        let mut out = String::with_capacity(self.body.len() + 2048);
        let _ = write!(
            out,
            r##"<!doctype html>
<html lang="{code}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — lienthong</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<a class="skip" href="#main">{skip}</a>
<header class="site">
<p class="agency">{agency}</p>
<nav aria-label="{nav}"><ul>
<li><a href="/verify?lang={code}">{verify}</a></li>
<li><a href="/console?lang={code}">{console}</a></li>
</ul></nav>
<a class="lang" href="{path}?lang={other_code}" lang="{other_code}">{other_name}</a>
</header>
<main id="main">
<h1>{title}</h1>
{body}
</main>
<footer class="site"><p>lienthong — {tagline}. <span class="links"><a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a> · <a href="/metrics">/metrics</a></span></p></footer>
</body>
</html>
"##,
            code = l.code(),
            title = esc(&self.title),
            skip = l.t("Bỏ qua, tới nội dung chính", "Skip to the main content"),
            agency = esc(&self.agency),
            nav = l.t("Chức năng", "Sections"),
            verify = l.t("Kiểm tra văn bản", "Verify a document"),
            console = l.t("Bảng điều khiển", "Operator console"),
            path = esc(&self.path),
            other_code = other.code(),
            other_name = other.t("Tiếng Việt", "English"),
            body = self.body,
            tagline = l.t("liên thông văn bản điện tử có chữ ký số", "signed document exchange"),
        );
        out
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut response = (self.status, Html(self.render())).into_response();
        let headers = response.headers_mut();
        // Pages never run scripts, frames or anything from elsewhere.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
        headers.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("no-referrer"));
        headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
        response
    }
}

/// An error page without the node's banner details (used where the state is not at hand).
pub(crate) fn error_page(lang: Lang, status: StatusCode, title: &str, message: &str) -> Page {
    Page {
        lang,
        title: title.to_owned(),
        path: "/".into(),
        agency: "lienthong".into(),
        body: format!(r#"<p class="alert" role="alert">{}</p>"#, esc(message)),
        status,
    }
}

/// `/`: what this web face offers.
pub(crate) async fn home(State(web): State<Arc<Web>>, lang: Lang, uri: Uri) -> Page {
    let l = lang;
    let body = format!(
        r#"<p>{intro}</p>
<ul>
<li><a href="/verify?lang={code}">{verify}</a> — {verify_what}</li>
<li><a href="/console?lang={code}">{console}</a> — {console_what}</li>
<li><a href="/metrics">/metrics</a> — {metrics_what}</li>
<li><a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a> — {health_what}</li>
</ul>"#,
        intro = l.t(
            "Nút liên thông văn bản của cơ quan. Trang này không cần JavaScript.",
            "This agency's document exchange node. Nothing here needs JavaScript."
        ),
        code = l.code(),
        verify = l.t("Kiểm tra văn bản", "Verify a document"),
        verify_what = l.t(
            "tải lên tệp .ltd, xem ai đã ký, chuỗi chứng thư tới gốc quốc gia và các biên nhận",
            "upload a .ltd file and see who signed it, the chains up to the national root and the receipts"
        ),
        console = l.t("Bảng điều khiển", "Operator console"),
        console_what = l.t(
            "cho người vận hành có chứng thư máy khách: các nút lân cận, hàng đợi, chứng thư, cảnh báo",
            "for operators with a client certificate: neighbours, queues, certificates, alerts"
        ),
        metrics_what = l.t("số liệu cho Prometheus", "metrics for Prometheus"),
        health_what = l.t("kiểm tra sống và sẵn sàng", "liveness and readiness checks"),
    );
    Page::new(&web, lang, &uri, lang.t("Liên thông văn bản", "Document exchange"), body)
}

/// `/style.css`.
pub(crate) async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")],
        include_str!("style.css"),
    )
        .into_response()
}

/// Anything else.
pub(crate) async fn not_found(lang: Lang) -> Page {
    error_page(
        lang,
        StatusCode::NOT_FOUND,
        lang.t("Không có trang này", "No such page"),
        lang.t("Địa chỉ này không có gì. Xem trang chủ: /", "Nothing is at this address. See the home page: /"),
    )
}

/// A row of cells, each escaped.
pub(crate) fn row(cells: &[&str]) -> String {
    let mut out = String::from("<tr>");
    for c in cells {
        let _ = write!(out, "<td>{}</td>", esc(c));
    }
    out.push_str("</tr>");
    out
}

/// A `<thead>` row.
pub(crate) fn head(cells: &[&str]) -> String {
    let mut out = String::from("<thead><tr>");
    for c in cells {
        let _ = write!(out, r#"<th scope="col">{}</th>"#, esc(c));
    }
    out.push_str("</tr></thead>");
    out
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn markup_in_values_is_escaped() {
        assert_eq!(esc(r#"<script>"x"&'y'</script>"#), "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;");
        assert_eq!(esc("Công văn số 1"), "Công văn số 1");
    }
}
