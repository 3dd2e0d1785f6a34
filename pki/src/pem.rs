//! PEM in and out, with Unix line endings, for certificates, CRLs and keys.

/// Why a PEM text gives no block of the label asked for. Certificate and CRL readers wrap it
/// in their own errors, which also say which block failed to parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PemBlockError {
    /// The text is not PEM.
    #[error("not PEM: {0}")]
    Syntax(String),
    /// No block with the expected label.
    #[error("no {0} block found")]
    Missing(&'static str),
}

/// The DER contents of every block labelled `label`, in file order; other blocks are skipped
/// (a chain file may carry comments or keys beside certificates).
pub fn blocks(text: &str, label: &'static str) -> Result<Vec<Vec<u8>>, PemBlockError> {
    let all = pem::parse_many(text).map_err(|e| PemBlockError::Syntax(e.to_string()))?;
    let found: Vec<Vec<u8>> = all.into_iter().filter(|p| p.tag() == label).map(pem::Pem::into_contents).collect();
    if found.is_empty() {
        return Err(PemBlockError::Missing(label));
    }
    Ok(found)
}

/// The DER contents of the first block labelled `label`.
pub fn decode_one(text: &str, label: &'static str) -> Result<Vec<u8>, PemBlockError> {
    blocks(text, label).map(|mut all| all.swap_remove(0))
}

/// Encodes DER as one PEM block.
pub fn encode(label: &str, der: &[u8]) -> String {
    pem::encode_config(&pem::Pem::new(label, der), pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF))
}
