#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lienthong_fuzz::tlog_targets::log_proof(data);
});
