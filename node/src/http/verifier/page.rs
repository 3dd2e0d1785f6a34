//! The verifier's pages: the upload form and the report (printable: the print stylesheet
//! drops the navigation and forms).

use std::fmt::Write as _;

use axum::http::{StatusCode, Uri};
use pki::document::ReceiptKind;
use pki::document::verify::{Provenance, Role};
use pki::validate::RevocationStatus;

use super::Upload;
use super::report::{Indication, Verdict};
use crate::http::html::{Page, esc, head};
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
            "{} {} MiB. {}",
            l.t("Tối đa", "At most"),
            web.settings.max_upload_bytes / (1024 * 1024),
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

fn revocation_words(l: Lang, status: Option<&RevocationStatus>) -> String {
    match status {
        None => l.t("gốc tin cậy", "trust anchor").to_owned(),
        Some(RevocationStatus::Good { crl_this_update, .. }) => format!(
            "{} ({} {})",
            l.t("chưa bị thu hồi khi ký", "not revoked at signing time"),
            l.t("CRL ngày", "CRL of"),
            vn_time(*crl_this_update)
        ),
        Some(RevocationStatus::RevokedLater { revoked_at, reason }) => format!(
            "{} {} ({reason}); {}",
            l.t("bị thu hồi sau, lúc", "revoked later, at"),
            vn_time(*revoked_at),
            l.t("chữ ký có trước nên vẫn đứng", "the signature was made before and stands")
        ),
        Some(RevocationStatus::Stale { crl_next_update, .. }) => format!(
            "{} {}",
            l.t("không rõ: CRL đã quá hạn từ", "unknown: the CRL was stale since"),
            vn_time(*crl_next_update)
        ),
        Some(RevocationStatus::NotChecked) => {
            l.t("KHÔNG kiểm tra được thu hồi (thiếu CRL)", "revocation NOT checked (no CRL)").to_owned()
        }
    }
}

fn verdict_words(l: Lang, v: &Verdict) -> &'static str {
    match v.indication {
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

/// The report page.
pub(crate) fn report(web: &Web, lang: Lang, uri: &Uri, v: &Verdict, upload: &Upload) -> Page {
    let l = lang;
    let mut b = String::with_capacity(8192);
    let _ = write!(
        b,
        r#"<section class="verdict {class}" aria-labelledby="verdict-title" role="status">
<p class="indication" id="verdict-title">{indication}{sub}</p>
<p>{words}</p>"#,
        class = v.indication.class(),
        indication = v.indication.name(),
        sub = v.sub_indication.map(|s| format!(" — {s}")).unwrap_or_default(),
        words = verdict_words(l, v),
    );
    if !v.reasons.is_empty() {
        let _ = write!(b, "<p><strong>{}</strong></p><ul class=\"reasons\">", l.t("Lý do:", "Reasons:"));
        for r in &v.reasons {
            let _ = write!(b, "<li>{}</li>", esc(r));
        }
        b.push_str("</ul>");
    }
    b.push_str("</section>");
    if let Some(p) = &v.provenance {
        provenance(&mut b, l, p);
    }
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
        when = vn_time(web.node.now()),
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
    let status = match v.indication {
        Indication::Passed => StatusCode::OK,
        // The request worked; the document did not. Still 200 for the page; scripts read the
        // indication (JSON).
        _ => StatusCode::OK,
    };
    Page::new(
        web,
        lang,
        uri,
        format!("{} — {}", l.t("Kết quả kiểm tra", "Verification report"), v.indication.name()),
        b,
    )
    .status(status)
}

fn provenance(b: &mut String, l: Lang, p: &Provenance) {
    let m = &p.manifest;
    let to = m.to.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let _ = write!(
        b,
        r#"<h2>{doc}</h2>
<dl class="fields">
<dt>{id}</dt><dd class="mono">{document_id}</dd>
<dt>{kind}</dt><dd>{type_name} {num} {number}/{notation}</dd>
<dt>{place_date}</dt><dd>{place}, {date}</dd>
<dt>{subject}</dt><dd>{subject_text}</dd>
<dt>{from}</dt><dd>{from_code}</dd>
<dt>{to_label}</dt><dd>{to}</dd>
<dt>{urgency}</dt><dd>{urgency_text} ({urgency_code})</dd>
{due}{business}</dl>"#,
        doc = l.t("Văn bản", "Document"),
        id = l.t("Mã định danh", "Document id"),
        document_id = esc(&p.document_id),
        kind = l.t("Loại, số, ký hiệu", "Type, number, notation"),
        type_name = esc(&m.type_name),
        num = l.t("số", "no."),
        number = m.number,
        notation = esc(&m.notation),
        place_date = l.t("Nơi, ngày ban hành", "Place, date"),
        place = esc(&m.place),
        date = m.date,
        subject = l.t("Trích yếu", "Subject"),
        subject_text = esc(&m.subject),
        from = l.t("Cơ quan gửi", "From"),
        from_code = m.from,
        to_label = l.t("Nơi nhận", "To"),
        to = esc(&to),
        urgency = l.t("Độ khẩn", "Urgency"),
        urgency_text = m.urgency.name_vi(),
        urgency_code = m.urgency.code(),
        due = m.due.map(|d| format!("<dt>{}</dt><dd>{d}</dd>\n", l.t("Hạn xử lý", "Due"))).unwrap_or_default(),
        business = m
            .business
            .target()
            .map(|t| format!(
                "<dt>{}</dt><dd class=\"mono\">{}</dd>\n",
                match m.business.code() {
                    1 => l.t("Thu hồi văn bản", "Revokes"),
                    2 => l.t("Cập nhật văn bản", "Updates"),
                    _ => l.t("Thay thế văn bản", "Replaces"),
                },
                esc(&t.to_string())
            ))
            .unwrap_or_default(),
    );
    let _ = write!(b, "<h2>{}</h2>", l.t("Chữ ký (theo thứ tự ký)", "Signatures (in the order made)"));
    for (i, s) in p.signers.iter().enumerate() {
        let who = match (&s.role, &s.position) {
            (Role::Person, Some(pos)) => format!("{}, {pos}", s.name),
            _ => s.name.clone(),
        };
        let role = match s.role {
            Role::Person => l.t("chữ ký của người có thẩm quyền", "the official's signature"),
            Role::Seal => l.t("con dấu cơ quan (ký trên chữ ký trên)", "the agency seal (over the signature above)"),
        };
        let _ = write!(
            b,
            r#"<h3>{n}. {who} — {role}</h3>
<p>{agency_label} <span class="mono">{agency}</span> · {signed} {when} · {alg}</p>
<table><caption>{caption}</caption>{head}<tbody>"#,
            n = i + 1,
            who = esc(&who),
            role = role,
            agency_label = l.t("Cơ quan", "Agency"),
            agency = s.agency,
            signed = l.t("ký lúc", "signed"),
            when = vn_time(s.signing_time),
            alg = s.algorithm,
            caption = l.t("Chuỗi chứng thư tới gốc quốc gia", "Certificate chain up to the national root"),
            head = head(&[
                l.t("Bậc", "Level"),
                l.t("Chứng thư", "Certificate"),
                l.t("Mã cơ quan", "Agency code"),
                l.t("Số hiệu", "Serial"),
                l.t("Hiệu lực", "Valid"),
                l.t("Thu hồi khi ký", "Revocation at signing"),
            ]),
        );
        for (depth, cert) in s.chain.iter().enumerate() {
            let level = match depth {
                0 => l.t("người ký", "signer"),
                d if d + 1 == s.chain.len() => l.t("gốc quốc gia", "national root"),
                _ => l.t("cấp trên", "issuer"),
            };
            let _ = write!(
                b,
                "<tr><th scope=\"row\">{level}</th><td>{name}</td><td class=\"mono\">{agency}</td><td class=\"mono\">{serial}</td><td>{from} → {to}</td><td>{revocation}</td></tr>",
                name = esc(&cert.id.name),
                agency = cert.agency.map(|c| c.to_string()).unwrap_or_else(|| "—".into()),
                serial = esc(&cert.id.serial.to_string()),
                from = vn_time(cert.not_before),
                to = vn_time(cert.not_after),
                revocation = esc(&revocation_words(l, s.revocation.get(depth))),
            );
        }
        b.push_str("</tbody></table>");
    }
    let _ = write!(
        b,
        "<h2>{}</h2><table><caption>{}</caption>{}<tbody>",
        l.t("Tệp đính kèm", "Attachments"),
        l.t(
            "Mỗi tệp được so với SHA-256 trong văn bản đã ký",
            "Each checked against its SHA-256 in the signed manifest"
        ),
        head(&[
            l.t("Tên", "Name"),
            l.t("Kiểu", "Type"),
            l.t("Kích thước (byte)", "Size (bytes)"),
            "SHA-256",
            l.t("Kết quả", "Result")
        ])
    );
    if p.attachments.is_empty() {
        let _ = write!(b, "<tr><td colspan=\"5\">{}</td></tr>", l.t("không có", "none"));
    }
    for a in &p.attachments {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"mono hash\">{}</td><td>{}</td></tr>",
            esc(&a.attachment.name),
            esc(&a.attachment.media_type),
            a.attachment.size,
            hex::encode(a.attachment.sha256),
            if a.verified { l.t("nguyên vẹn", "intact") } else { l.t("CHƯA KIỂM TRA", "NOT CHECKED") }
        );
    }
    b.push_str("</tbody></table>");
    let _ = write!(
        b,
        "<h2>{}</h2><table><caption>{}</caption>{}<tbody>",
        l.t("Biên nhận", "Receipts"),
        l.t(
            "Mỗi biên nhận do con dấu của cơ quan đã nhận ký",
            "Each signed by the seal of the agency that took the document"
        ),
        head(&[
            l.t("Thời gian", "Time"),
            l.t("Cơ quan ký", "Signed by"),
            l.t("Nội dung", "What"),
            l.t("Cho", "For"),
            l.t("Ghi chú", "Note")
        ])
    );
    if p.receipts.is_empty() {
        let _ = write!(
            b,
            "<tr><td colspan=\"5\">{}</td></tr>",
            l.t("tệp không mang biên nhận nào", "the file carries no receipts")
        );
    }
    for r in &p.receipts {
        let what = match r.receipt.kind {
            ReceiptKind::Hop => {
                l.t("đã nhận trách nhiệm (biên nhận chuyển tiếp)", "took responsibility (hop receipt)").to_owned()
            }
            ReceiptKind::Status(code) => format!("{} {code}", l.t("trạng thái", "status")),
        };
        let recipients = r.receipt.recipients.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{} <span class=\"mono\">[{}]</span></td><td>{}</td><td class=\"mono\">{}</td><td>{}</td></tr>",
            vn_time(r.receipt.at),
            esc(&r.signer),
            r.receipt.by,
            esc(&what),
            esc(&recipients),
            esc(r.receipt.note.as_deref().unwrap_or(""))
        );
    }
    b.push_str("</tbody></table>");
    let _ = write!(
        b,
        "<h2>{}</h2><table>{}<tbody>",
        l.t("Danh sách thu hồi (CRL) đã dùng", "Revocation lists (CRLs) used"),
        head(&[l.t("Cơ quan cấp", "Issuer"), l.t("Ban hành", "Issued"), l.t("Lần sau", "Next due")])
    );
    for c in &p.crls {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.issuer),
            vn_time(c.this_update),
            vn_time(c.next_update)
        );
    }
    let _ = write!(
        b,
        "</tbody></table><p>{} <span class=\"mono hash\">{}</span></p>",
        l.t("SHA-256 của phong bì chữ ký:", "SHA-256 of the signed envelope:"),
        esc(&p.envelope_sha256)
    );
}
