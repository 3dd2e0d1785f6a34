//! PEM in and out, with Unix line endings, for certificates, CRLs and keys.

use crate::cert::PemError;

/// The DER contents of every block labelled `label`, in file order; other blocks are skipped
/// (a chain file may carry comments or keys beside certificates).
pub fn blocks(text: &str, label: &'static str) -> Result<Vec<Vec<u8>>, PemError> {
    let all = pem::parse_many(text).map_err(|e| PemError::Syntax(e.to_string()))?;
    let found: Vec<Vec<u8>> = all.into_iter().filter(|p| p.tag() == label).map(pem::Pem::into_contents).collect();
    if found.is_empty() {
        return Err(PemError::Missing(label));
    }
    Ok(found)
}

/// The DER contents of the first block labelled `label`.
pub fn decode_one(text: &str, label: &'static str) -> Result<Vec<u8>, PemError> {
    blocks(text, label).map(|mut all| all.swap_remove(0))
}

/// Encodes DER as one PEM block.
pub fn encode(label: &str, der: &[u8]) -> String {
    pem::encode_config(&pem::Pem::new(label, der), pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF))
}
