#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = pki::Certificate::from_der(data) {
        let _ = cert.profile();
        let _ = cert.id().to_string();
    }
});
