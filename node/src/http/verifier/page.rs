//! The verifier's pages: the upload form and the report (printable: the print stylesheet
//! drops the navigation and forms).

use std::fmt::Write as _;

use axum::http::{StatusCode, Uri};
use pki::document::report_text::{self, Kind, Line, Part};
use pki::document::validation::{Indication, ValidationReport};

use super::Upload;
use super::report::class;
use crate::http::html::{Page, esc};
use crate::http::i18n::Lang;
use crate::http::server::Web;

/// A time in Vietnam time (UTC+7), with its offset.
pub(crate) fn vn_time(t: time::OffsetDateTime) -> String {
    let offset = time::UtcOffset::from_hms(7, 0, 0).unwrap_or(time::UtcOffset::UTC);
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory]:[offset_minute]"
    );
    t.to_offset(offset).format(&format).unwrap_or_else(|_| pki::format_utc(t))
}

/// `GET /verify`.
pub(crate) fn form(web: &Web, lang: Lang, uri: &Uri) -> Page {
    let l = lang;
    let body = format!(
        r#"<p>{intro}</p>
<form class="upload" method="post" action="/verify?lang={code}" enctype="multipart/form-data">
<label for="bundle">{label}</label>
<input id="bundle" name="bundle" type="file" accept=".ltd,application/vnd.lienthong.bundle+zip" required aria-describedby="bundle-hint">
<p class="hint" id="bundle-hint">{hint}</p>
<button type="submit">{submit}</button>
</form>
<h2>{scripts}</h2>
<p>{scripts_text}</p>
<pre class="mono">curl -H 'Accept: application/json' --data-binary @cv-123.ltd https://{host}/verify.json</pre>"#,
        intro = l.t(
            "Tải lên một văn bản điện tử (tệp .ltd) để biết ai đã ký, với vai trò gì, chuỗi chứng thư tới gốc quốc gia, tình trạng thu hồi khi ký và các biên nhận. Kết quả giống lệnh `lienthong verify`.",
            "Upload an electronic document (a .ltd file) to see who signed it in which role, the certificate chains up to the national root, revocation at signing time and the receipts. The result is the same as `lienthong verify`."
        ),
        code = l.code(),
        label = l.t("Tệp văn bản (.ltd)", "Document file (.ltd)"),
        hint = esc(&format!(
            "{} {}. {}",
            l.t("Tối đa", "At most"),
            crate::config::ByteSize(web.settings.max_upload_bytes),
            if web.settings.keep_uploads {
                l.t("Nút này lưu lại các tệp tải lên (http.keep_uploads).", "This node keeps uploaded files (http.keep_uploads).")
            } else {
                l.t("Tệp không được lưu lại sau khi kiểm tra.", "Nothing uploaded is kept after the check.")
            }
        )),
        submit = l.t("Kiểm tra", "Verify"),
        scripts = l.t("Cho chương trình", "For scripts"),
        scripts_text = l.t(
            "Gửi tệp làm nội dung yêu cầu tới /verify.json (hoặc /verify với Accept: application/json):",
            "Send the file as the request body to /verify.json (or /verify with Accept: application/json):"
        ),
        host = esc(&web.node.http_addr().map(|a| a.to_string()).unwrap_or_default()),
    );
    Page::new(web, lang, uri, lang.t("Kiểm tra văn bản", "Verify a document"), body)
}

/// What the indication means, in the reader's language.
fn verdict_words(l: Lang, indication: Indication) -> &'static str {
    match indication {
        Indication::Passed => l.t(
            "Văn bản đúng như nó tự nhận: các chữ ký hợp lệ, chuỗi chứng thư tới gốc quốc gia, tệp đính kèm nguyên vẹn.",
            "The document is what it says: the signatures verify, the chains reach the national root, the attachments are intact.",
        ),
        Indication::Failed => l.t(
            "Văn bản KHÔNG hợp lệ: đã bị sửa, hoặc chữ ký không đúng, hoặc chứng thư không còn hiệu lực khi ký.",
            "The document is NOT valid: it was altered, a signature is wrong, or a certificate was not valid when it signed.",
        ),
        Indication::Indeterminate => l.t(
            "Chưa kết luận được với thông tin hiện có (ví dụ thiếu CRL mới hoặc chuỗi chứng thư không tới gốc đã biết).",
            "Cannot be decided with the information at hand (for example a fresh CRL is missing, or the chain leads to no known root).",
        ),
    }
}

/// A part's heading on the page (the terminal's own headings are in English only).
fn heading(l: Lang, part: Part) -> Option<&'static str> {
    Some(match part {
        Part::Verdict | Part::Footer => return None,
        Part::Document => l.t("Cấu trúc văn bản", "The document's structure"),
        Part::Manifest => l.t("Văn bản", "Document"),
        Part::Signatures => l.t("Chữ ký (theo thứ tự ký)", "Signatures (in the order made)"),
        Part::Attachments => l.t("Tệp đính kèm", "Attachments"),
        Part::Crls => l.t("Danh sách thu hồi (CRL) đã dùng", "Revocation lists (CRLs) at hand"),
        Part::Receipts => l.t("Biên nhận", "Receipts"),
        _ => l.t("Khác", "Other"),
    })
}

/// The report's lines after its verdict, each part under its heading, indented as in the
/// terminal (a monospace list, so the chains' columns line up).
fn report_lines(b: &mut String, l: Lang, lines: &[Line]) {
    let mut open: Option<Part> = None;
    for line in lines.iter().filter(|x| x.part != Part::Verdict && !matches!(x.kind, Kind::Blank | Kind::Heading)) {
        if open != Some(line.part) {
            if open.is_some() {
                b.push_str("</ul></section>");
            }
            b.push_str("<section class=\"report-part\">");
            if let Some(h) = heading(l, line.part) {
                let _ = write!(b, "<h2>{h}</h2>");
            }
            b.push_str("<ul class=\"report-lines\">");
            open = Some(line.part);
        }
        let class = match line.kind {
            Kind::Reason(indication) => format!("reason {}", class(indication)),
            _ => "line".to_owned(),
        };
        // The part's own indentation is the list's; deeper lines are nested under it.
        let depth = line.indent.saturating_sub(2).min(6);
        let _ = write!(b, "<li class=\"{class} i{depth}\">{}</li>", esc(&line.text));
    }
    if open.is_some() {
        b.push_str("</ul></section>");
    }
}

/// The report page.
pub(crate) fn report(web: &Web, lang: Lang, uri: &Uri, report: &ValidationReport, upload: &Upload) -> Page {
    let l = lang;
    let indication = report.indication();
    let lines = report_text::lines(report, &vn_time);
    let mut b = String::with_capacity(16384);
    let _ = write!(
        b,
        r#"<section class="verdict {class}" aria-labelledby="verdict-title" role="status">
<p class="indication" id="verdict-title">{name}{sub}</p>
<p>{words}</p>"#,
        class = class(indication),
        name = indication.name(),
        sub = report.sub_indication().map(|s| format!(" — {s}")).unwrap_or_default(),
        words = verdict_words(l, indication),
    );
    // Why and what to do, as `lienthong verify` says them under its first line.
    let why: Vec<&Line> = lines.iter().filter(|x| x.part == Part::Verdict && x.kind == Kind::Text).collect();
    if !why.is_empty() {
        let _ = write!(b, "<ul class=\"reasons\">");
        for line in why {
            let _ = write!(b, "<li>{}</li>", esc(&line.text));
        }
        b.push_str("</ul>");
    }
    b.push_str("</section>");
    report_lines(&mut b, l, &lines);
    let _ = write!(
        b,
        r#"<h2>{title}</h2>
<dl class="fields">
<dt>{file}</dt><dd>{name}</dd>
<dt>{size}</dt><dd>{bytes} {unit}</dd>
<dt>SHA-256</dt><dd class="mono hash">{sha}</dd>
<dt>{at}</dt><dd>{when}</dd>
<dt>{kept}</dt><dd>{kept_text}</dd>
</dl>
<p class="noprint"><a href="/verify?lang={code}">{again}</a> · {print}</p>"#,
        title = l.t("Tệp đã kiểm tra", "The file checked"),
        file = l.t("Tên tệp", "File name"),
        name = esc(upload.name.as_deref().unwrap_or("—")),
        size = l.t("Kích thước", "Size"),
        bytes = upload.bytes,
        unit = l.t("byte", "bytes"),
        sha = esc(&upload.sha256),
        at = l.t("Kiểm tra lúc", "Checked at"),
        when = vn_time(report.validation_time),
        kept = l.t("Lưu lại", "Kept"),
        kept_text = match &upload.kept_as {
            Some(path) => esc(path),
            None =>
                l.t("không — tệp đã bị xoá sau khi kiểm tra", "no — the file was deleted after the check").to_owned(),
        },
        code = l.code(),
        again = l.t("Kiểm tra văn bản khác", "Verify another document"),
        print = l.t(
            "In trang này bằng Ctrl+P: bản in chỉ gồm kết quả.",
            "Print this page with Ctrl+P: the printout holds the report only."
        ),
    );
    // The request worked whatever the document's verdict: 200; scripts read the indication.
    Page::new(web, lang, uri, format!("{} — {}", l.t("Kết quả kiểm tra", "Verification report"), indication.name()), b)
        .status(StatusCode::OK)
}
