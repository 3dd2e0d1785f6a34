#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let limits = pki::document::BundleLimits::default();
    if let Ok(mut bundle) = pki::document::Bundle::open(std::io::Cursor::new(data), limits) {
        let _ = bundle.check_attachments();
    }
});
