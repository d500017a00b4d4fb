//! Any bytes as an uploaded image (PNG, JPEG, GIF, WebP, BMP), decoded within the size limits and resized.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tessera::image_input::load_rgb(data, 32);
});
