//! Generation as small named steps: `Generation::new` checks the request, then each `step` samples one
//! image token (the first step runs the prefill) and, when a token row completes, decodes it into its final
//! pixel band (a codec that is not row-causal decodes the whole image, as one band, with the last token).
//! The caller owns the loop, so it can cancel between any two tokens and keep what was made.
//!
//! Classifier-free guidance runs the conditional and unconditional rows as one batch of two; with a scale
//! of 1 the unconditional row is skipped.

use std::sync::Arc;

use burn::tensor::{Int, Tensor, TensorData};

use crate::config::Family;
use crate::error::{Result, TesseraError};
use crate::generation::prompt::{Prompt, Segment};
use crate::generation::sampler::{Sampler, Settings, guide};
use crate::interpret::sign::sign_picture;
use crate::interpret::{Before, interpret};
use crate::model::kv_cache::KvCache;
use crate::model::vq::{DecoderState, tensor_values_to_rgb};
use crate::model::{Codec, Model, janus, read_floats};
use crate::trust::provenance::{Provenance, new_salt, png_with_provenance};

/// A finished band of pixel rows: RGB bytes for rows `y0..y0 + height`, full image width.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    /// Token row index.
    pub row: usize,
    pub y0: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

/// The whole picture as far as it is drawn, for a codec that decodes only whole grids.
#[derive(Clone, Debug, PartialEq)]
pub struct Preview {
    /// Token rows sampled so far (the rows below them are placeholders).
    pub rows: usize,
    /// RGB bytes of the whole image.
    pub rgb: Vec<u8>,
}

/// What one step produced.
#[derive(Clone, Debug)]
pub struct Step {
    /// Index of the token in raster order.
    pub index: usize,
    pub token: u32,
    /// Present when this token completed a row.
    pub band: Option<Band>,
}

pub struct Generation {
    model: Arc<Model>,
    settings: Settings,
    sampler: Sampler,
    cache: KvCache,
    /// The text the model reads.
    text: String,
    /// The prompt as typed, when the model reads it interpreted ([`Generation::typed_as`]): what the
    /// provenance records as the prompt.
    typed: Option<String>,
    prompt: Prompt,
    /// 2 with guidance, 1 without.
    batch: usize,
    tokens: Vec<u32>,
    decoder: DecoderState,
    /// The image so far, RGB; rows not yet generated are black.
    rgb: Vec<u8>,
    /// Raw logits of the last step, `[batch, K]` flattened (cond row first).
    logits: Vec<f32>,
    /// The tokens of the image being edited, raster order (what `Settings::keep` favours).
    source: Option<Vec<u32>>,
    /// Drawn once per generation: every PNG of it records the same salted hashes.
    salt: String,
    /// A sign drawn alone (RGB), for a model with `sign_glyphs`: its tokens take the place of the prompt's
    /// image segment at the prefill (encoding is asynchronous, `new` is not).
    glyphs: Option<Vec<u8>>,
}

impl Generation {
    /// A generation of `text`, editing the image whose tokens are `context` when given.
    pub fn new(
        model: Arc<Model>,
        text: &str,
        context: Option<&[u32]>,
        settings: Settings,
    ) -> Result<Self> {
        settings.validate()?;
        if text.trim().is_empty() {
            return Err(TesseraError::EmptyPrompt);
        }
        let config = &model.config;
        let n = config.image_tokens();
        if let Some(ctx) = context
            && (ctx.len() != n || ctx.iter().any(|&t| t as usize >= config.vq.codebook_size))
        {
            return Err(TesseraError::Image(format!(
                "the image to edit must be {n} tokens below {}; it has {}",
                config.vq.codebook_size,
                ctx.len()
            )));
        }
        if let Family::Janus(_) = config.family {
            if context.is_some() {
                return Err(TesseraError::Config(format!(
                    "{} generates from text only: Janus models do not edit an image",
                    config.model_id
                )));
            }
            let ids = match &model.tokenizer {
                Some(tokenizer) => tokenizer.prompt_ids(text).map_err(TesseraError::Config)?,
                None => {
                    return Err(TesseraError::Config(format!(
                        "{} has no tokenizer.json: give the prompt's token ids (`tessera generate --prompt-ids`)",
                        config.model_id
                    )));
                }
            };
            return Self::from_prompt_ids(model.clone(), text, &ids, settings);
        }
        let glyphs = match context {
            None if config.sign_glyphs => sign_glyphs(text),
            _ => None,
        };
        // Until the prefill encodes the glyphs, their place holds code 0.
        let placeholder = glyphs.as_ref().map(|_| vec![0; n]);
        let prompt = Prompt::new(text, context.or(placeholder.as_deref()), config.edit_layout);
        let max = config.transformer.max_seq;
        if prompt.len() + n > max {
            let overhead = prompt.len() - text.len();
            return Err(TesseraError::PromptTooLong {
                bytes: text.len(),
                limit: max - n - overhead,
            });
        }
        let mut generation = Self::start(model, text, prompt, context, settings);
        generation.glyphs = glyphs;
        Ok(generation)
    }

    /// A generation of a Janus model from its prompt's token ids (BOS first, `<begin_of_image>` last, as
    /// the family's template and tokenizer make them), `text` being what the provenance records.
    pub fn from_prompt_ids(
        model: Arc<Model>,
        text: &str,
        ids: &[u32],
        settings: Settings,
    ) -> Result<Self> {
        settings.validate()?;
        let config = &model.config;
        let Family::Janus(janus) = &config.family else {
            return Err(TesseraError::Config(format!(
                "{} reads text, not token ids",
                config.model_id
            )));
        };
        let vocab = config.transformer.text_vocab;
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(TesseraError::Config(format!(
                "prompt id {id} is outside the text vocabulary of {vocab}"
            )));
        }
        let limit = janus::PROMPT_LIMIT.min(config.transformer.max_seq - config.image_tokens());
        if ids.len() < 2 || ids.len() > limit {
            return Err(TesseraError::Config(format!(
                "the prompt is {} token ids; this model reads 2 to {limit} (BOS first, <begin_of_image> last)",
                ids.len()
            )));
        }
        let pad = janus.pad_id.ok_or_else(|| {
            TesseraError::Config(
                "config.json names no pad id (generation.pad_id) and no tokenizer.json gave one"
                    .into(),
            )
        })?;
        let prompt = janus::prompt(ids, pad);
        Ok(Self::start(model, text, prompt, None, settings))
    }

    fn start(
        model: Arc<Model>,
        text: &str,
        prompt: Prompt,
        context: Option<&[u32]>,
        settings: Settings,
    ) -> Self {
        let config = &model.config;
        let n = config.image_tokens();
        let batch = if settings.guidance == 1.0 { 1 } else { 2 };
        let size = config.image_size;
        let positions = prompt.len() + n; // the last image token is sampled, never fed
        let cache = KvCache::new(&config.transformer, batch, positions, model.device());
        Generation {
            sampler: Sampler::new(settings.clone()),
            settings,
            cache,
            text: text.to_string(),
            typed: None,
            prompt,
            batch,
            tokens: Vec::with_capacity(n),
            decoder: DecoderState::default(),
            rgb: vec![0; size * size * 3],
            logits: Vec::new(),
            source: context.map(<[u32]>::to_vec),
            salt: new_salt(),
            glyphs: None,
            model,
        }
    }

    /// Tokens sampled so far, raster order.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Positions of the prompt the prefill runs (text and, for an edit, the source image).
    pub fn prompt_len(&self) -> usize {
        self.prompt.len()
    }

    pub fn total_tokens(&self) -> usize {
        self.model.config.image_tokens()
    }

    pub fn is_done(&self) -> bool {
        self.tokens.len() == self.total_tokens()
    }

    /// The image so far (finished rows; black below), RGB bytes.
    pub fn image(&self) -> &[u8] {
        &self.rgb
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The same generation, its text being `prompt` as interpreted: the provenance records `prompt` as the
    /// prompt and a hash of the text the model read.
    pub fn typed_as(mut self, prompt: &str) -> Self {
        self.typed = Some(prompt.to_string());
        self
    }

    /// What the image claims about where it came from: the model, its weights, the settings, a hash of the
    /// prompt (and of the source image's tokens, for an edit), and `created` (RFC 3339, UTC) when the caller
    /// knows the clock. Every front door writes these claims, and only these.
    pub fn provenance(&self, created: Option<String>) -> Provenance {
        let model = &self.model;
        let claims = Provenance::new(
            &model.config.model_id,
            &model.sha256,
            &self.settings,
            self.typed.as_deref().unwrap_or(&self.text),
            self.source.as_deref(),
            &self.salt,
        )
        .model_saw(&self.text);
        match created {
            Some(time) => claims.created_at(time),
            None => claims,
        }
    }

    /// The image so far as a PNG carrying [`Generation::provenance`] in XMP (a stopped generation keeps
    /// what it made).
    pub fn png(&self, created: Option<String>) -> Vec<u8> {
        let size = self.model.config.image_size as u32;
        png_with_provenance(&self.rgb, size, size, &self.provenance(created))
    }

    /// Raw logits of the last step, `[batch, K]` flattened, conditional row first.
    pub fn last_logits(&self) -> &[f32] {
        &self.logits
    }

    /// Sample the next token; `None` once every token exists.
    pub async fn step(&mut self) -> Result<Option<Step>> {
        if self.is_done() {
            return Ok(None);
        }
        if let Some(rgb) = self.glyphs.take() {
            let codes = self.model.encode_rgb(&rgb).await?;
            for row in [&mut self.prompt.cond, &mut self.prompt.uncond] {
                for segment in row.iter_mut() {
                    if let Segment::Image(ids) = segment {
                        ids.clone_from(&codes);
                    }
                }
            }
        }
        let hidden = match self.tokens.last() {
            None => self.prefill(),
            Some(&last) => self.feed(last),
        };
        let k = self.model.config.transformer.codebook_size;
        let logits = read_floats(self.model.transformer.image_logits(hidden)).await?; // [batch·K]
        let mut guided = match self.batch {
            1 => logits.clone(),
            _ => guide(&logits[..k], &logits[k..], self.settings.guidance),
        };
        if let Some(source) = &self.source {
            guided[source[self.tokens.len()] as usize] += self.settings.keep;
        }
        let token = self.sampler.sample(&guided);
        self.logits = logits;
        self.tokens.push(token);
        let index = self.tokens.len() - 1;
        let grid = self.model.config.grid();
        let band = match (self.tokens.len() % grid, &self.model.codec) {
            (0, Codec::Streaming(_)) => Some(self.decode_row(self.tokens.len() / grid - 1).await?),
            (_, Codec::Vq16(_)) if self.is_done() => Some(self.decode_all().await?),
            _ => None,
        };
        Ok(Some(Step { index, token, band }))
    }

    /// For a codec that decodes only whole grids (Janus's VQ-16): the grid decoded now, each cell not yet
    /// sampled filled with the codebook's most central code, so the picture so far can be shown (and is kept,
    /// as [`Generation::png`]'s pixels, when the generation stops here). `None` for a streaming codec, whose
    /// rows are final as they come, and once the image is complete.
    pub async fn preview(&mut self) -> Result<Option<Preview>> {
        let Codec::Vq16(vq) = &self.model.codec else {
            return Ok(None);
        };
        if self.is_done() {
            return Ok(None);
        }
        let (grid, total) = (self.model.config.grid(), self.model.config.image_tokens());
        let device = self.model.device();
        let drawn: Vec<i64> = self.tokens.iter().map(|&x| x as i64).collect();
        let placeholders = vq.neutral_code().repeat_dim(1, total - drawn.len()); // [1, total − n]
        let ids = match drawn.len() {
            0 => placeholders,
            n => Tensor::cat(
                vec![
                    Tensor::<2, Int>::from_data(TensorData::new(drawn, [1, n]), device),
                    placeholders,
                ],
                1,
            ),
        };
        let pixels = self.model.codec.decode(ids, grid); // [1, 3, H, W]
        let [_, _, h, w] = pixels.dims();
        self.rgb = tensor_values_to_rgb(&read_floats(pixels).await?, h, w);
        Ok(Some(Preview {
            rows: self.tokens.len() / grid,
            rgb: self.rgb.clone(),
        }))
    }

    /// Run the prompt through the transformer → hidden state of its last position `[batch, D]`.
    fn prefill(&mut self) -> Tensor<2> {
        let t = &self.model.transformer;
        let device = self.model.device();
        let rows = [&self.prompt.cond, &self.prompt.uncond];
        let mut parts = Vec::new();
        for (i, segment) in self.prompt.cond.iter().enumerate() {
            let ids: Vec<i64> = rows[..self.batch]
                .iter()
                .flat_map(|row| match &row[i] {
                    Segment::Text(ids) | Segment::Image(ids) => ids.iter().map(|&x| x as i64),
                })
                .collect();
            let ids = Tensor::<2, Int>::from_data(
                TensorData::new(ids, [self.batch, segment.len()]),
                device,
            );
            parts.push(match segment {
                Segment::Text(_) => t.embed_text(ids),
                Segment::Image(_) => t.embed_image(ids),
            });
        }
        let hidden = t.forward(Tensor::cat(parts, 1), &mut self.cache); // [batch, T, D]
        last_position(hidden)
    }

    /// Feed the last sampled token to every row → hidden state `[batch, D]`.
    fn feed(&mut self, token: u32) -> Tensor<2> {
        let ids = Tensor::<2, Int>::from_data(
            TensorData::new(vec![token as i64; self.batch], [self.batch, 1]),
            self.model.device(),
        );
        let x = self.model.transformer.embed_image(ids);
        last_position(self.model.transformer.forward(x, &mut self.cache))
    }

    async fn decode_row(&mut self, row: usize) -> Result<Band> {
        let config = &self.model.config;
        let grid = config.grid();
        let ids: Vec<i64> = self.tokens[row * grid..(row + 1) * grid]
            .iter()
            .map(|&x| x as i64)
            .collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, grid]), self.model.device());
        let pixels = self.model.codec.decode_rows(ids, grid, &mut self.decoder); // [1, 3, h, W]
        let pixels = pixels.expect("only streaming codecs decode by rows");
        let [_, _, height, width] = pixels.dims();
        let rgb = tensor_values_to_rgb(&read_floats(pixels).await?, height, width);
        let y0 = row * height;
        self.rgb[y0 * width * 3..(y0 + height) * width * 3].copy_from_slice(&rgb);
        Ok(Band {
            row,
            y0,
            height,
            rgb,
        })
    }

    /// The whole grid, once complete, as one band: the last token row's, from the top.
    async fn decode_all(&mut self) -> Result<Band> {
        self.rgb = decode_tokens(&self.model, &self.tokens).await?;
        Ok(Band {
            row: self.model.config.grid() - 1,
            y0: 0,
            height: self.model.config.image_size,
            rgb: self.rgb.clone(),
        })
    }
}

/// The sign `text` asks for, drawn alone on the picture's background ([`sign_picture`]), when `text` asks
/// for a new picture with a sign: what a model with `sign_glyphs` reads before drawing. The text is read
/// as the interpreter reads a first message, so the CLI, the app and a verifier's redraw agree.
pub fn sign_glyphs(text: &str) -> Option<Vec<u8>> {
    let reading = interpret(text, Before::Nothing, None);
    sign_picture(reading.scene.as_ref()?)
}

/// `[B, T, D]` → `[B, D]` at the last position.
fn last_position(hidden: Tensor<3>) -> Tensor<2> {
    let [b, t, d] = hidden.dims();
    hidden.narrow(1, t - 1, 1).reshape([b, d])
}

/// Decode a whole token grid at once (RGB bytes), e.g. to show a stored conversation turn again.
pub async fn decode_tokens(model: &Model, tokens: &[u32]) -> Result<Vec<u8>> {
    let grid = model.config.grid();
    let ids: Vec<i64> = tokens.iter().map(|&x| x as i64).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, tokens.len()]), model.device());
    let pixels = model.codec.decode(ids, grid);
    let [_, _, h, w] = pixels.dims();
    Ok(tensor_values_to_rgb(&read_floats(pixels).await?, h, w))
}
