#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = pki::document::Manifest::from_cbor(data) {
        // A manifest that decodes has exactly this encoding.
        assert_eq!(manifest.to_cbor().ok().as_deref(), Some(data));
    }
});
