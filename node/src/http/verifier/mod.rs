//! `/verify`: upload a bundle, get its report.
//!
//! The upload is streamed to a temporary file under `DATA_DIR/http-uploads/` while its
//! SHA-256 and size are taken; past `http.max_upload_bytes` it stops at once with a 413 page.
//! A place among the `http.max_concurrent_verifications` is taken before a byte is read
//! (else 503), and held until the verification, which runs on the blocking pool with the
//! node's trust anchors, its CRLs and those in the bundle, is over. The temporary file is
//! deleted when the answer is sent unless `http.keep_uploads` is on (then it is moved to
//! `DATA_DIR/uploads/`). Memory stays bounded whatever the upload: chunks go to disk, and
//! the bundle reader streams attachments.

mod page;
mod report;

pub(crate) use page::vn_time;

use std::io::BufReader;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use pki::document::validation::{VerifyOptions, verify_bundle};
use tokio::io::AsyncWriteExt;

use super::VerifierAccess;
use super::auth::{Connection, Viewer};
use super::html::{Page, error_page};
use super::i18n::Lang;
use super::server::Web;

/// Room for the multipart framing around the file (boundaries, part headers, small fields).
const MULTIPART_SLACK: u64 = 64 * 1024;

/// What was uploaded.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Upload {
    /// The file name the browser gave, if any.
    pub(crate) name: Option<String>,
    /// Its size.
    pub(crate) bytes: u64,
    /// Its SHA-256, hex.
    pub(crate) sha256: String,
    /// Where it was kept (`http.keep_uploads`), if it was.
    pub(crate) kept_as: Option<String>,
}

/// The verifier's routes. Uploads are not cut off by axum's body limit: the handler counts
/// the bytes itself and, past `http.max_upload_bytes`, reads the rest without keeping it, so
/// the sender (a browser too) gets the 413 page instead of a reset connection.
pub(crate) fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/verify", axum::routing::get(form).post(upload_page).layer(DefaultBodyLimit::disable()))
        .route("/verify.json", axum::routing::post(upload_json).layer(DefaultBodyLimit::disable()))
}

/// Reads and discards the rest of a refused upload (the request's deadline bounds it).
async fn drain(body: axum::body::Body) {
    let mut body = body;
    while let Some(Ok(_)) = body.frame().await {}
}

/// Whether `viewer` may use the verifier; the page to answer with otherwise.
fn allowed(web: &Web, lang: Lang, viewer: &Viewer) -> Result<(), Page> {
    match (web.settings.verifier, viewer) {
        (VerifierAccess::Public, _) | (VerifierAccess::Operators, Viewer::Operator(_)) => Ok(()),
        (VerifierAccess::Off, _) => Err(error_page(
            lang,
            StatusCode::NOT_FOUND,
            lang.t("Không có trình kiểm tra", "No verifier here"),
            lang.t(
                "Nút này không mở trình kiểm tra văn bản (http.verifier = \"off\"). Dùng lệnh `lienthong verify`.",
                "This node does not offer the verifier (http.verifier = \"off\"). Use `lienthong verify`.",
            ),
        )),
        (VerifierAccess::Operators, _) => Err(error_page(
            lang,
            StatusCode::FORBIDDEN,
            lang.t("Chỉ dành cho người vận hành", "Operators only"),
            lang.t(
                "Trình kiểm tra của nút này chỉ dành cho người vận hành có chứng thư máy khách được liệt kê (http.operators).",
                "This node's verifier is for operators with a listed client certificate (http.operators).",
            ),
        )),
    }
}

fn viewer_of(web: &Web, request: &Request) -> Viewer {
    Viewer::of(web, request.extensions().get::<Connection>(), web.node.now())
}

/// `GET /verify`: the upload form.
async fn form(State(web): State<Arc<Web>>, lang: Lang, request: Request) -> Response {
    let uri = request.uri().clone();
    if let Err(page) = allowed(&web, lang, &viewer_of(&web, &request)) {
        return page.into_response();
    }
    page::form(&web, lang, &uri).into_response()
}

/// `POST /verify`: the report as a page, or as JSON when `Accept` asks for it.
async fn upload_page(State(web): State<Arc<Web>>, lang: Lang, request: Request) -> Response {
    let json = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
    handle(web, lang, request, json).await
}

/// `POST /verify.json`: the report as JSON.
async fn upload_json(State(web): State<Arc<Web>>, lang: Lang, request: Request) -> Response {
    handle(web, lang, request, true).await
}

/// A refusal before verification, as a page or as JSON.
fn refusal(lang: Lang, json: bool, status: StatusCode, title: &str, message: String) -> Response {
    if json {
        let body = serde_json::json!({ "error": title, "reason": message });
        return (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    }
    error_page(lang, status, title, &message).into_response()
}

async fn handle(web: Arc<Web>, lang: Lang, request: Request, json: bool) -> Response {
    let uri = request.uri().clone();
    if let Err(page) = allowed(&web, lang, &viewer_of(&web, &request)) {
        if json {
            return refusal(lang, true, page.status, &page.title, page.title.clone());
        }
        return page.into_response();
    }
    let max = web.settings.max_upload_bytes;
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max.saturating_add(MULTIPART_SLACK)) {
        web.node.observed.telemetry().web_verifications.get_or_create(&vec![("result", "refused".to_owned())]).inc();
        drain(request.into_body()).await;
        return too_large(lang, json, max);
    }
    let Ok(permit) = web.verifications.clone().try_acquire_owned() else {
        return refusal(
            lang,
            json,
            StatusCode::SERVICE_UNAVAILABLE,
            lang.t("Đang bận", "Busy"),
            lang.t(
                "Nút đang kiểm tra nhiều văn bản khác (http.max_concurrent_verifications). Hãy thử lại sau ít phút.",
                "The node is verifying as many documents as it allows at once (http.max_concurrent_verifications). Try again in a minute.",
            )
            .to_owned(),
        );
    };
    let received = match receive(&web, request, max, declared).await {
        Ok(r) => r,
        Err(problem) => {
            web.node
                .observed
                .telemetry()
                .web_verifications
                .get_or_create(&vec![("result", "refused".to_owned())])
                .inc();
            return match problem {
                Problem::TooLarge => too_large(lang, json, max),
                Problem::NoFile => refusal(
                    lang,
                    json,
                    StatusCode::BAD_REQUEST,
                    lang.t("Chưa chọn tệp", "No file"),
                    lang.t(
                        "Hãy chọn một tệp .ltd rồi bấm Kiểm tra (trường \"bundle\").",
                        "Choose a .ltd file, then press Verify (the \"bundle\" field).",
                    )
                    .to_owned(),
                ),
                Problem::Space(e) => refusal(
                    lang,
                    json,
                    StatusCode::INSUFFICIENT_STORAGE,
                    lang.t("Không đủ chỗ", "No room"),
                    format!("{}: {e}", lang.t("Nút không còn chỗ để nhận tệp", "The node has no room for the upload")),
                ),
                Problem::Read(e) => refusal(
                    lang,
                    json,
                    StatusCode::BAD_REQUEST,
                    lang.t("Tải lên không trọn vẹn", "Upload incomplete"),
                    format!("{}: {e}", lang.t("Không nhận được trọn tệp", "The file did not arrive whole")),
                ),
            };
        }
    };
    let (mut upload, file) = received;
    let node = web.node.clone();
    let mut options = VerifyOptions::new(node.trust.trust().anchors().to_vec(), node.now());
    options.crls = node.trust.trust().validator().crls().iter().cloned().collect();
    options.cache = Some(node.trust.trust().cache());
    let verified = tokio::task::spawn_blocking(move || {
        // Held until the verification is over, even if the answer is no longer awaited.
        let _permit = permit;
        let result = file
            .reopen()
            .map_err(pki::document::VerifyError::Io)
            .and_then(|f| verify_bundle(BufReader::new(f), &options));
        (result, file)
    })
    .await;
    let (result, file) = match verified {
        Ok(r) => r,
        Err(e) => {
            return refusal(lang, json, StatusCode::INTERNAL_SERVER_ERROR, "verification failed", e.to_string());
        }
    };
    // Only an unreadable temporary file gets no report (a damaged bundle is FAILED in one).
    let verdict = match result {
        Ok(report) => report,
        Err(e) => {
            return refusal(lang, json, StatusCode::INTERNAL_SERVER_ERROR, "verification failed", e.to_string());
        }
    };
    let indication = verdict.indication();
    node.observed
        .telemetry()
        .web_verifications
        .get_or_create(&vec![("result", report::class(indication).to_owned())])
        .inc();
    if web.settings.keep_uploads {
        upload.kept_as =
            keep(&node, file, &upload).map_err(|e| tracing::warn!(error = %e, "cannot keep an upload")).ok();
    }
    tracing::info!(
        indication = indication.name(),
        sub_indication = verdict.sub_indication().map(|s| s.name()).unwrap_or(""),
        bytes = upload.bytes,
        sha256 = %upload.sha256,
        "web verifier: bundle checked"
    );
    if json {
        let body = report::to_json(&verdict, &upload);
        return ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body.to_string())
            .into_response();
    }
    page::report(&web, lang, &uri, &verdict, &upload).into_response()
}

fn too_large(lang: Lang, json: bool, max: u64) -> Response {
    refusal(
        lang,
        json,
        StatusCode::PAYLOAD_TOO_LARGE,
        lang.t("Tệp quá lớn", "File too large"),
        format!(
            "{} {} ({max} {}, http.max_upload_bytes). {}",
            lang.t("Trình kiểm tra nhận tệp tới", "The verifier takes files of up to"),
            crate::config::ByteSize(max),
            lang.t("byte", "bytes"),
            lang.t(
                "Không có gì được giữ lại. Kiểm tra tệp lớn hơn bằng lệnh `lienthong verify`.",
                "Nothing was kept. Verify larger files with `lienthong verify`.",
            )
        ),
    )
}

/// Why an upload was not received.
enum Problem {
    TooLarge,
    NoFile,
    Space(String),
    Read(String),
}

/// Receives the bundle (a multipart field `bundle`, or the whole body) into a temporary file.
async fn receive(
    web: &Web,
    request: Request,
    max: u64,
    declared: Option<u64>,
) -> Result<(Upload, tempfile::NamedTempFile), Problem> {
    let node = &web.node;
    node.store
        .ensure_space(declared.unwrap_or(max).min(max), node.config.limits.min_free_bytes)
        .map_err(|e| Problem::Space(e.to_string()))?;
    let dir = node.config.data_dir.join("http-uploads");
    std::fs::create_dir_all(&dir).map_err(|e| Problem::Space(format!("{}: {e}", dir.display())))?;
    let temp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| Problem::Space(e.to_string()))?;
    let mut file = tokio::fs::File::from_std(temp.reopen().map_err(|e| Problem::Space(e.to_string()))?);
    let mut sink =
        Sink { file: &mut file, bytes: 0, max, over: false, hash: ring::digest::Context::new(&ring::digest::SHA256) };
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("multipart/form-data"));
    let mut name = None;
    if multipart {
        let mut form = Multipart::from_request(request, &()).await.map_err(|e| Problem::Read(e.body_text()))?;
        let mut found = false;
        // Every field is read to its end (other fields and a second file are read and
        // dropped, counted against the limit too), so the whole body is consumed.
        while let Some(mut field) = form.next_field().await.map_err(|e| Problem::Read(e.body_text()))? {
            let keep = field.name() == Some("bundle") && !found;
            if keep {
                found = true;
                name = field.file_name().map(|n| n.chars().take(255).collect::<String>());
            }
            while let Some(chunk) = field.chunk().await.map_err(|e| Problem::Read(e.body_text()))? {
                if keep {
                    sink.write(&chunk).await?;
                } else {
                    sink.skip(chunk.len());
                }
            }
        }
        if sink.over {
            return Err(Problem::TooLarge);
        }
        if !found || sink.bytes == 0 {
            return Err(Problem::NoFile);
        }
    } else {
        let mut body = request.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Problem::Read(e.to_string()))?;
            if let Ok(chunk) = frame.into_data() {
                sink.write(&chunk).await?;
            }
        }
        if sink.over {
            return Err(Problem::TooLarge);
        }
        if sink.bytes == 0 {
            return Err(Problem::NoFile);
        }
    }
    let (bytes, digest) = (sink.bytes, sink.hash.finish());
    // A write error tokio parked surfaces here (see CRATES.md), before anything is read back.
    file.flush().await.map_err(|e| Problem::Space(e.to_string()))?;
    Ok((Upload { name, bytes, sha256: hex::encode(digest.as_ref()), kept_as: None }, temp))
}

/// Counts, hashes and writes the upload; past the limit it only counts (the rest is read
/// and dropped, and the upload refused at its end).
struct Sink<'a> {
    file: &'a mut tokio::fs::File,
    bytes: u64,
    max: u64,
    over: bool,
    hash: ring::digest::Context,
}

impl Sink<'_> {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), Problem> {
        self.skip(chunk.len());
        if self.over {
            return Ok(());
        }
        self.hash.update(chunk);
        self.file.write_all(chunk).await.map_err(|e| Problem::Space(e.to_string()))
    }

    /// Counts bytes that are not kept (other form fields, or anything past the limit).
    fn skip(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_add(n as u64);
        self.over |= self.bytes > self.max;
    }
}

/// Moves a verified upload to `DATA_DIR/uploads/` (`http.keep_uploads`).
fn keep(node: &crate::Node, file: tempfile::NamedTempFile, upload: &Upload) -> std::io::Result<String> {
    let dir = node.config.data_dir.join("uploads");
    std::fs::create_dir_all(&dir)?;
    let stamp = node.now().unix_timestamp();
    let path = dir.join(format!("{stamp}-{}.ltd", &upload.sha256[..16]));
    file.persist(&path).map_err(|e| e.error)?;
    Ok(path.display().to_string())
}
