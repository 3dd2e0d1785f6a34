//! The operators' console: alerts and neighbours (`/console`), the outbox with retry and drop
//! (`/console/transfers`), certificates and CRLs (`/console/certificates`), the latest
//! refusals (`/console/refusals`), and `/status.json` (the health read-out that
//! `lienthong-node status` prints).
//!
//! Every page needs an operator (see `auth`); a request without a client certificate, or
//! with one that is not listed or does not validate, gets a 403 page that says which. The
//! two actions are POSTs with the operator's CSRF token; each is logged (tracing target
//! `lienthong::audit`, with the operator's name, agency and certificate fingerprint) and
//! listed on the transfers page.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Form, Path, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use time::OffsetDateTime;

use super::auth::{Connection, Operator, Viewer, csrf_token, csrf_valid};
use super::html::{Page, esc, head, row};
use super::i18n::Lang;
use super::queries::{self, Retried};
use super::server::Web;
use super::verifier::vn_time;
use crate::storage::{from_millis, millis};

/// How many operator actions the transfers page lists.
const ACTIONS_KEPT: usize = 100;

/// An operator's action.
#[derive(Debug, Clone)]
pub(crate) struct Action {
    at: OffsetDateTime,
    operator: String,
    what: String,
}

/// The console's routes; POST bodies are bounded by `form_limit`.
pub(crate) fn routes(form_limit: usize) -> Router<Arc<Web>> {
    Router::new()
        .route("/console", axum::routing::get(overview))
        .route("/console/transfers", axum::routing::get(transfers))
        .route("/console/certificates", axum::routing::get(certificates))
        .route("/console/refusals", axum::routing::get(refusals))
        .route("/console/transfers/{id}/retry", axum::routing::post(retry))
        .route("/console/transfers/{id}/drop", axum::routing::post(drop_transfer))
        .layer(DefaultBodyLimit::max(form_limit))
}

/// The operator, or the 403 page saying why not.
fn operator(web: &Web, lang: Lang, connection: Option<&Connection>) -> Result<Operator, Response> {
    let viewer = Viewer::of(web, connection, web.node.now());
    let why = match viewer {
        Viewer::Operator(o) => return Ok(o),
        Viewer::Anonymous => lang
            .t(
                "Bảng điều khiển cần chứng thư máy khách của người vận hành. Trình duyệt không gửi chứng thư nào.",
                "The console needs an operator's client certificate. The browser sent none.",
            )
            .to_owned(),
        Viewer::NodeItself => lang
            .t(
                "Chứng thư của chính nút chỉ dùng để đọc trạng thái (/status.json), không dùng cho bảng điều khiển.",
                "The node's own certificate reads the status (/status.json) only, not the console.",
            )
            .to_owned(),
        Viewer::Refused(reason) => format!("{}: {reason}", lang.t("Chứng thư bị từ chối", "Certificate refused")),
    };
    tracing::warn!(target: "lienthong::audit", peer = ?connection.map(|c| c.peer), reason = %why, "console refused");
    Err(super::html::error_page(lang, StatusCode::FORBIDDEN, lang.t("Không được phép", "Not allowed"), &why)
        .into_response())
}

fn connection(request: &Request) -> Option<Connection> {
    request.extensions().get::<Connection>().cloned()
}

/// The console's own navigation and who is signed in.
fn frame(lang: Lang, op: &Operator, here: &str) -> String {
    let l = lang;
    let mut out =
        format!(r#"<nav aria-label="{}" class="noprint"><p>"#, l.t("Các trang của bảng điều khiển", "Console pages"));
    let pages = [
        ("/console", l.t("Tổng quan", "Overview")),
        ("/console/transfers", l.t("Hàng đợi", "Queues")),
        ("/console/certificates", l.t("Chứng thư và CRL", "Certificates and CRLs")),
        ("/console/refusals", l.t("Văn bản bị từ chối", "Refusals")),
    ];
    let links: Vec<String> = pages
        .iter()
        .map(|(path, name)| {
            if *path == here {
                format!(r#"<a href="{path}?lang={}" aria-current="page"><strong>{name}</strong></a>"#, l.code())
            } else {
                format!(r#"<a href="{path}?lang={}">{name}</a>"#, l.code())
            }
        })
        .collect();
    let _ = write!(
        out,
        "{}</p><p class=\"hint\">{} {} [{}]</p></nav>",
        links.join(" · "),
        l.t("Người vận hành:", "Operator:"),
        esc(&op.name),
        op.agency
    );
    out
}

fn ago(l: Lang, seconds: i64) -> String {
    format!(
        "{} {}",
        humantime::format_duration(std::time::Duration::from_secs(seconds.max(0) as u64)),
        l.t("trước", "ago")
    )
}

fn store_failure(web: &Web, lang: Lang, e: &crate::storage::StoreError) -> Response {
    web.node.storage_failed("reading the console", e);
    super::html::error_page(
        lang,
        StatusCode::SERVICE_UNAVAILABLE,
        lang.t("Không đọc được cơ sở dữ liệu", "Cannot read the database"),
        &e.to_string(),
    )
    .into_response()
}

/// `/console`: alerts and neighbours.
async fn overview(State(web): State<Arc<Web>>, lang: Lang, uri: Uri, request: Request) -> Response {
    let op = match operator(&web, lang, connection(&request).as_ref()) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let health = match crate::health::report(&web.node).await {
        Ok(h) => h,
        Err(e) => return store_failure(&web, lang, &e),
    };
    let l = lang;
    let mut b = frame(l, &op, "/console");
    let _ = write!(b, "<h2 id=\"alerts\">{}</h2>", l.t("Cảnh báo", "Alerts"));
    if health.alerts.is_empty() {
        let _ = write!(b, "<p class=\"ok\">{}</p>", l.t("Không có cảnh báo.", "No alerts."));
    } else {
        b.push_str("<ul>");
        for a in &health.alerts {
            let _ = write!(b, "<li class=\"alert\">{}</li>", esc(a));
        }
        b.push_str("</ul>");
    }
    let q = &health.queue;
    let _ = write!(
        b,
        r#"<h2 id="summary">{title}</h2><dl class="fields">
<dt>{waiting}</dt><dd>{pending} ({retrying} {retrying_word}; {oldest_word} {oldest} s)</dd>
<dt>{dead_word}</dt><dd>{dead}</dd>
<dt>{done_word}</dt><dd>{done}</dd>
<dt>{uptime_word}</dt><dd>{uptime}</dd>
</dl><p><a href="/console/transfers?lang={code}">{details}</a></p>"#,
        title = l.t("Hàng đợi chuyển đi", "Outbox"),
        waiting = l.t("Đang chờ", "Waiting"),
        pending = q.pending,
        retrying = q.retrying,
        retrying_word = l.t("đang thử lại", "retrying"),
        oldest_word = l.t("lâu nhất", "oldest"),
        oldest = q.oldest_pending_seconds,
        dead_word = l.t("Thất bại hẳn (dead letters)", "Dead letters"),
        dead = q.dead,
        done_word = l.t("Đã chuyển", "Handed over"),
        done = q.done,
        uptime_word = l.t("Thời gian chạy", "Uptime"),
        uptime = health
            .uptime_seconds
            .map(|s| humantime::format_duration(std::time::Duration::from_secs(s.max(0) as u64)).to_string())
            .unwrap_or_default(),
        code = l.code(),
        details = l.t("Xem từng chuyển giao, thử lại hoặc bỏ", "See each transfer, retry or drop"),
    );
    let _ = write!(
        b,
        "<h2 id=\"peers\">{}</h2><table><caption>{}</caption>{}<tbody>",
        l.t("Các nút lân cận", "Neighbours"),
        l.t("Cấu hình và tình trạng kết nối", "As configured, and how they answer"),
        head(&[
            l.t("Quan hệ", "Relation"),
            l.t("Cơ quan", "Agency"),
            l.t("Địa chỉ", "Address"),
            l.t("Kết nối", "Connection"),
            l.t("Đang chờ", "Waiting"),
            l.t("Chờ lâu nhất", "Oldest wait"),
            l.t("Trả lời gần nhất", "Last answer"),
            l.t("Lỗi gần nhất", "Last error"),
        ])
    );
    let outbound = web.node.outbound.connected_neighbours();
    let (inbound, _) = web.node.capacity.admission().connections_by_agency();
    for (n, relation) in web.node.config.neighbours() {
        let relation = match relation {
            crate::routing::Relation::Parent => l.t("cấp trên", "parent"),
            crate::routing::Relation::Child => l.t("cấp dưới", "child"),
            crate::routing::Relation::Peer => l.t("ngang hàng", "peer"),
        };
        let code = n.agency.to_string();
        let h = health.neighbours.iter().find(|h| h.agency == code);
        let incoming = inbound.iter().find(|(a, _)| *a == n.agency).map_or(0, |(_, c)| *c);
        let state = match (outbound.contains(&n.agency), incoming) {
            (true, 0) => l.t("đang kết nối (đi)", "connected (outgoing)").to_owned(),
            (true, i) => {
                format!("{} + {i} {}", l.t("đang kết nối (đi)", "connected (outgoing)"), l.t("đến", "incoming"))
            }
            (false, 0) => l.t("không có kết nối", "no connection").to_owned(),
            (false, i) => format!("{i} {}", l.t("kết nối đến", "incoming")),
        };
        let down = health.alerts.iter().any(|a| a.starts_with(&format!("neighbour {code} looks down")));
        let state = if down { format!("{} — {state}", l.t("CÓ VẺ NGỪNG", "LOOKS DOWN")) } else { state };
        let _ = write!(
            b,
            "<tr><td>{}</td><th scope=\"row\" class=\"mono\">{}</th><td class=\"mono\">{}</td><td class=\"state\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            relation,
            esc(&code),
            esc(&n.addresses.join(", ")),
            esc(&state),
            h.map_or(0, |h| h.pending),
            h.map_or(String::new(), |h| if h.pending > 0 {
                format!("{} s", h.oldest_pending_seconds)
            } else {
                String::new()
            }),
            h.and_then(|h| h.last_answer_seconds_ago).map(|s| ago(l, s)).unwrap_or_default(),
            esc(h.and_then(|h| h.last_error.as_deref()).unwrap_or("")),
        );
    }
    b.push_str("</tbody></table>");
    Page::new(&web, lang, &uri, lang.t("Bảng điều khiển", "Operator console"), b).into_response()
}

/// `/console/transfers`: waiting and dead transfers with their actions, the mail queue, the
/// operators' actions.
async fn transfers(State(web): State<Arc<Web>>, lang: Lang, uri: Uri, request: Request) -> Response {
    let op = match operator(&web, lang, connection(&request).as_ref()) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let rows = match queries::transfers(&web.node.store).await {
        Ok(r) => r,
        Err(e) => return store_failure(&web, lang, &e),
    };
    let mail = match crate::mail::health(&web.node.config, &web.node.store, web.node.now()).await {
        Ok(m) => m,
        Err(e) => return store_failure(&web, lang, &e),
    };
    let l = lang;
    let now = millis(web.node.now());
    let token = csrf_token(&web, &op);
    let mut b = frame(l, &op, "/console/transfers");
    if let Some(done) = uri.query().and_then(|q| q.split('&').find_map(|p| p.strip_prefix("done="))) {
        let text = match done {
            "revived" => l.t(
                "Đã đưa chuyển giao trở lại hàng đợi; nút gửi ngay.",
                "The transfer is waiting again and is being sent now.",
            ),
            "hastened" => l.t("Đã yêu cầu gửi lại ngay.", "The transfer is being sent now."),
            "dropped" => l.t("Đã bỏ chuyển giao.", "The transfer was dropped."),
            _ => l.t(
                "Không có gì thay đổi: chuyển giao không còn chờ.",
                "Nothing changed: the transfer is no longer waiting.",
            ),
        };
        let _ = write!(b, "<p class=\"notice\" role=\"status\">{text}</p>");
    }
    let _ = write!(
        b,
        "<h2 id=\"outbox\">{}</h2><p class=\"hint\">{}</p><table><caption>{}</caption>{}<tbody>",
        l.t("Chuyển giao đang chờ và thất bại", "Transfers waiting and dead"),
        l.t(
            "Thử lại: một chuyển giao thất bại hẳn được đưa lại hàng đợi (đếm lại số lần thử); một chuyển giao đang chờ được gửi ngay. Bỏ: chỉ với chuyển giao thất bại hẳn (nơi gửi đã được báo).",
            "Retry: a dead transfer waits again (its attempts counted afresh); a waiting one is sent now. Drop: dead transfers only (their sender was told)."
        ),
        l.t("Mới nhất trước: thất bại hẳn, rồi đang chờ theo thời gian", "Dead first, then waiting by age"),
        head(&[
            "#",
            l.t("Loại", "Kind"),
            l.t("Văn bản", "Document"),
            l.t("Tới", "Next hop"),
            l.t("Trạng thái", "State"),
            l.t("Lần thử", "Attempts"),
            l.t("Chờ từ", "Waiting since"),
            l.t("Lần tới", "Next attempt"),
            l.t("Lỗi gần nhất", "Last error"),
            l.t("Thao tác", "Actions"),
        ])
    );
    if rows.is_empty() {
        let _ = write!(
            b,
            "<tr><td colspan=\"10\">{}</td></tr>",
            l.t("Không có chuyển giao nào đang chờ.", "Nothing is waiting.")
        );
    }
    for t in &rows {
        let state = match t.state.as_str() {
            "dead" => l.t("THẤT BẠI HẲN", "DEAD"),
            _ if t.attempts > 0 => l.t("đang thử lại", "retrying"),
            _ => l.t("đang chờ", "waiting"),
        };
        let kind = if t.kind == "document" { l.t("văn bản", "document") } else { l.t("biên nhận", "notice") };
        let document = match &t.subject {
            Some(s) => format!("{} — {}", t.document, s),
            None => t.document.clone(),
        };
        let next = if t.state == "dead" {
            String::new()
        } else if t.next_attempt_at <= now {
            l.t("bây giờ", "now").to_owned()
        } else {
            format!("{} s", (t.next_attempt_at - now) / 1000)
        };
        let mut actions = format!(
            r#"<form class="inline" method="post" action="/console/transfers/{id}/retry?lang={code}"><input type="hidden" name="csrf" value="{token}"><button type="submit" aria-label="{retry_label} #{id}">{retry}</button></form>"#,
            id = t.id,
            code = l.code(),
            token = token,
            retry = l.t("Thử lại", "Retry"),
            retry_label = l.t("Thử lại chuyển giao", "Retry transfer"),
        );
        if t.state == "dead" {
            let _ = write!(
                actions,
                r#" <form class="inline" method="post" action="/console/transfers/{id}/drop?lang={code}"><input type="hidden" name="csrf" value="{token}"><button type="submit" class="danger" aria-label="{drop_label} #{id}">{drop}</button></form>"#,
                id = t.id,
                code = l.code(),
                token = token,
                drop = l.t("Bỏ", "Drop"),
                drop_label = l.t("Bỏ chuyển giao", "Drop transfer"),
            );
        }
        let _ = write!(
            b,
            "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"state\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            t.id,
            kind,
            esc(&document),
            esc(&t.next_hop),
            state,
            t.attempts,
            from_millis(t.created_at).map(vn_time).unwrap_or_default(),
            next,
            esc(t.last_error.as_deref().unwrap_or("")),
            actions
        );
    }
    b.push_str("</tbody></table>");
    let _ = write!(b, "<h2 id=\"mail\">{}</h2>", l.t("Thư thông báo", "Notification mail"));
    match &mail {
        None => {
            let _ = write!(b, "<p>{}</p>", l.t("Không gửi thư (không có [mail]).", "Mail is off (no [mail])."));
        }
        Some(m) => {
            let _ = write!(
                b,
                "<dl class=\"fields\"><dt>{}</dt><dd>{} ({} {})</dd><dt>{}</dt><dd>{} s</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd></dl>",
                l.t("Đang chờ", "Waiting"),
                m.pending,
                m.retrying,
                l.t("đang thử lại", "retrying"),
                l.t("Chờ lâu nhất", "Oldest wait"),
                m.oldest_pending_seconds,
                l.t("Thất bại hẳn", "Dead"),
                m.dead,
                l.t("Đã gửi", "Sent"),
                m.sent,
                l.t("Lỗi gần nhất", "Last error"),
                esc(m.last_error.as_deref().unwrap_or("—"))
            );
        }
    }
    let _ = write!(
        b,
        "<h2 id=\"actions\">{}</h2><table>{}<tbody>",
        l.t("Thao tác của người vận hành (từ khi khởi động)", "Operators' actions (since start)"),
        head(&[l.t("Thời gian", "Time"), l.t("Người vận hành", "Operator"), l.t("Thao tác", "Action")])
    );
    let actions: Vec<Action> =
        web.actions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().cloned().collect();
    if actions.is_empty() {
        let _ = write!(b, "<tr><td colspan=\"3\">{}</td></tr>", l.t("chưa có", "none yet"));
    }
    for a in actions {
        b.push_str(&row(&[&vn_time(a.at), &a.operator, &a.what]));
    }
    b.push_str("</tbody></table>");
    Page::new(&web, lang, &uri, lang.t("Hàng đợi", "Queues"), b).into_response()
}

/// `/console/certificates`.
async fn certificates(State(web): State<Arc<Web>>, lang: Lang, uri: Uri, request: Request) -> Response {
    let op = match operator(&web, lang, connection(&request).as_ref()) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let l = lang;
    let now = web.node.now();
    let mut b = frame(l, &op, "/console/certificates");
    let _ = write!(
        b,
        "<h2>{}</h2><table>{}<tbody>",
        l.t("Chứng thư của nút", "The node's certificates"),
        head(&[
            l.t("Dùng cho", "Used for"),
            l.t("Chứng thư", "Certificate"),
            l.t("Số hiệu", "Serial"),
            l.t("Hết hạn", "Expires"),
            l.t("Còn", "Left"),
        ])
    );
    for (what, identity) in [
        (l.t("kết nối QUIC (node)", "QUIC connections (node)"), &web.node.config.tls),
        (l.t("con dấu ký biên nhận (seal)", "seal signing receipts"), &web.node.config.seal),
    ] {
        if let Some(c) = identity.chain.first() {
            let days = (c.not_after - now).whole_days();
            let left = if days < 30 {
                format!("<strong class=\"alert\">{days} {}</strong>", l.t("ngày", "days"))
            } else {
                format!("{days} {}", l.t("ngày", "days"))
            };
            let _ = write!(
                b,
                "<tr><th scope=\"row\">{}</th><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
                what,
                esc(&c.id().name),
                esc(&c.serial.to_string()),
                vn_time(c.not_after),
                left
            );
        }
    }
    b.push_str("</tbody></table>");
    let _ = write!(
        b,
        "<h2>{}</h2><table>{}<tbody>",
        l.t("Người vận hành được phép (http.operators)", "Operators allowed (http.operators)"),
        head(&[l.t("Tên", "Name"), "SHA-256"])
    );
    for (name, fingerprint) in &web.settings.operators {
        b.push_str(&row(&[name, &hex::encode(fingerprint)]));
    }
    b.push_str("</tbody></table>");
    let _ = write!(
        b,
        "<h2>{}</h2><table>{}<tbody>",
        l.t("Danh sách thu hồi (CRL) đang giữ", "CRLs held"),
        head(&[
            l.t("Cơ quan cấp", "Issuer"),
            l.t("Ban hành", "Issued"),
            l.t("Lần sau", "Next due"),
            l.t("Số chứng thư bị thu hồi", "Revoked certificates"),
            l.t("Tình trạng", "State"),
        ])
    );
    let validator = web.node.trust.trust().validator();
    let crls = super::probes::newest_per_issuer(validator.crls());
    if crls.is_empty() {
        let _ = write!(
            b,
            "<tr><td colspan=\"5\" class=\"alert\">{}</td></tr>",
            l.t("Không giữ CRL nào: không kiểm tra được thu hồi.", "No CRL held: revocation cannot be checked.")
        );
    }
    for c in crls {
        let stale = web.node.trust.trust().is_stale(c.this_update, now) || c.next_update < now;
        let _ = write!(
            b,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"state\">{}</td></tr>",
            esc(&c.issuer),
            vn_time(c.this_update),
            vn_time(c.next_update),
            c.revoked.len(),
            if stale {
                l.t("QUÁ HẠN (xác minh tạm thời)", "STALE (verification provisional)")
            } else {
                l.t("còn mới", "fresh")
            }
        );
    }
    b.push_str("</tbody></table>");
    Page::new(&web, lang, &uri, lang.t("Chứng thư và CRL", "Certificates and CRLs"), b).into_response()
}

/// `/console/refusals`.
async fn refusals(State(web): State<Arc<Web>>, lang: Lang, uri: Uri, request: Request) -> Response {
    let op = match operator(&web, lang, connection(&request).as_ref()) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let l = lang;
    let mut b = frame(l, &op, "/console/refusals");
    let _ = write!(
        b,
        "<table><caption>{}</caption>{}<tbody>",
        l.t(
            "Văn bản nút đã từ chối nhận, mới nhất trước (từ khi khởi động)",
            "Documents this node refused, newest first (since start)"
        ),
        head(&[
            l.t("Thời gian", "Time"),
            l.t("Văn bản", "Document"),
            l.t("Loại lý do", "Class"),
            l.t("Lý do", "Reason")
        ])
    );
    let recent = web.node.observed.telemetry().recent_refusals();
    if recent.is_empty() {
        let _ = write!(b, "<tr><td colspan=\"4\">{}</td></tr>", l.t("không có", "none"));
    }
    for r in recent {
        b.push_str(&row(&[&vn_time(r.at), &r.document, r.class, &r.reason]));
    }
    b.push_str("</tbody></table>");
    Page::new(&web, lang, &uri, lang.t("Văn bản bị từ chối", "Refusals"), b).into_response()
}

/// A console form's fields.
#[derive(Debug, serde::Deserialize)]
struct ActionForm {
    csrf: String,
}

/// Checks the operator and the CSRF token of an action.
fn authorise(web: &Web, lang: Lang, connection: Option<&Connection>, form: &ActionForm) -> Result<Operator, Response> {
    let op = operator(web, lang, connection)?;
    if !csrf_valid(web, &op, &form.csrf) {
        tracing::warn!(target: "lienthong::audit", operator = %op.name, "console action refused: bad CSRF token");
        return Err(super::html::error_page(
            lang,
            StatusCode::FORBIDDEN,
            lang.t("Yêu cầu không hợp lệ", "Request refused"),
            lang.t(
                "Thao tác phải gửi từ trang của bảng điều khiển (mã chống giả mạo không đúng). Mở lại trang và thử lại.",
                "Actions must come from a console page (the anti-forgery token does not match). Reload the page and try again.",
            ),
        )
        .into_response());
    }
    Ok(op)
}

fn record(web: &Web, op: &Operator, what: String) {
    tracing::info!(
        target: "lienthong::audit",
        operator = %op.name,
        agency = %op.agency,
        certificate = %hex::encode(op.fingerprint),
        action = %what,
        "operator action"
    );
    let mut actions = web.actions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if actions.len() == ACTIONS_KEPT {
        actions.pop_back();
    }
    actions.push_front(Action { at: web.node.now(), operator: format!("{} [{}]", op.name, op.agency), what });
}

fn back(lang: Lang, done: &str) -> Response {
    Redirect::to(&format!("/console/transfers?lang={}&done={done}#outbox", lang.code())).into_response()
}

/// Extracts the connection before the form consumes the request.
struct WithConnection(Option<Connection>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for WithConnection {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(WithConnection(parts.extensions.get::<Connection>().cloned()))
    }
}

/// `POST /console/transfers/{id}/retry`.
async fn retry(
    State(web): State<Arc<Web>>,
    lang: Lang,
    WithConnection(connection): WithConnection,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> Response {
    let op = match authorise(&web, lang, connection.as_ref(), &form) {
        Ok(o) => o,
        Err(r) => return r,
    };
    match queries::retry(&web.node.store, id, millis(web.node.now())).await {
        Ok(outcome) => {
            let done = match outcome {
                Retried::Revived => "revived",
                Retried::Hastened => "hastened",
                Retried::NotWaiting => "nothing",
            };
            record(&web, &op, format!("retry transfer {id}: {done}"));
            if outcome != Retried::NotWaiting {
                web.node.outbound.wake_outbox();
            }
            back(lang, done)
        }
        Err(e) => store_failure(&web, lang, &e),
    }
}

/// `POST /console/transfers/{id}/drop`.
async fn drop_transfer(
    State(web): State<Arc<Web>>,
    lang: Lang,
    WithConnection(connection): WithConnection,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> Response {
    let op = match authorise(&web, lang, connection.as_ref(), &form) {
        Ok(o) => o,
        Err(r) => return r,
    };
    match queries::drop_dead(&web.node.store, id, millis(web.node.now())).await {
        Ok(dropped) => {
            let done = if dropped { "dropped" } else { "nothing" };
            record(&web, &op, format!("drop transfer {id}: {done}"));
            back(lang, done)
        }
        Err(e) => store_failure(&web, lang, &e),
    }
}

/// `/status.json`: the health read-out, for operators and for the node's own certificate.
pub(crate) async fn status_json(State(web): State<Arc<Web>>, request: Request) -> Response {
    match Viewer::of(&web, connection(&request).as_ref(), web.node.now()) {
        Viewer::Operator(_) | Viewer::NodeItself => {}
        Viewer::Anonymous => {
            return json_error(
                StatusCode::FORBIDDEN,
                "a client certificate is needed: an operator's, or the node's own",
            );
        }
        Viewer::Refused(why) => return json_error(StatusCode::FORBIDDEN, &why),
    }
    match crate::health::report(&web.node).await {
        Ok(h) => match serde_json::to_string_pretty(&h) {
            Ok(text) => ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], text)
                .into_response(),
            Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        },
        Err(e) => {
            web.node.storage_failed("reading the status", &e);
            json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
    }
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], serde_json::json!({ "error": message }).to_string())
        .into_response()
}
