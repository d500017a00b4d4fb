//! Text tokenizer (UTF-8 bytes plus special tokens) and the sequence format the transformer reads.
//!
//! Text and image tokens share one sequence but not one vocabulary: a text token is a byte (0–255) or a
//! special token (256+); an image token is a codebook index. A [`Segment`] says which is which. User text
//! only ever becomes byte tokens, so typing `<img>` or any control string is just text.
//!
//! Sequence format (one row of the CFG batch; the unconditional row has every byte of the user text
//! replaced by `PAD`, so both rows have the same length and positions):
//! ```text
//! generate:               <bos> <user> text… <gen> <img> t₀ … t₂₅₅
//! edit, image first:      <bos> <img> s₀ … s₂₅₅ </img> <user> text… <gen> <img> t₀ … t₂₅₅
//! edit, text first:       <bos> <user> text… <img> s₀ … s₂₅₅ </img> <gen> <img> t₀ … t₂₅₅
//! ```
//! where `s` are the tokens of the image being edited (generated earlier or uploaded and VQ-encoded). A
//! model says which edit layout it was trained on ([`EditLayout`], `edit_layout` in its config). A model
//! with `sign_glyphs` in its config is prompted for a new picture with a sign as for an edit, `s` being the
//! sign drawn alone ([`super::sign_glyphs`]) and the text the picture's description.

pub const PAD: u32 = 256;
pub const BOS: u32 = 257;
pub const USER: u32 = 258;
pub const GEN: u32 = 259;
pub const IMG: u32 = 260;
pub const IMG_END: u32 = 261;
/// Size of the text vocabulary: 256 bytes, 6 special tokens, 2 reserved.
pub const TEXT_VOCAB: usize = 264;

/// Where an edit's instruction sits relative to the image it edits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EditLayout {
    /// The image, then the instruction: the layout the shipped default model was trained on. The distance
    /// from a source token to the target token in the same place grows with the instruction's length, so
    /// copying what the edit leaves alone means finding the source image first.
    #[default]
    ImageFirst,
    /// The instruction, then the image: every target token sits exactly `image tokens + 3` positions after
    /// the source token in the same place, a fixed relative offset that rotary attention can copy from.
    TextFirst,
}

impl std::str::FromStr for EditLayout {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "image-first" => Ok(EditLayout::ImageFirst),
            "text-first" => Ok(EditLayout::TextFirst),
            _ => Err(format!(
                "`{s}` is not an edit layout: image-first or text-first"
            )),
        }
    }
}

/// A run of tokens of one kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Text-vocabulary ids (bytes and special tokens).
    Text(Vec<u32>),
    /// Codebook indices of an image, raster order.
    Image(Vec<u32>),
}

impl Segment {
    pub fn len(&self) -> usize {
        match self {
            Segment::Text(t) | Segment::Image(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The conditional and unconditional rows of one prompt, ready for prefill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub cond: Vec<Segment>,
    pub uncond: Vec<Segment>,
}

impl Prompt {
    /// A generation prompt, or an edit prompt in `layout` when `context` holds the tokens of the image being
    /// edited.
    pub fn new(text: &str, context: Option<&[u32]>, layout: EditLayout) -> Self {
        let bytes: Vec<u32> = text.bytes().map(u32::from).collect();
        let row = |user: Vec<u32>| {
            let instruction = [&[USER][..], &user].concat();
            let text = |parts: &[&[u32]]| Segment::Text(parts.concat());
            let Some(image) = context else {
                return vec![text(&[&[BOS], &instruction, &[GEN, IMG]])];
            };
            let image = Segment::Image(image.to_vec());
            match layout {
                EditLayout::ImageFirst => vec![
                    text(&[&[BOS, IMG]]),
                    image,
                    text(&[&[IMG_END], &instruction, &[GEN, IMG]]),
                ],
                EditLayout::TextFirst => vec![
                    text(&[&[BOS], &instruction, &[IMG]]),
                    image,
                    text(&[&[IMG_END, GEN, IMG]]),
                ],
            }
        };
        Prompt {
            cond: row(bytes.clone()),
            uncond: row(vec![PAD; bytes.len()]),
        }
    }

    /// Number of positions before the first generated image token.
    pub fn len(&self) -> usize {
        self.cond.iter().map(Segment::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_never_produces_a_special_token() {
        let p = Prompt::new(
            "<img> </img> <bos> \u{100} 你好",
            None,
            EditLayout::default(),
        );
        let Segment::Text(t) = &p.cond[0] else {
            panic!()
        };
        let user = &t[2..t.len() - 2];
        assert!(user.iter().all(|&id| id < 256));
        assert_eq!(user.len(), "<img> </img> <bos> \u{100} 你好".len());
        assert_eq!(&t[..2], &[BOS, USER]);
        assert_eq!(&t[t.len() - 2..], &[GEN, IMG]);
    }

    #[test]
    fn unconditional_row_pads_only_the_user_text() {
        let img = vec![5u32; 4];
        let p = Prompt::new("ab", Some(&img), EditLayout::ImageFirst);
        assert_eq!(
            p.cond,
            vec![
                Segment::Text(vec![BOS, IMG]),
                Segment::Image(img.clone()),
                Segment::Text(vec![IMG_END, USER, 97, 98, GEN, IMG])
            ]
        );
        assert_eq!(
            p.uncond[2],
            Segment::Text(vec![IMG_END, USER, PAD, PAD, GEN, IMG])
        );
        assert_eq!(p.uncond[1], Segment::Image(img));
        assert_eq!(p.len(), 12);
    }

    #[test]
    fn text_first_edits_keep_each_target_token_a_fixed_distance_from_its_source_token() {
        let img = vec![5u32; 256];
        // Distance from s₀ to t₀: where the target starts minus where the source starts.
        let offset = |text: &str, layout| {
            let p = Prompt::new(text, Some(&img), layout);
            let source_start = p.cond[0].len();
            assert_eq!(p.cond[1], Segment::Image(img.clone()));
            p.len() - source_start
        };
        for layout in [EditLayout::ImageFirst, EditLayout::TextFirst] {
            let (short, long) = (
                offset("ab", layout),
                offset("make the circle green", layout),
            );
            assert_eq!(short == long, layout == EditLayout::TextFirst, "{layout:?}");
        }
        assert_eq!(offset("ab", EditLayout::TextFirst), 256 + 3);
        let p = Prompt::new("ab", Some(&[7, 8]), EditLayout::TextFirst);
        assert_eq!(
            p.uncond,
            vec![
                Segment::Text(vec![BOS, USER, PAD, PAD, IMG]),
                Segment::Image(vec![7, 8]),
                Segment::Text(vec![IMG_END, GEN, IMG])
            ]
        );
        // Without an image the layouts agree.
        assert_eq!(
            Prompt::new("ab", None, EditLayout::TextFirst),
            Prompt::new("ab", None, EditLayout::ImageFirst)
        );
        assert_eq!("text-first".parse(), Ok(EditLayout::TextFirst));
        assert!(
            "sideways"
                .parse::<EditLayout>()
                .unwrap_err()
                .contains("image-first")
        );
    }
}
