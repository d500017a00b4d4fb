//! Sampling one image token from guided logits: temperature, top-k, top-p, and a seeded RNG (ChaCha8, the
//! same stream natively and in wasm), so the same seed and logits give the same token everywhere.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TesseraError};

/// Sampling settings. Defaults are what the default model was tuned with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub seed: u64,
    /// 0 is greedy (argmax); otherwise logits are divided by it.
    pub temperature: f32,
    /// Keep only the k most likely tokens; `None` keeps all.
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches p; 1 keeps all.
    pub top_p: f32,
    /// Classifier-free guidance scale s: logits = uncond + s·(cond − uncond). 1 is unguided. See
    /// [`DEFAULT_GUIDANCE`].
    pub guidance: f32,
    /// Edits only: a bonus in logit units (after guidance) for the source image's token at the place being
    /// drawn, so what the instruction does not name stays as it was where the model is unsure, while a
    /// change it is sure of still happens. 0 turns it off. Records made before it existed read as 0.
    #[serde(default)]
    pub keep: f32,
}

/// The default [`Settings::guidance`], chosen with ShapesEval on seeds 7300–7500 (scales 1–4), never on the reported
/// seeds: for the default model, stronger guidance draws shapes nobody asked for, and 1 gets fewer right (the
/// model card has the figures).
pub const DEFAULT_GUIDANCE: f32 = 1.5;

/// The default [`Settings::keep`], chosen with ShapesEval's edit split on seed 7100 (keep 0–8), never on the
/// reported seeds.
pub const DEFAULT_KEEP: f32 = 3.0;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            seed: 0,
            temperature: 1.0,
            top_k: None,
            top_p: 1.0,
            guidance: DEFAULT_GUIDANCE,
            keep: DEFAULT_KEEP,
        }
    }
}

impl Settings {
    pub fn greedy() -> Self {
        Settings {
            temperature: 0.0,
            ..Settings::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |name, value: String, reason| {
            Err(TesseraError::Setting {
                name,
                value,
                reason,
            })
        };
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad(
                "temperature",
                self.temperature.to_string(),
                "use 0 (greedy) or a positive number such as 1",
            );
        }
        if self.top_k == Some(0) {
            return bad(
                "top-k",
                "0".into(),
                "use a positive count such as 50, or leave it out to keep every token",
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(
                "top-p",
                self.top_p.to_string(),
                "use a number in (0, 1], e.g. 0.9; 1 disables it",
            );
        }
        if !(self.guidance.is_finite() && self.guidance >= 0.0) {
            return bad(
                "guidance",
                self.guidance.to_string(),
                "use a scale of 0 or more, e.g. 3; 1 disables guidance",
            );
        }
        if !(self.keep.is_finite() && self.keep >= 0.0) {
            return bad(
                "keep",
                self.keep.to_string(),
                "use 0 (off) or a positive bonus such as 3",
            );
        }
        Ok(())
    }
}

/// Draws tokens with one RNG stream per generation.
pub struct Sampler {
    settings: Settings,
    rng: ChaCha8Rng,
}

impl Sampler {
    pub fn new(settings: Settings) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(settings.seed);
        Sampler { settings, rng }
    }

    /// One token from `logits` (already guided).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let s = &self.settings;
        if s.temperature == 0.0 {
            return argmax(logits);
        }
        // Candidates sorted by logit, highest first; ties keep index order so the result is deterministic.
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        if let Some(k) = s.top_k {
            order.truncate(k);
        }
        let max = logits[order[0]];
        let mut probs: Vec<f64> = order
            .iter()
            .map(|&i| (((logits[i] - max) / s.temperature) as f64).exp())
            .collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if s.top_p < 1.0 {
            let mut cumulative = 0.0;
            let keep = probs
                .iter()
                .position(|p| {
                    cumulative += p;
                    cumulative >= s.top_p as f64
                })
                .map_or(probs.len(), |i| i + 1);
            probs.truncate(keep);
            order.truncate(keep);
        }
        let total: f64 = probs.iter().sum();
        let mut u = self.rng.random::<f64>() * total;
        for (p, &i) in probs.iter().zip(&order) {
            if u < *p {
                return i as u32;
            }
            u -= p;
        }
        order[order.len() - 1] as u32
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// Classifier-free guidance on host values: `uncond + scale·(cond − uncond)`.
pub fn guide(cond: &[f32], uncond: &[f32], scale: f32) -> Vec<f32> {
    cond.iter()
        .zip(uncond)
        .map(|(c, u)| u + scale * (c - u))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(seed: u64, temperature: f32, top_k: Option<usize>, top_p: f32) -> Sampler {
        Sampler::new(Settings {
            seed,
            temperature,
            top_k,
            top_p,
            ..Settings::default()
        })
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut s = sampler(0, 0.0, None, 1.0);
        assert_eq!(s.sample(&[0.0, 3.0, 1.0, 3.0]), 1);
    }

    #[test]
    fn the_same_seed_gives_the_same_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let draw = |seed| {
            let mut s = sampler(seed, 1.0, None, 1.0);
            (0..64).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        // Pinned: the stream must not change between versions or platforms (ChaCha8 + our inverse-CDF walk).
        assert_eq!(&draw(7)[..8], &[30, 30, 43, 7, 46, 27, 19, 37]);
    }

    #[test]
    fn frequencies_follow_the_softmax() {
        // logits ln(1), ln(2), ln(3), ln(4) → probabilities 0.1, 0.2, 0.3, 0.4.
        let logits: Vec<f32> = [1.0f32, 2.0, 3.0, 4.0].iter().map(|p| p.ln()).collect();
        let mut s = sampler(1, 1.0, None, 1.0);
        let mut counts = [0usize; 4];
        let n = 40_000;
        for _ in 0..n {
            counts[s.sample(&logits) as usize] += 1;
        }
        for (i, c) in counts.iter().enumerate() {
            let expected = (i + 1) as f64 / 10.0;
            assert!(
                (*c as f64 / n as f64 - expected).abs() < 0.01,
                "token {i}: {counts:?}"
            );
        }
    }

    #[test]
    fn top_k_and_top_p_never_pick_outside_their_set() {
        let logits: Vec<f32> = [0.1f32, 0.2, 0.3, 0.4].iter().map(|p| p.ln()).collect();
        let mut k2 = sampler(3, 1.0, Some(2), 1.0);
        let mut p = sampler(3, 1.0, None, 0.65); // 0.4 + 0.3 = 0.7 ≥ 0.65: tokens 3 and 2
        for _ in 0..2000 {
            assert!(k2.sample(&logits) >= 2);
            assert!(p.sample(&logits) >= 2);
        }
        let mut tiny_p = sampler(3, 1.0, None, 1e-6);
        assert!((0..100).all(|_| tiny_p.sample(&logits) == 3));
    }

    #[test]
    fn low_temperature_sharpens() {
        let logits = [1.0f32, 1.5];
        let mut cold = sampler(5, 0.05, None, 1.0);
        assert!((0..500).all(|_| cold.sample(&logits) == 1));
    }

    #[test]
    fn guidance_combines_as_documented() {
        assert_eq!(guide(&[2.0, 0.0], &[1.0, 1.0], 3.0), vec![4.0, -2.0]);
        assert_eq!(guide(&[2.0, 0.0], &[1.0, 1.0], 1.0), vec![2.0, 0.0]);
        assert_eq!(guide(&[2.0, 0.0], &[1.0, 1.0], 0.0), vec![1.0, 1.0]);
    }

    #[test]
    fn invalid_settings_are_named() {
        let check = |s: Settings, name: &str| {
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        };
        check(
            Settings {
                top_p: 0.0,
                ..Settings::default()
            },
            "--top-p 0",
        );
        check(
            Settings {
                top_k: Some(0),
                ..Settings::default()
            },
            "--top-k 0",
        );
        check(
            Settings {
                temperature: -1.0,
                ..Settings::default()
            },
            "--temperature -1",
        );
        check(
            Settings {
                guidance: -2.0,
                ..Settings::default()
            },
            "--guidance -2",
        );
        check(
            Settings {
                temperature: f32::NAN,
                ..Settings::default()
            },
            "--temperature NaN",
        );
        check(
            Settings {
                keep: -1.0,
                ..Settings::default()
            },
            "--keep -1",
        );
    }
}
