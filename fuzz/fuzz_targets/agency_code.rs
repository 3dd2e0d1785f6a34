#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(code) = text.parse::<pki::AgencyCode>()
    {
        // Whatever parses prints back to the same text and parses again to the same code.
        assert_eq!(code.to_string(), text);
        assert_eq!(code.to_string().parse::<pki::AgencyCode>().ok(), Some(code));
    }
});
