//! Any bytes as a PNG whose provenance is read (`tessera verify`, the app's "Check an image"), and any text
//! as an XMP packet: errors are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::trust::provenance::{Provenance, read_xmp};

fuzz_target!(|data: &[u8]| {
    if let Some(xmp) = read_xmp(data) {
        let _ = Provenance::from_xmp(&xmp);
    }
    let _ = Provenance::from_xmp(&String::from_utf8_lossy(data));
});
