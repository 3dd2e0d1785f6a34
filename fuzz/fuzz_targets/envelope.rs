#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = pki::document::Envelope::from_bytes(data) {
        let _ = envelope.headers();
        let _ = pki::document::Manifest::from_cbor(envelope.payload());
    }
});
