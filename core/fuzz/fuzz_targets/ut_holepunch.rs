#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shoal_core_fuzz::checks::ut_holepunch(data));
