//! Any text through the interpreter, with no picture before it, a picture of unknown content, and a known
//! scene: it must never panic, whatever the bytes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tessera::interpret::{Before, interpret, scene::Scene};

fuzz_target!(|data: &[u8]| {
    static SCENE: OnceLock<Scene> = OnceLock::new();
    let scene = SCENE.get_or_init(|| {
        interpret(
            "a small blue star in the top left corner and a big yellow heart at the bottom right",
            Before::Nothing,
            None,
        )
        .scene
        .expect("a scene of the world")
    });
    let text = String::from_utf8_lossy(data);
    for before in [Before::Nothing, Before::Picture(None), Before::Picture(Some(scene))] {
        let _ = interpret(&text, before, None);
    }
});
