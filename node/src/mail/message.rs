//! What the notifications say: subject and body in Vietnamese, times in Vietnam time (ICT,
//! UTC+7), rendered when the notification is queued; and the email built from them when it is
//! sent (UTF-8 plain text; lettre encodes non-ASCII headers as RFC 2047 encoded words and the
//! body as quoted-printable, so every relay carries them intact).
//!
//! Everything here is a pure function of its inputs (the time included), so the same event
//! always renders the same notification.

use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes};
use pki::AgencyCode;
use pki::document::manifest::{Business, Manifest, Urgency};
use pki::document::{Receipt, StatusCode};
use time::{Date, OffsetDateTime, UtcOffset};

/// Vietnam time: every time a clerk reads is in it.
pub const ICT: UtcOffset = time::macros::offset!(+7);

/// Longest document subject repeated in a mail subject, in characters (the body has it whole).
const SUBJECT_CHARS: usize = 200;

/// What a notification is about; also its `kind` column and `X-Lienthong-Notification` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A document arrived for this agency.
    Arrived,
    /// A document this agency sent was refused or could not be delivered.
    Failed,
    /// A status came back for a document this agency sent (or a recall request for one it
    /// received).
    Status,
    /// A certificate expires soon (or has expired).
    Expiry,
    /// The daily digest of overdue documents.
    Digest,
    /// Something the operator must act on now (a certificate taken or refused because its
    /// revocation cannot be checked).
    Alert,
    /// A neighbour's transparency log does not extend the checkpoint this node co-signed.
    LogFork,
}

impl Kind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Arrived => "arrived",
            Kind::Failed => "failed",
            Kind::Status => "status",
            Kind::Expiry => "expiry",
            Kind::Digest => "digest",
            Kind::Alert => "alert",
            Kind::LogFork => "log_fork",
        }
    }
}

/// Who receives a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The agency's clerks.
    Clerks,
    /// The node's operators.
    Operators,
}

/// A rendered notification, ready to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// What about.
    pub kind: Kind,
    /// To whom.
    pub audience: Audience,
    /// The key that makes it unique: the same event never queues it twice.
    pub dedup_key: String,
    /// Subject, plain UTF-8.
    pub subject: String,
    /// Body, plain UTF-8.
    pub body: String,
}

/// The agency a node serves, as its notifications name it.
#[derive(Debug, Clone, Copy)]
pub struct Agency<'a> {
    /// Its code.
    pub code: AgencyCode,
    /// Its name.
    pub name: &'a str,
}

/// A document past its due date, for the digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdue {
    /// Document id.
    pub doc_id: String,
    /// Number and notation, `12/UBND-VP`.
    pub number: String,
    /// Subject.
    pub subject: String,
    /// Sender's name (or code).
    pub sender: String,
    /// Urgency code.
    pub urgency: u8,
    /// Due date.
    pub due: Date,
    /// The latest status this agency posted, if any.
    pub status: Option<u8>,
}

/// `dd/mm/yyyy`, as Vietnamese documents write dates.
pub fn date_vi(d: Date) -> String {
    format!("{:02}/{:02}/{:04}", d.day(), u8::from(d.month()), d.year())
}

/// `08:15 ngày 01/07/2025 (giờ Việt Nam)`.
pub fn time_vi(t: OffsetDateTime) -> String {
    let t = t.to_offset(ICT);
    format!("{:02}:{:02} ngày {} (giờ Việt Nam, UTC+7)", t.hour(), t.minute(), date_vi(t.date()))
}

/// The Vietnamese name of a status, as clerks know it.
pub fn status_vi(s: StatusCode) -> &'static str {
    match s {
        StatusCode::Arrived => "Đã đến nơi nhận",
        StatusCode::Refused => "Bị từ chối",
        StatusCode::Accepted => "Đã tiếp nhận",
        StatusCode::Assigned => "Đã phân công xử lý",
        StatusCode::Processing => "Đang xử lý",
        StatusCode::Completed => "Đã hoàn thành",
        StatusCode::RecallRequested => "Đề nghị thu hồi",
        StatusCode::RecallAccepted => "Đồng ý thu hồi/cập nhật",
        StatusCode::RefusedByRecipient => "Nơi nhận từ chối",
        _ => "Trạng thái khác",
    }
}

fn status_code_vi(code: Option<u8>) -> String {
    match code.and_then(|c| StatusCode::from_code(u64::from(c))) {
        Some(s) => format!("{:02} {}", s.code(), status_vi(s)),
        None => "chưa xử lý".into(),
    }
}

fn urgency_tag(u: Urgency) -> String {
    format!("[{}]", u.name_vi().to_uppercase())
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// A document id as a shell argument: bare when it is made of safe characters (it usually
/// is: `000.00.41.H49,2025/07/01,12/UBND-VP`), single-quoted otherwise.
fn shell_arg(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || ".,/_-:".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn number_of(m: &Manifest) -> String {
    format!("{}/{}", m.number, m.notation)
}

fn footer(agency: Agency<'_>) -> String {
    format!(
        "\n-- \nThư tự động từ nút liên thông văn bản của {} ({}). Vui lòng không trả lời thư này.\n",
        agency.name, agency.code
    )
}

fn business_vi(b: &Business) -> Option<String> {
    let (verb, target) = match b {
        Business::New => return None,
        Business::Revoke(t) => ("thu hồi", t),
        Business::Update(t) => ("cập nhật", t),
        Business::Replace(t) => ("thay thế", t),
    };
    Some(format!("{verb} văn bản {}/{}", target.number, target.notation))
}

/// A document arrived for `agency`: urgency first, then the sender and the subject; the body
/// has what a clerk registers and the exact command to fetch it.
pub fn arrived(agency: Agency<'_>, m: &Manifest, sender_name: &str, received_at: OffsetDateTime) -> Notification {
    let doc_id = m.id().to_string();
    let sender = if sender_name.trim().is_empty() { m.from.to_string() } else { sender_name.trim().to_owned() };
    let business = business_vi(&m.business);
    let mut subject = format!("{} {sender}: {}", urgency_tag(m.urgency), shorten(&m.subject, SUBJECT_CHARS));
    if let Some(b) = &business {
        subject.push_str(&format!(" ({b})"));
    }
    let attachments = if m.attachments.is_empty() {
        "(không có)".to_owned()
    } else {
        m.attachments.iter().map(|a| format!("{} ({} byte)", a.name, a.size)).collect::<Vec<_>>().join(", ")
    };
    let mut body = format!("{} gửi văn bản đến {}.\n\n", sender, agency.name);
    let mut field = |label: &str, value: &str| body.push_str(&format!("{label:<15} {value}\n"));
    field("Độ khẩn:", m.urgency.name_vi());
    field("Số, ký hiệu:", &number_of(m));
    field("Loại văn bản:", &m.type_name);
    field("Trích yếu:", &m.subject);
    field("Cơ quan gửi:", &format!("{sender} ({})", m.from));
    field("Ngày ban hành:", &format!("{}, {}", date_vi(m.date), m.place));
    field("Người ký:", &format!("{}, {}", m.signer_name, m.signer_position));
    field("Hạn xử lý:", &m.due.map_or_else(|| "(không ghi)".to_owned(), date_vi));
    if let Some(b) = &business {
        field("Nghiệp vụ:", b);
    }
    field("Tệp đính kèm:", &attachments);
    field("Mã văn bản:", &doc_id);
    field("Nhận lúc:", &time_vi(received_at));
    body.push_str(&format!(
        "\nLấy văn bản về máy (chữ ký và tệp đính kèm được kiểm tra khi tải):\n    lienthong fetch {} --out van-ban-{}\nXem hộp văn bản đến:\n    lienthong inbox\n\n",
        shell_arg(&doc_id),
        m.number
    ));
    body.push_str(if m.urgency >= Urgency::Flash {
        "Văn bản HỎA TỐC: cần chuyển và xử lý ngay khi nhận.\n"
    } else {
        "Đề nghị văn thư tiếp nhận và xác nhận đã nhận văn bản trong ngày.\n"
    });
    body.push_str(&footer(agency));
    Notification {
        kind: Kind::Arrived,
        audience: Audience::Clerks,
        dedup_key: format!("arrived:{doc_id}"),
        subject,
        body,
    }
}

/// What a status means to the clerks it is mailed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMeaning {
    /// 02: the network could not deliver a document this agency sent (unknown recipient,
    /// refused by a node, given up after the retry policy).
    Undeliverable,
    /// 16: the recipient refused a document this agency sent.
    RefusedByRecipient,
    /// 16 after this agency asked for a recall: the recipient refuses the recall.
    RecallRefused,
    /// 13: the sender asks this agency to recall a document it received (answer 15 or 16).
    RecallRequested,
    /// Progress of a document this agency sent (01, 03–06, 15).
    Progress,
}

impl StatusMeaning {
    /// A document of this agency's did not get through.
    pub fn is_failure(self) -> bool {
        matches!(self, StatusMeaning::Undeliverable | StatusMeaning::RefusedByRecipient | StatusMeaning::RecallRefused)
    }

    /// Refusals and recall requests (which the clerk must answer) are always mailed; progress
    /// only with `notify_status`.
    pub fn always_mailed(self) -> bool {
        self.is_failure() || self == StatusMeaning::RecallRequested
    }
}

/// A status `receipt` (whose SHA-256 over its signed bytes is `receipt_digest`) about the
/// document of manifest `m`, meaning `meaning` to this agency.
pub fn status(
    agency: Agency<'_>,
    m: &Manifest,
    code: StatusCode,
    meaning: StatusMeaning,
    receipt: &Receipt,
    receipt_digest: &[u8; 32],
) -> Notification {
    let doc_id = m.id().to_string();
    let number = number_of(m);
    let recipients = receipt.recipients.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let short = shorten(&m.subject, SUBJECT_CHARS);
    let by = receipt.by;
    let (tag, lead) = match meaning {
        StatusMeaning::Undeliverable => (
            format!("[KHÔNG GỬI ĐƯỢC] {number} đến {recipients}"),
            format!("Văn bản {number} do {} gửi không đến được nơi nhận {recipients}.", agency.name),
        ),
        StatusMeaning::RefusedByRecipient => (
            format!("[BỊ TỪ CHỐI] {number} bởi {by}"),
            format!("Nơi nhận {by} đã từ chối văn bản {number} do {} gửi.", agency.name),
        ),
        StatusMeaning::RecallRefused => (
            format!("[TỪ CHỐI THU HỒI] {number} bởi {by}"),
            format!("Nơi nhận {by} không đồng ý thu hồi văn bản {number}; văn bản vẫn có hiệu lực ở nơi nhận."),
        ),
        StatusMeaning::RecallRequested => (
            format!("[ĐỀ NGHỊ THU HỒI] {number} của {by}"),
            format!(
                "Cơ quan gửi {by} đề nghị thu hồi văn bản {number}. Trả lời bằng trạng thái 15 (đồng ý) hoặc 16 (từ chối)."
            ),
        ),
        StatusMeaning::Progress => (
            format!("[TRẠNG THÁI {:02}] {} – {by}", code.code(), status_vi(code)),
            format!("{by} báo trạng thái mới của văn bản {number}."),
        ),
    };
    let failure = meaning.is_failure();
    let mut body = format!("{lead}\n\n");
    let mut field = |label: &str, value: &str| body.push_str(&format!("{label:<15} {value}\n"));
    field("Trạng thái:", &format!("{:02} {}", code.code(), status_vi(code)));
    field("Do:", &by.to_string());
    field("Nơi nhận:", &recipients);
    if let Some(note) = receipt.note.as_deref().filter(|n| !n.trim().is_empty()) {
        field(if failure { "Lý do:" } else { "Ghi chú:" }, note);
    }
    field("Lúc:", &time_vi(receipt.at));
    field("Số, ký hiệu:", &number);
    field("Trích yếu:", &m.subject);
    field("Mã văn bản:", &doc_id);
    body.push_str(&format!("\nXem mọi biên nhận và trạng thái:\n    lienthong track {}\n", shell_arg(&doc_id)));
    match meaning {
        StatusMeaning::Undeliverable => body.push_str(
            "\nVăn bản chưa đến nơi nhận này. Kiểm tra mã nơi nhận, hoặc báo quản trị nút liên thông nếu lý do là lỗi kết nối; khắc phục xong thì gửi lại (lienthong send).\n",
        ),
        StatusMeaning::RecallRequested => body.push_str(&format!(
            "\nTrả lời đề nghị:\n    lienthong status {} recall-accepted    (15, đồng ý thu hồi)\n    lienthong status {} refused            (16, từ chối)\n",
            shell_arg(&doc_id),
            shell_arg(&doc_id)
        )),
        _ => {}
    }
    body.push_str(&footer(agency));
    let (kind, prefix) = if failure { (Kind::Failed, "failed") } else { (Kind::Status, "status") };
    Notification {
        kind,
        audience: Audience::Clerks,
        dedup_key: format!("{prefix}:{}", hex::encode(receipt_digest)),
        subject: format!("{tag}: {short}"),
        body,
    }
}

/// The reminder steps of a certificate: warned once when it enters each step (`expiry_days`,
/// 14, 7, 3 and 1 days left, and once expired), so operators hear of it a few times, not daily.
pub fn expiry_step(days_left: i64, expiry_days: u32) -> Option<i64> {
    if days_left > i64::from(expiry_days) {
        return None;
    }
    if days_left < 0 {
        return Some(-1);
    }
    [1, 3, 7, 14, i64::from(expiry_days)].into_iter().filter(|s| *s <= i64::from(expiry_days)).find(|s| days_left <= *s)
}

/// A certificate (described as `what`) expires within the warning period.
pub fn expiry(agency: Agency<'_>, what: &str, cert: &pki::Certificate, now: OffsetDateTime, step: i64) -> Notification {
    let days_left = (cert.not_after - now).whole_days();
    let id = cert.id();
    let subject = if cert.not_after <= now {
        format!("[CHỨNG THƯ ĐÃ HẾT HẠN] {what}: {}", id.name)
    } else {
        format!(
            "[CHỨNG THƯ SẮP HẾT HẠN] {what}: còn {days_left} ngày ({})",
            date_vi(cert.not_after.to_offset(ICT).date())
        )
    };
    let mut body = if cert.not_after <= now {
        format!("{what} của {} đã hết hạn.\n\n", agency.name)
    } else {
        format!("{what} của {} sẽ hết hạn sau {days_left} ngày.\n\n", agency.name)
    };
    let mut field = |label: &str, value: &str| body.push_str(&format!("{label:<15} {value}\n"));
    field("Chủ thể:", &cert.subject);
    field("Số hiệu:", &id.serial.to_string());
    field("Cơ quan cấp:", &cert.issuer);
    field("Hết hạn lúc:", &time_vi(cert.not_after));
    field("SHA-256:", &hex::encode(cert.fingerprint()));
    body.push_str(
        "\nĐề nghị cơ quan cấp chứng thư cấp lại (lienthong pki issue ...), thay tệp chứng thư và khóa, kiểm tra bằng `lienthong-node check` rồi khởi động lại nút. Khi hết hạn, nút không kết nối được với các nút khác hoặc không ký được biên nhận.\n",
    );
    body.push_str(&footer(agency));
    let key = format!("expiry:{}:{step}", hex::encode(cert.fingerprint()));
    Notification { kind: Kind::Expiry, audience: Audience::Operators, dedup_key: key, subject, body }
}

/// `who` presented a certificate whose revocation this node cannot check (`gap`); it was
/// `accepted` anyway (the operator's opt-in `crl.danger_accept_unchecked`) or refused.
/// `window` makes the same event mail at most once per alert window.
pub fn revocation_alert(
    agency: Agency<'_>,
    who: &str,
    gap: &str,
    accepted: bool,
    now: OffsetDateTime,
    window: i64,
) -> Notification {
    let subject = if accepted {
        format!("[CẢNH BÁO] Chấp nhận chứng thư chưa kiểm tra thu hồi: {who}")
    } else {
        format!("[CẢNH BÁO] Từ chối chứng thư không kiểm tra được thu hồi: {who}")
    };
    let mut body = if accepted {
        format!(
            "Nút của {} đã chấp nhận {who} mà không kiểm tra được chứng thư có bị thu hồi hay không, vì cấu hình crl.danger_accept_unchecked = true.\n\n",
            agency.name
        )
    } else {
        format!(
            "Nút của {} đã từ chối {who} vì không kiểm tra được chứng thư có bị thu hồi hay không.\n\n",
            agency.name
        )
    };
    body.push_str(&format!("{:<15} {gap}\n", "Lý do:"));
    body.push_str(&format!("{:<15} {}\n", "Lúc:", time_vi(now)));
    body.push_str(
        "\nĐề nghị cấp cho nút danh sách thu hồi (CRL) mới: tệp trong crl.files, hoặc kiểm tra kết nối với nút cấp trên (nút tự hỏi CRL từ nút cấp trên). Xem `lienthong-node status`.\n",
    );
    body.push_str(&footer(agency));
    let key = format!("alert:revocation:{}:{who}:{window}", if accepted { "accepted" } else { "refused" });
    Notification { kind: Kind::Alert, audience: Audience::Operators, dedup_key: key, subject, body }
}

/// The daily digest for `day` (Vietnam date): documents in the inbox past their due date and
/// not completed. `total` may exceed `entries.len()` (the list is capped).
pub fn digest(agency: Agency<'_>, day: Date, entries: &[Overdue], total: usize) -> Notification {
    let subject = format!("[TỔNG HỢP {}] {total} văn bản quá hạn xử lý", date_vi(day));
    let mut body = format!(
        "Ngày {}: {} có {total} văn bản đến đã quá hạn xử lý mà chưa hoàn thành.\n\n",
        date_vi(day),
        agency.name
    );
    for (i, e) in entries.iter().enumerate() {
        let late = (day - e.due).whole_days();
        let urgency = Urgency::from_code(u64::from(e.urgency)).unwrap_or(Urgency::Normal).name_vi();
        body.push_str(&format!(
            "{}. {} ({urgency}) của {}\n   {}\n   Hạn {} (quá {late} ngày), trạng thái: {}\n   lienthong show {}\n\n",
            i + 1,
            e.number,
            e.sender,
            e.subject,
            date_vi(e.due),
            status_code_vi(e.status),
            shell_arg(&e.doc_id)
        ));
    }
    if total > entries.len() {
        body.push_str(&format!("... và {} văn bản khác (lienthong inbox).\n\n", total - entries.len()));
    }
    body.push_str("Cập nhật trạng thái khi xử lý xong: lienthong status <mã văn bản> completed\n");
    body.push_str(&footer(agency));
    Notification { kind: Kind::Digest, audience: Audience::Clerks, dedup_key: format!("digest:{}", day), subject, body }
}

/// A neighbour's transparency log (`log`) presented a checkpoint that does not extend the one
/// of `witnessed_size` leaves this node co-signed: the operators are told once per log and
/// size.
pub fn log_fork(
    agency: Agency<'_>,
    log: &AgencyCode,
    reason: &str,
    witnessed_size: u64,
    at: OffsetDateTime,
) -> Notification {
    let subject = format!("[CẢNH BÁO NHẬT KÝ] Nhật ký của {log} không nối tiếp điểm kiểm tra đã đồng ký");
    let mut body = format!(
        "Nút {log} đã gửi một điểm kiểm tra (checkpoint) nhật ký minh bạch không nối tiếp điểm kiểm tra {witnessed_size} mục mà {} đã đồng ký.\n\n",
        agency.name
    );
    body.push_str(&format!("{:<15} {reason}\n", "Lý do:"));
    body.push_str(&format!("{:<15} {}\n", "Lúc:", time_vi(at)));
    body.push_str(
        "\nHai điểm kiểm tra đã ký được lưu làm bằng chứng (bảng tlog_forks). Nhật ký của nút kia có thể đã bị sửa hoặc rẽ nhánh: đề nghị liên hệ đơn vị vận hành nút đó và kiểm tra (lienthong-node status).\n",
    );
    body.push_str(&footer(agency));
    Notification {
        kind: Kind::LogFork,
        audience: Audience::Operators,
        dedup_key: format!("log_fork:{log}:{witnessed_size}"),
        subject,
        body,
    }
}

/// The Message-ID of a notification: derived from the agency and the dedup key only, so a
/// notification sent twice (a crash between the relay's acceptance and recording it as sent)
/// carries the same id, and mail clients show it once.
pub fn message_id(agency: &AgencyCode, dedup_key: &str, domain: &str) -> String {
    let digest = pki::sha256(format!("lienthong mail\0{agency}\0{dedup_key}").as_bytes());
    format!("<lienthong.{}@{domain}>", hex::encode(&digest[..16]))
}

/// The email: plain UTF-8 text, the stored Message-ID, the Date of the event (so a resent copy
/// is the same message), and `Auto-Submitted: auto-generated` so that out-of-office replies
/// stay quiet (RFC 3834).
pub fn email(
    from: &Mailbox,
    to: &[Mailbox],
    kind: &str,
    subject: &str,
    body: &str,
    message_id: &str,
    date: OffsetDateTime,
) -> Result<Message, lettre::error::Error> {
    let date = std::time::SystemTime::UNIX_EPOCH
        + std::time::Duration::from_secs(u64::try_from(date.unix_timestamp()).unwrap_or(0));
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject)
        .message_id(Some(message_id.to_owned()))
        .date(date)
        .header(ContentType::TEXT_PLAIN)
        .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("Auto-Submitted"), "auto-generated".into()))
        .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("X-Lienthong-Notification"), kind.to_owned()));
    builder = builder.mailbox(lettre::message::header::To::from(to.iter().cloned().collect::<Mailboxes>()));
    builder.body(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pki::document::manifest::{Attachment, DocumentKind};

    fn manifest(urgency: Urgency) -> Manifest {
        Manifest {
            from: "000.00.41.H49".parse().unwrap(),
            to: vec!["000.01.41.H49".parse().unwrap()],
            number: 12,
            notation: "UBND-VP".into(),
            place: "Tiên Yên".into(),
            date: time::macros::date!(2025 - 06 - 30),
            kind: DocumentKind::Administrative,
            type_name: "Công văn".into(),
            subject: "Về việc phòng, chống bão số 3".into(),
            signer_name: "Nguyễn Văn An".into(),
            signer_position: "Chủ tịch".into(),
            due: Some(time::macros::date!(2025 - 07 - 02)),
            urgency,
            steering: 0,
            business: Business::New,
            attachments: vec![Attachment {
                name: "cv-12.pdf".into(),
                media_type: "application/pdf".into(),
                size: 1234,
                sha256: [0; 32],
            }],
        }
    }

    fn phong_du() -> Agency<'static> {
        Agency { code: "000.01.41.H49".parse().unwrap(), name: "Ủy ban nhân dân xã Phong Dụ" }
    }

    #[test]
    fn an_arrival_starts_with_the_urgency_and_says_how_to_fetch() {
        let at = time::macros::datetime!(2025-07-01 01:15 UTC);
        let n = arrived(phong_du(), &manifest(Urgency::Flash), "Ủy ban nhân dân huyện Tiên Yên", at);
        assert_eq!(n.subject, "[HỎA TỐC] Ủy ban nhân dân huyện Tiên Yên: Về việc phòng, chống bão số 3");
        assert_eq!(n.dedup_key, "arrived:000.00.41.H49,2025/06/30,12/UBND-VP");
        assert!(n.body.contains("Số, ký hiệu:    12/UBND-VP\n"), "{}", n.body);
        assert!(n.body.contains("Hạn xử lý:      02/07/2025\n"), "{}", n.body);
        assert!(n.body.contains("08:15 ngày 01/07/2025 (giờ Việt Nam, UTC+7)"), "{}", n.body);
        assert!(
            n.body.contains("lienthong fetch 000.00.41.H49,2025/06/30,12/UBND-VP --out van-ban-12\n"),
            "{}",
            n.body
        );
        let normal = arrived(phong_du(), &manifest(Urgency::Normal), "", at);
        assert!(normal.subject.starts_with("[THƯỜNG] 000.00.41.H49: "), "{}", normal.subject);
    }

    #[test]
    fn statuses_say_what_they_mean_to_the_clerk() {
        let m = manifest(Urgency::Normal);
        let receipt = |code, note: Option<&str>| Receipt {
            kind: pki::document::ReceiptKind::Status(code),
            document: m.id(),
            envelope: [7; 32],
            by: "000.01.41.H49".parse().unwrap(),
            to: m.from,
            at: time::macros::datetime!(2025-07-01 03:00 UTC),
            recipients: vec!["000.01.41.H49".parse().unwrap()],
            note: note.map(str::to_owned),
        };
        let tien_yen = Agency { code: m.from, name: "Ủy ban nhân dân huyện Tiên Yên" };
        let cases = [
            (
                StatusCode::Refused,
                StatusMeaning::Undeliverable,
                "[KHÔNG GỬI ĐƯỢC] 12/UBND-VP đến 000.01.41.H49: ",
                Kind::Failed,
            ),
            (
                StatusCode::RefusedByRecipient,
                StatusMeaning::RefusedByRecipient,
                "[BỊ TỪ CHỐI] 12/UBND-VP bởi 000.01.41.H49: ",
                Kind::Failed,
            ),
            (
                StatusCode::RefusedByRecipient,
                StatusMeaning::RecallRefused,
                "[TỪ CHỐI THU HỒI] 12/UBND-VP bởi 000.01.41.H49: ",
                Kind::Failed,
            ),
            (
                StatusCode::RecallRequested,
                StatusMeaning::RecallRequested,
                "[ĐỀ NGHỊ THU HỒI] 12/UBND-VP của 000.01.41.H49: ",
                Kind::Status,
            ),
            (
                StatusCode::Completed,
                StatusMeaning::Progress,
                "[TRẠNG THÁI 06] Đã hoàn thành – 000.01.41.H49: ",
                Kind::Status,
            ),
        ];
        for (code, meaning, subject, kind) in cases {
            let n = status(tien_yen, &m, code, meaning, &receipt(code, Some("lý do")), &[1; 32]);
            assert!(n.subject.starts_with(subject), "{}", n.subject);
            assert!(n.subject.ends_with("Về việc phòng, chống bão số 3"), "{}", n.subject);
            assert_eq!(n.kind, kind);
            assert_eq!(n.dedup_key, format!("{}:{}", kind.as_str(), "01".repeat(32)));
            assert!(n.body.contains("lienthong track 000.00.41.H49,2025/06/30,12/UBND-VP\n"), "{}", n.body);
            assert!(n.body.contains("10:00 ngày 01/07/2025"), "{}", n.body);
            let label = if meaning.is_failure() { "Lý do:          lý do\n" } else { "Ghi chú:        lý do\n" };
            assert!(n.body.contains(label), "{}", n.body);
        }
    }

    #[test]
    fn odd_ids_are_quoted_for_the_shell() {
        assert_eq!(shell_arg("000.00.41.H49,2025/06/30,12/UBND-VP"), "000.00.41.H49,2025/06/30,12/UBND-VP");
        assert_eq!(shell_arg("1/QĐ-UBND"), "'1/QĐ-UBND'");
        assert_eq!(shell_arg("a'b c"), r"'a'\''b c'");
    }

    #[test]
    fn expiry_steps_warn_a_few_times_then_once_expired() {
        let steps: Vec<Option<i64>> = [40, 30, 20, 14, 8, 7, 2, 1, 0, -1].iter().map(|d| expiry_step(*d, 30)).collect();
        assert_eq!(steps, [None, Some(30), Some(30), Some(14), Some(14), Some(7), Some(3), Some(1), Some(1), Some(-1)]);
        assert_eq!(expiry_step(5, 5), Some(5));
    }

    #[test]
    fn message_ids_depend_on_agency_and_key_only() {
        let a: AgencyCode = "000.01.41.H49".parse().unwrap();
        let b: AgencyCode = "000.02.41.H49".parse().unwrap();
        let id = message_id(&a, "arrived:x", "phongdu.example.gov.vn");
        assert_eq!(id, message_id(&a, "arrived:x", "phongdu.example.gov.vn"));
        assert_ne!(id, message_id(&b, "arrived:x", "phongdu.example.gov.vn"));
        assert_ne!(id, message_id(&a, "arrived:y", "phongdu.example.gov.vn"));
        assert!(id.starts_with("<lienthong.") && id.ends_with("@phongdu.example.gov.vn>"), "{id}");
    }

    #[test]
    fn the_email_encodes_vietnamese_headers_and_body_for_any_relay() {
        let from: Mailbox = "Liên thông Phong Dụ <lienthong@phongdu.example.gov.vn>".parse().unwrap();
        let to: Vec<Mailbox> = vec!["Văn thư <vanthu@phongdu.example.gov.vn>".parse().unwrap()];
        let date = time::macros::datetime!(2025-07-01 01:15 UTC);
        let m =
            email(&from, &to, "arrived", "[HỎA TỐC] Về việc bão số 3", "Độ khẩn: Hỏa tốc\n", "<x@y>", date).unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(text.is_ascii(), "{text}");
        assert!(text.contains("Subject: =?utf-8?"), "{text}");
        assert!(text.contains("Content-Type: text/plain; charset=utf-8"), "{text}");
        assert!(text.contains("Message-ID: <x@y>"), "{text}");
        assert!(text.contains("Date: Tue, 01 Jul 2025 01:15:00 +0000"), "{text}");
        assert!(text.contains("Auto-Submitted: auto-generated"), "{text}");
    }
}
