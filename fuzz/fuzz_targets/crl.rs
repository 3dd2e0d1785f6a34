#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = pki::Crl::from_der(data);
});
