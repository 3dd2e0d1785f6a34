#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lienthong_fuzz::node_targets::frame(data);
});
