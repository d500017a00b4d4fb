//! Any bytes as a PNG whose provenance and pixels are read (`tessera verify`, the app's "Check an image"), and any text
//! as an XMP packet: errors are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::trust::provenance::{Provenance, read_xmp};
use tessera::trust::verify::Claimed;

fuzz_target!(|data: &[u8]| {
    // The verifier's reader: the claims, the pixels, every chunk listed.
    if let Ok(Some(claimed)) = Claimed::read(data) {
        let _ = (claimed.beyond_pixels(), claimed.precheck("a red circle"));
    }
    if let Some(xmp) = read_xmp(data) {
        let _ = Provenance::from_xmp(&xmp);
    }
    let _ = Provenance::from_xmp(&String::from_utf8_lossy(data));
});
