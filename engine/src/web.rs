//! The browser front door, compiled only for wasm32: the Web Worker (`www/worker.js`) owns one [`Engine`]
//! and drives the token loop from JavaScript, one `step()` at a time, so it can post each finished row to the
//! page and honour a cancel between any two tokens. Everything else (the model, sampling, streaming decode,
//! provenance) is the same Rust the CLI runs.
//!
//! Errors cross as JS `Error`s whose `name` is [`TesseraError::name`], so the page can tell the user what to do.

use std::cell::RefCell;
use std::sync::Arc;

use burn::tensor::Device;
use burn::tensor::wgpu::WgpuBackend;
use js_sys::{Object, Reflect, Uint8Array, Uint8ClampedArray};
use wasm_bindgen::prelude::*;

use crate::ModelConfig;
use crate::error::TesseraError;
use crate::generation::{Generation, Settings, decode_tokens};
use crate::interpret;
use crate::model::Model;
use crate::trust::{Claimed, Policy, Redraw, Verdict};
use crate::weights::stream::StreamedWeights;

fn js_error(e: TesseraError) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    err.set_name(e.name());
    err.into()
}

fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    Reflect::set(obj, &JsValue::from_str(key), &value.into())
        .expect("setting a property on a plain object");
}

thread_local! {
    /// WebGPU can be initialised once per page (a second `init_async` fails), so the device is kept here and
    /// shared by every model the worker loads.
    static WEBGPU: RefCell<Option<Device>> = const { RefCell::new(None) };
}

/// The WebGPU device, or why there is none.
async fn webgpu() -> Result<Device, String> {
    if let Some(device) = WEBGPU.with(|d| d.borrow().clone()) {
        return Ok(device);
    }
    let device = Device::wgpu_options()
        .graphics_api(WgpuBackend::WebGpu)
        .init_async()
        .await
        .map_err(|e| format!("{e:?}"))?;
    WEBGPU.with(|d| *d.borrow_mut() = Some(device.clone()));
    Ok(device)
}

struct State {
    model: Arc<Model>,
    generation: Option<Generation>,
    /// The image being checked while `generation` redraws it (`startVerification`).
    verifying: Option<Claimed>,
}

/// One loaded model and at most one generation in progress.
#[wasm_bindgen]
pub struct Engine {
    state: RefCell<State>,
    /// Checked before every generation and edit.
    policy: RefCell<Policy>,
    backend: String,
    /// Why WebGPU is not used, when it is not.
    fallback_reason: Option<String>,
}

/// A model whose weights arrive file by file and piece by piece (the worker's downloads and its model cache):
/// each tensor goes to the device the moment its last byte arrives, so wasm memory never holds a whole file
/// (`weights::stream`). `beginFile`, `push` the pieces, `endFile`, for each weight file; then `finish`.
#[wasm_bindgen]
pub struct Loader {
    config: ModelConfig,
    weights: StreamedWeights,
    backend: &'static str,
    fallback_reason: Option<String>,
}

#[wasm_bindgen]
impl Loader {
    /// A loader for the model of `config.json`. With `prefer_gpu` the model runs on WebGPU when the browser
    /// has an adapter, otherwise on the CPU backend. A config out of bounds is refused here, before any weight.
    pub async fn start(config: Vec<u8>, prefer_gpu: bool) -> Result<Loader, JsValue> {
        console_error_panic_hook::set_once();
        let (device, backend, fallback_reason) = if prefer_gpu {
            match webgpu().await {
                Ok(device) => (device, "webgpu", None),
                Err(why) => {
                    // The details (wgpu's adapter search) go to the console; the user gets the gist.
                    web_sys::console::info_1(&format!("WebGPU unavailable: {why}").into());
                    (
                        Device::flex(),
                        "cpu",
                        Some("no WebGPU adapter was found".to_string()),
                    )
                }
            }
        } else {
            (
                Device::flex(),
                "cpu",
                Some("WebGPU was not requested".to_string()),
            )
        };
        let config = ModelConfig::from_json(&config).map_err(js_error)?;
        let weights = Model::streamed_weights(&config, &device).map_err(js_error)?;
        Ok(Loader {
            config,
            weights,
            backend,
            fallback_reason,
        })
    }

    /// The weight file `name` begins; with `sha256` (hex) its bytes must hash to it.
    #[wasm_bindgen(js_name = beginFile)]
    pub fn begin_file(&mut self, name: &str, sha256: Option<String>) -> Result<(), JsValue> {
        self.weights
            .begin_file(name, sha256.as_deref())
            .map_err(js_error)
    }

    /// The next piece of the file begun last; a header that cannot load is refused the moment it is complete.
    pub fn push(&mut self, piece: &[u8]) -> Result<(), JsValue> {
        self.weights.push(piece).map_err(js_error)
    }

    /// The file begun last is complete (refused when shorter than its header says or its sha256 is not the
    /// one given).
    #[wasm_bindgen(js_name = endFile)]
    pub fn end_file(&mut self) -> Result<(), JsValue> {
        self.weights.end_file().map_err(js_error)
    }

    /// The most bytes of one tensor held while its pieces arrived.
    #[wasm_bindgen(getter, js_name = peakPartialBytes)]
    pub fn peak_partial_bytes(&self) -> f64 {
        self.weights.peak_partial_bytes() as f64
    }

    /// The engine, once every weight file has ended; a Janus model takes its `tokenizer.json` bytes.
    pub fn finish(self, tokenizer: Option<Vec<u8>>) -> Result<Engine, JsValue> {
        let model = Model::from_streamed(self.config, self.weights).map_err(js_error)?;
        let model = match tokenizer {
            Some(json) => model.with_tokenizer(&json).map_err(js_error)?,
            None => model,
        };
        Ok(Engine {
            state: RefCell::new(State {
                model: Arc::new(model),
                generation: None,
                verifying: None,
            }),
            policy: RefCell::new(Policy::default_policy()),
            backend: self.backend.into(),
            fallback_reason: self.fallback_reason,
        })
    }
}

impl Engine {
    /// The generation in progress, out of the state while a step awaits (no borrow is held across an
    /// await); the caller puts it back.
    fn take_generation(&self) -> Result<Generation, JsValue> {
        self.state
            .borrow_mut()
            .generation
            .take()
            .ok_or_else(|| JsValue::from_str("no generation started"))
    }
}

#[wasm_bindgen]
impl Engine {
    /// Traps the engine the way a bug would: a panic while the generation state is borrowed, after which
    /// every call would fail. For tests and for people who script the page, as `lose-device` is for a
    /// driver reset: the worker reports the crash and the page restarts the engine on the same model.
    pub fn trap(&self) {
        let _held = self.state.borrow_mut();
        panic!("the engine was trapped on request");
    }

    /// Replace the prompt policy (JSON of the shape of `engine/src/trust/policy.json`); a bad one is refused and the
    /// current policy stays.
    #[wasm_bindgen(js_name = setPolicy)]
    pub fn set_policy(&self, json: &str) -> Result<(), JsValue> {
        *self.policy.borrow_mut() = Policy::from_json(json).map_err(js_error)?;
        Ok(())
    }

    /// `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// Why the CPU backend is used, when it is.
    #[wasm_bindgen(getter, js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.fallback_reason.clone()
    }

    /// `{modelId, sha256, parameters, weightBytes, imageSize, grid, trained, family, rowsFinal, defaults}`, where
    /// `defaults` is `{temperature, topP, guidance, keep}`, the model's own: what `start` uses for a setting
    /// it is not given.
    pub fn info(&self) -> JsValue {
        let s = self.state.borrow();
        let c = &s.model.config;
        let o = Object::new();
        set(&o, "modelId", c.model_id.as_str());
        set(&o, "sha256", s.model.sha256.as_str());
        set(&o, "parameters", s.model.parameters.total() as f64);
        set(&o, "weightBytes", s.model.weight_bytes as f64);
        set(&o, "imageSize", c.image_size as u32);
        set(&o, "grid", c.grid() as u32);
        set(&o, "trained", c.trained);
        set(&o, "family", c.family.name());
        // Whether each token row decodes to final pixels as it is drawn, or the image needs previews.
        set(
            &o,
            "rowsFinal",
            matches!(s.model.codec, crate::model::Codec::Streaming(_)),
        );
        let d = c.default_settings();
        let defaults = Object::new();
        set(&defaults, "temperature", d.temperature);
        set(&defaults, "topP", d.top_p);
        set(&defaults, "guidance", d.guidance);
        set(&defaults, "keep", d.keep);
        set(&o, "defaults", defaults);
        o.into()
    }

    /// Reads a message the way this model is prompted with it (`interpret`): `{canonical, kind, edit, unknown,
    /// notes, note, scene, understood}`. `picture` says whether a picture comes before it, `scene` (JSON) what
    /// that picture shows when known; `force` (`"new"` or `"edit"`) is the user's override of the kind.
    /// Refuses an empty, over-long or policy-refused message (as typed, then as interpreted).
    pub fn interpret(
        &self,
        text: &str,
        picture: bool,
        scene: Option<String>,
        force: Option<String>,
    ) -> Result<JsValue, JsValue> {
        let reading = read_message(
            &self.state.borrow().model.config,
            &self.policy.borrow(),
            text,
            picture,
            scene.as_deref(),
            force.as_deref(),
        )
        .map_err(js_error)?;
        let json = serde_json::to_string(&reading).expect("an interpretation serialises");
        js_sys::JSON::parse(&json)
    }

    /// Begin a generation (an edit when `context` holds the tokens of the image to edit) of `prompt`, the text
    /// the model reads; `typed`, when given, is what the user typed (the provenance's prompt) and is checked by
    /// the policy too. Checks the prompt and settings (any but the seed left out: the engine's default, as
    /// `info().defaults` says); the work happens in `step`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &self,
        prompt: String,
        typed: Option<String>,
        context: Option<Vec<u32>>,
        seed: f64,
        temperature: Option<f32>,
        top_k: Option<u32>,
        top_p: Option<f32>,
        guidance: Option<f32>,
        keep: Option<f32>,
    ) -> Result<(), JsValue> {
        self.policy.borrow().check(&prompt).map_err(js_error)?;
        if let Some(typed) = &typed {
            self.policy.borrow().check(typed).map_err(js_error)?;
        }
        let mut s = self.state.borrow_mut();
        let d = s.model.config.default_settings();
        let settings = Settings {
            seed: seed as u64,
            temperature: temperature.unwrap_or(d.temperature),
            top_k: top_k.map(|k| k as usize),
            top_p: top_p.unwrap_or(d.top_p),
            guidance: guidance.unwrap_or(d.guidance),
            keep: keep.unwrap_or(d.keep),
        };
        let mut generation =
            Generation::new(s.model.clone(), &prompt, context.as_deref(), settings)
                .map_err(js_error)?;
        if let Some(typed) = &typed {
            generation = generation.typed_as(typed);
        }
        s.generation = Some(generation);
        s.verifying = None;
        Ok(())
    }

    /// Sample the next token. Resolves to `{index, token, total}` plus, when the token finished a row,
    /// `{row, y0, height, rgba}` (a `Uint8ClampedArray` band, full width); `null` once the image is complete.
    pub async fn step(&self) -> Result<JsValue, JsValue> {
        let mut generation = self.take_generation()?;
        let result = generation.step().await;
        let total = generation.total_tokens();
        self.state.borrow_mut().generation = Some(generation);
        let Some(step) = result.map_err(js_error)? else {
            return Ok(JsValue::NULL);
        };
        let o = Object::new();
        set(&o, "index", step.index as u32);
        set(&o, "token", step.token);
        set(&o, "total", total as u32);
        if let Some(band) = step.band {
            set(&o, "row", band.row as u32);
            set(&o, "y0", band.y0 as u32);
            set(&o, "height", band.height as u32);
            set(
                &o,
                "rgba",
                Uint8ClampedArray::from(rgba(&band.rgb).as_slice()),
            );
        }
        Ok(o.into())
    }

    /// For a model whose codec decodes only whole grids (`info().rowsFinal` false): the picture so far, each
    /// cell not yet drawn a neutral placeholder, as `{rows, rgba}` (`rows`: token rows drawn; `rgba` the whole
    /// image); a generation stopped after it keeps these pixels. `null` for a streaming codec or a finished image.
    pub async fn preview(&self) -> Result<JsValue, JsValue> {
        let mut generation = self.take_generation()?;
        let result = generation.preview().await;
        self.state.borrow_mut().generation = Some(generation);
        let Some(preview) = result.map_err(js_error)? else {
            return Ok(JsValue::NULL);
        };
        let o = Object::new();
        set(&o, "rows", preview.rows as u32);
        set(
            &o,
            "rgba",
            Uint8ClampedArray::from(rgba(&preview.rgb).as_slice()),
        );
        Ok(o.into())
    }

    /// Tokens of the current (or last) generation.
    pub fn tokens(&self) -> Vec<u32> {
        self.state
            .borrow()
            .generation
            .as_ref()
            .map(|g| g.tokens().to_vec())
            .unwrap_or_default()
    }

    /// The current image as a PNG carrying provenance (partial images too: a stopped generation keeps what it
    /// made).
    pub fn png(&self) -> Result<Uint8Array, JsValue> {
        let s = self.state.borrow();
        let g = s
            .generation
            .as_ref()
            .ok_or_else(|| JsValue::from_str("nothing generated yet"))?;
        let created = String::from(js_sys::Date::new_0().to_iso_string());
        Ok(Uint8Array::from(g.png(Some(created)).as_slice()))
    }

    /// Begins checking a PNG's claims by redrawing it from `prompt` with this model (`trust::verify`). Returns
    /// the verdict when it is decided without drawing (`{outcome, reason}`; `null` for a file without claims),
    /// or `undefined`: then `step()` runs the redraw like any generation, and `finishVerification()` gives the
    /// verdict. `signed`: whether a valid signature binds the claims to the file (`www/credentials.js` reads
    /// it); without one the same pixels are `unsigned`. Throws `BadImage` for a file that is not a readable PNG.
    #[wasm_bindgen(js_name = startVerification)]
    pub fn start_verification(
        &self,
        png: &[u8],
        prompt: &str,
        signed: bool,
    ) -> Result<JsValue, JsValue> {
        let Some(claimed) = Claimed::read(png).map_err(js_error)? else {
            return Ok(JsValue::NULL);
        };
        let claimed = claimed.signed(signed);
        let mut s = self.state.borrow_mut();
        match claimed.redraw(s.model.clone(), prompt).map_err(js_error)? {
            Redraw::Decided(verdict) => Ok(verdict_js(&verdict)),
            Redraw::Draw(generation) => {
                s.generation = Some(*generation);
                s.verifying = Some(claimed);
                Ok(JsValue::UNDEFINED)
            }
        }
    }

    /// The verdict on the redraw `startVerification` began, once `step()` has returned `null`.
    #[wasm_bindgen(js_name = finishVerification)]
    pub fn finish_verification(&self) -> Result<JsValue, JsValue> {
        let mut s = self.state.borrow_mut();
        let claimed = s
            .verifying
            .take()
            .ok_or_else(|| JsValue::from_str("no verification started"))?;
        match &s.generation {
            Some(g) if g.is_done() => Ok(verdict_js(&claimed.compare(g.image()))),
            _ => Err(JsValue::from_str("the redraw is not finished")),
        }
    }

    /// An uploaded image (any format the `image` crate reads) → the tokens an edit conditions on.
    pub async fn encode(&self, bytes: Vec<u8>) -> Result<Vec<u32>, JsValue> {
        let model = self.state.borrow().model.clone();
        let rgb = crate::image_input::load_rgb(&bytes, model.config.image_size as u32)
            .map_err(js_error)?;
        model.encode_rgb(&rgb).await.map_err(js_error)
    }

    /// Tokens → the whole image as RGBA (to show a stored turn again).
    pub async fn decode(&self, tokens: Vec<u32>) -> Result<Uint8ClampedArray, JsValue> {
        let model = self.state.borrow().model.clone();
        let rgb = decode_tokens(&model, &tokens).await.map_err(js_error)?;
        Ok(Uint8ClampedArray::from(rgba(&rgb).as_slice()))
    }
}

/// `{format, width, height}` of an image from its header alone, after the size checks every image given
/// to the engine passes (`crate::image_input`); throws a `BadImage` error naming the limit otherwise.
/// What the model of `config.json` needs, from its config alone (before any weight is fetched):
/// `{parameters, largestTensor: {name, bytes}, f32Bytes}`, the largest tensor's bytes as the GPU holds it
/// (f32, one buffer). A config out of bounds is refused with the field named.
#[wasm_bindgen(js_name = modelNeeds)]
pub fn model_needs(config: &[u8]) -> Result<JsValue, JsValue> {
    let config = ModelConfig::from_json(config).map_err(js_error)?;
    let needs = Model::needs(&config).map_err(js_error)?;
    let largest = Object::new();
    set(&largest, "name", needs.largest_tensor.as_str());
    set(&largest, "bytes", needs.largest_tensor_f32_bytes as f64);
    let o = Object::new();
    set(&o, "parameters", needs.parameters as f64);
    set(&o, "largestTensor", largest);
    set(&o, "f32Bytes", needs.f32_bytes as f64);
    Ok(o.into())
}

/// The size of this wasm instance's memory, in bytes: it only grows, so after a load it is the load's peak.
#[wasm_bindgen(js_name = wasmMemoryBytes)]
pub fn wasm_memory_bytes() -> f64 {
    (core::arch::wasm32::memory_size(0) * 65536) as f64
}

#[wasm_bindgen(js_name = probeImage)]
pub fn probe_image(bytes: &[u8]) -> Result<JsValue, JsValue> {
    let (format, width, height) = crate::image_input::probe(bytes).map_err(js_error)?;
    let o = Object::new();
    set(&o, "format", format!("{format:?}").to_lowercase());
    set(&o, "width", width);
    set(&o, "height", height);
    Ok(o.into())
}

/// What a PNG claims about where it came from (its XMP provenance) as [`crate::Provenance::claims_json`]'s
/// object; `null` when it carries none. Throws a `BadImage` error for a file that is not a readable PNG and
/// for malformed claims.
#[wasm_bindgen(js_name = readProvenance)]
pub fn read_provenance(bytes: &[u8]) -> Result<JsValue, JsValue> {
    match Claimed::read_claims(bytes).map_err(js_error)? {
        Some(claims) => js_sys::JSON::parse(&claims.claims_json().to_string()),
        None => Ok(JsValue::NULL),
    }
}

/// A message read for `config`'s model after the checks every front door makes (see `Engine::interpret`).
fn read_message(
    config: &crate::ModelConfig,
    policy: &Policy,
    text: &str,
    picture: bool,
    scene: Option<&str>,
    force: Option<&str>,
) -> crate::Result<interpret::Interpretation> {
    let scene: Option<interpret::scene::Scene> =
        scene.map(serde_json::from_str).transpose().map_err(|e| {
            TesseraError::Config(format!("the previous picture's scene is not valid: {e}"))
        })?;
    let force = match force {
        None => None,
        Some("new") => Some(interpret::Kind::New),
        Some("edit") => Some(interpret::Kind::Edit),
        Some(other) => {
            return Err(TesseraError::Setting {
                name: "force",
                value: other.into(),
                reason: "use new or edit",
            });
        }
    };
    let before = if picture {
        interpret::Before::Picture(scene.as_ref())
    } else {
        interpret::Before::Nothing
    };
    interpret::checked(config, policy, text, before, force)
}

/// `{outcome, reason}`: see [`Verdict::outcome`] and [`Verdict::reason`].
fn verdict_js(verdict: &Verdict) -> JsValue {
    let o = Object::new();
    set(&o, "outcome", verdict.outcome());
    set(&o, "reason", verdict.reason());
    o.into()
}

fn rgba(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect()
}
