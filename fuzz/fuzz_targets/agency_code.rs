#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lienthong_fuzz::pki_targets::agency_code(data);
});
