//! What the verifier answers with: `pki`'s validation report (ETSI EN 319 102-1 shaped:
//! PASSED, INDETERMINATE or FAILED with a sub-indication and reasons, for the document and
//! every signature, attachment and receipt), the very report `lienthong verify` prints. As
//! JSON it is `lienthong verify --json`'s object with the upload beside it; as a page it is
//! laid out from `pki::document::report_text`'s lines, the words the terminal shows, so the
//! web face has no verdict logic or report wording of its own.

use pki::document::validation::{Indication, ValidationReport};

/// The CSS class of an indication's banner, and its label on the verification counter.
pub(crate) fn class(indication: Indication) -> &'static str {
    match indication {
        Indication::Passed => "passed",
        Indication::Indeterminate => "indeterminate",
        Indication::Failed => "failed",
    }
}

/// The JSON answer: the report as `lienthong verify --json` prints it, plus `upload` (name,
/// size, SHA-256 and where it was kept, if it was).
pub(crate) fn to_json(report: &ValidationReport, upload: &super::Upload) -> serde_json::Value {
    let mut out = serde_json::to_value(report).unwrap_or(serde_json::Value::Null);
    if let Some(object) = out.as_object_mut() {
        object.insert("upload".into(), serde_json::to_value(upload).unwrap_or(serde_json::Value::Null));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pki::document::validation::{VerifyOptions, verify_bundle};

    #[test]
    fn the_json_is_the_cli_report_with_the_upload_beside_it() {
        let options = VerifyOptions::new(Vec::new(), time::OffsetDateTime::UNIX_EPOCH);
        let report = verify_bundle(std::io::Cursor::new(b"not a bundle".to_vec()), &options).unwrap();
        let upload = super::super::Upload { name: Some("x.ltd".into()), bytes: 12, sha256: "ab".into(), kept_as: None };
        let json = to_json(&report, &upload);
        let cli = serde_json::to_value(&report).unwrap();
        assert_eq!(
            (json["indication"].as_str(), json["sub_indication"].as_str()),
            (Some("FAILED"), Some("FORMAT_FAILURE"))
        );
        assert_eq!(json["upload"]["name"], "x.ltd");
        for (key, value) in cli.as_object().unwrap() {
            assert_eq!(&json[key], value, "{key}");
        }
        assert_eq!(class(report.indication()), "failed");
    }
}
