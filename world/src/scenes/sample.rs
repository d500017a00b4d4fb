//! Drawing scenes, captions and edits from a seeded RNG: the training distribution and ShapesEval's splits
//! come from the same code, so what the model is judged on is what it was taught (minus the held-out pairs).

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use super::caption::{describe, instruct};
use super::{Color, Edit, FREE_LAYOUT, Lang, Layout, Object, Scene, Shape, Sign, Size, WORDS};

/// What kind of example a sample is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// One object at a named position.
    Single,
    /// Two to four objects at named positions.
    Multi,
    /// A full 2×2, 3×3 or 4×4 grid.
    Grid,
    /// A sign with a word, and up to two objects.
    Sign,
    /// An instruction that changes a source scene into a target scene.
    Edit,
}

/// Whether the held-out shape × colour pairs are excluded (training) or required (the held-out split).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HeldOut {
    Exclude,
    Require,
}

/// One example: the caption or instruction, the target scene, and for edits the source scene.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sample {
    pub category: Category,
    pub lang: Lang,
    pub text: String,
    pub scene: Scene,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Scene>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edit: Option<Edit>,
}

/// The RNG for example `index` of a dataset drawn with `seed`: independent of how many threads draw it.
pub fn example_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    rng
}

impl Category {
    /// Every category, in the order the training mix lists them.
    pub const ALL: [Category; 5] = [
        Category::Single,
        Category::Multi,
        Category::Grid,
        Category::Sign,
        Category::Edit,
    ];

    /// The category's name, as it is serialised.
    pub fn name(self) -> &'static str {
        match self {
            Category::Single => "single",
            Category::Multi => "multi",
            Category::Grid => "grid",
            Category::Sign => "sign",
            Category::Edit => "edit",
        }
    }
}

/// How often each category is drawn for training: relative weights in [`Category::ALL`]'s order. Written as
/// `sign=30,edit=30`; categories not named keep their default weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix([u32; 5]);

impl Default for Mix {
    /// The mix the shipped model was trained on.
    fn default() -> Self {
        Mix([15, 25, 20, 15, 25])
    }
}

impl Mix {
    /// `{"single": 15, …}`, for a shard's metadata.
    pub fn to_json(self) -> serde_json::Value {
        Category::ALL
            .iter()
            .zip(self.0)
            .map(|(c, w)| (c.name().to_string(), w.into()))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

impl std::str::FromStr for Mix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut mix = Mix::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not name=weight (e.g. sign=30)"))?;
            let i = Category::ALL
                .iter()
                .position(|c| c.name() == name.trim())
                .ok_or_else(|| {
                    let names: Vec<_> = Category::ALL.iter().map(|c| c.name()).collect();
                    format!(
                        "no category `{}`; the categories are {}",
                        name.trim(),
                        names.join(", ")
                    )
                })?;
            mix.0[i] = weight.trim().parse().map_err(|_| {
                format!("the weight of {name} must be a whole number, not `{weight}`")
            })?;
        }
        if mix.0.iter().all(|&w| w == 0) {
            return Err("at least one category needs a weight above 0".into());
        }
        Ok(mix)
    }
}

/// One training example drawn with `mix`; Chinese for 40% of captions.
pub fn training_sample<R: Rng>(rng: &mut R, mix: Mix) -> Sample {
    let weighted: [(Category, u32); 5] = std::array::from_fn(|i| (Category::ALL[i], mix.0[i]));
    let category = weighted
        .choose_weighted(rng, |c| c.1)
        .expect("Mix::from_str keeps a positive weight")
        .0;
    let lang = if rng.random_bool(0.4) {
        Lang::Zh
    } else {
        Lang::En
    };
    sample(rng, category, lang, HeldOut::Exclude)
}

pub fn sample<R: Rng>(rng: &mut R, category: Category, lang: Lang, held_out: HeldOut) -> Sample {
    if category == Category::Edit {
        return sample_edit(rng, lang);
    }
    let scene = match category {
        Category::Single => free_scene(rng, 1, held_out),
        Category::Multi => {
            let k = rng.random_range(2..=4);
            free_scene(rng, k, held_out)
        }
        Category::Grid => {
            let n = rng.random_range(2..=4);
            grid_scene(rng, n)
        }
        Category::Sign => sign_scene(rng),
        Category::Edit => unreachable!(),
    };
    let text = describe(rng, &scene, lang);
    Sample {
        category,
        lang,
        text,
        scene,
        source: None,
        edit: None,
    }
}

fn random_contrasting<R: Rng>(rng: &mut R, against: &[Color]) -> Color {
    let ok: Vec<Color> = Color::ALL
        .into_iter()
        .filter(|c| against.iter().all(|a| c.contrasts(*a)))
        .collect();
    *ok.choose(rng)
        .expect("every colour contrasts with some other")
}

/// A random shape and colour for a new object in `scene`: contrasting with the background, not already in
/// the scene (so instructions can name it), and outside the held-out pairs unless `held_out` asks for one.
fn new_object<R: Rng>(rng: &mut R, scene: &Scene, row: u8, col: u8, held_out: HeldOut) -> Object {
    let size = if rng.random_bool(0.5) {
        Size::Big
    } else {
        Size::Small
    };
    loop {
        let (shape, color) = match held_out {
            HeldOut::Require => *super::HELD_OUT.choose(rng).unwrap(),
            HeldOut::Exclude => (
                *Shape::ALL.choose(rng).unwrap(),
                *Color::ALL.choose(rng).unwrap(),
            ),
        };
        let o = Object {
            shape,
            color,
            size,
            row,
            col,
        };
        let taken = scene
            .objects
            .iter()
            .any(|x| x.shape == shape && x.color == color);
        if color.contrasts(scene.background)
            && !taken
            && (held_out == HeldOut::Require || !o.is_held_out())
        {
            return o;
        }
    }
}

fn free_cells(scene: &Scene) -> Vec<(u8, u8)> {
    let n = FREE_LAYOUT;
    (0..n)
        .flat_map(|r| (0..n).map(move |c| (r, c)))
        .filter(|&(r, c)| scene.cell_free(r, c))
        .collect()
}

/// `k` objects at distinct free positions; with `HeldOut::Require`, the first drawn is a held-out pair.
fn free_scene<R: Rng>(rng: &mut R, k: usize, held_out: HeldOut) -> Scene {
    let background = *Color::ALL.choose(rng).unwrap();
    let mut scene = Scene {
        background,
        layout: Layout::Free,
        objects: vec![],
        sign: None,
    };
    add_objects(rng, &mut scene, k, held_out);
    scene
}

fn add_objects<R: Rng>(rng: &mut R, scene: &mut Scene, k: usize, held_out: HeldOut) {
    let mut cells = free_cells(scene);
    cells.shuffle(rng);
    for (i, &(row, col)) in cells.iter().take(k).enumerate() {
        let policy = if i == 0 { held_out } else { HeldOut::Exclude };
        let o = new_object(rng, scene, row, col, policy);
        scene.objects.push(o);
    }
    scene.sort_objects();
}

fn grid_scene<R: Rng>(rng: &mut R, n: u8) -> Scene {
    let background = *Color::ALL.choose(rng).unwrap();
    let mut objects = Vec::new();
    for row in 0..n {
        for col in 0..n {
            loop {
                let (shape, color) = (
                    *Shape::ALL.choose(rng).unwrap(),
                    *Color::ALL.choose(rng).unwrap(),
                );
                let o = Object {
                    shape,
                    color,
                    size: Size::Big,
                    row,
                    col,
                };
                if color.contrasts(background) && !o.is_held_out() {
                    objects.push(o);
                    break;
                }
            }
        }
    }
    Scene {
        background,
        layout: Layout::Grid(n),
        objects,
        sign: None,
    }
}

fn sign_scene<R: Rng>(rng: &mut R) -> Scene {
    let background = *Color::ALL.choose(rng).unwrap();
    let board = random_contrasting(rng, &[background]);
    let word = WORDS.choose(rng).unwrap().to_string();
    let sign = Sign {
        word,
        board,
        row: rng.random_range(0..3),
    };
    let mut scene = Scene {
        background,
        layout: Layout::Free,
        objects: vec![],
        sign: Some(sign),
    };
    let k = rng.random_range(0..=2);
    add_objects(rng, &mut scene, k, HeldOut::Exclude);
    scene
}

/// A source scene (one to three objects, or a sign) and one applicable edit of it.
fn sample_edit<R: Rng>(rng: &mut R, lang: Lang) -> Sample {
    let source = match rng.random_range(0..4) {
        0 => sign_scene(rng),
        _ => {
            let k = rng.random_range(1..=3);
            free_scene(rng, k, HeldOut::Exclude)
        }
    };
    let edit = loop {
        if let Some(e) = random_edit(rng, &source) {
            break e;
        }
    };
    let scene = edit.apply(&source);
    let text = instruct(rng, &source, &edit, lang);
    Sample {
        category: Category::Edit,
        lang,
        text,
        scene,
        source: Some(source),
        edit: Some(edit),
    }
}

/// One edit of `scene` drawn uniformly over the six operations; `None` when the drawn one does not apply.
fn random_edit<R: Rng>(rng: &mut R, scene: &Scene) -> Option<Edit> {
    let free = free_cells(scene);
    let target = scene.objects.choose(rng).cloned();
    match rng.random_range(0..6) {
        0 => {
            let &(row, col) = free.choose(rng)?;
            Some(Edit::Add {
                object: new_object(rng, scene, row, col, HeldOut::Exclude),
            })
        }
        1 => Some(Edit::Remove { object: target? }),
        2 => {
            let object = target?;
            let to = *Color::ALL.choose(rng).unwrap();
            let recolored = Object {
                color: to,
                ..object.clone()
            };
            let clash = scene
                .objects
                .iter()
                .any(|x| x.shape == object.shape && x.color == to);
            (to != object.color
                && to.contrasts(scene.background)
                && !clash
                && !recolored.is_held_out())
            .then_some(Edit::Recolor { object, to })
        }
        3 => {
            let object = target?;
            let &(row, col) = free.choose(rng)?;
            Some(Edit::Move { object, row, col })
        }
        4 => {
            let mut shown: Vec<Color> = scene.objects.iter().map(|o| o.color).collect();
            shown.extend(scene.sign.iter().map(|s| s.board));
            let ok: Vec<Color> = Color::ALL
                .into_iter()
                .filter(|c| *c != scene.background && shown.iter().all(|k| c.contrasts(*k)))
                .collect();
            Some(Edit::Background {
                to: *ok.choose(rng)?,
            })
        }
        _ => {
            let sign = scene.sign.as_ref()?;
            let to = WORDS.choose(rng).unwrap().to_string();
            (to != sign.word).then_some(Edit::SignText { to })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenes::render::render;

    fn english_edit(seed: u64, index: u64) -> Sample {
        let mut rng = example_rng(seed, index);
        sample(&mut rng, Category::Edit, Lang::En, HeldOut::Exclude)
    }

    #[test]
    fn the_same_seed_and_index_give_the_same_sample() {
        let a = training_sample(&mut example_rng(7, 42), Mix::default());
        let b = training_sample(&mut example_rng(7, 42), Mix::default());
        let c = training_sample(&mut example_rng(7, 43), Mix::default());
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        assert_ne!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&c).unwrap()
        );
    }

    #[test]
    fn a_mix_names_categories_as_they_are_serialised_and_refuses_nonsense() {
        for c in Category::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.name());
        }
        let mix: Mix = "sign=30, edit=40".parse().unwrap();
        assert_eq!(mix, Mix([15, 25, 20, 30, 40]));
        assert_eq!("".parse::<Mix>().unwrap(), Mix::default());
        for (bad, says) in [
            ("signs=3", "no category `signs`"),
            ("sign", "not name=weight"),
            ("sign=-1", "whole number"),
            ("single=0,multi=0,grid=0,sign=0,edit=0", "above 0"),
        ] {
            let e = bad.parse::<Mix>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let only_signs: Mix = "single=0,multi=0,grid=0,edit=0".parse().unwrap();
        for i in 0..50 {
            let s = training_sample(&mut example_rng(2, i), only_signs);
            assert_eq!(s.category, Category::Sign);
        }
    }

    #[test]
    fn training_data_never_contains_a_held_out_pair() {
        for i in 0..3000 {
            let s = training_sample(&mut example_rng(1, i), Mix::default());
            for scene in std::iter::once(&s.scene).chain(s.source.as_ref()) {
                assert!(scene.objects.iter().all(|o| !o.is_held_out()), "{:?}", s);
            }
        }
    }

    #[test]
    fn held_out_split_always_contains_a_held_out_pair() {
        for i in 0..200 {
            let s = sample(
                &mut example_rng(2, i),
                Category::Multi,
                Lang::En,
                HeldOut::Require,
            );
            assert!(s.scene.objects.iter().any(|o| o.is_held_out()));
        }
    }

    #[test]
    fn edits_leave_everything_they_do_not_name_pixel_identical() {
        for i in 0..400 {
            let s = english_edit(3, i);
            let (src, tgt) = (render(s.source.as_ref().unwrap()), render(&s.scene));
            assert_ne!(src, tgt, "edit changes something: {}", s.text);
            let changed = changed_cells(s.source.as_ref().unwrap(), &s.scene);
            // Pixels outside the cells an object edit touches are identical.
            if let Some(cells) = changed {
                for y in 0..128 {
                    for x in 0..128 {
                        let cell = ((y * 3 / 128) as u8, (x * 3 / 128) as u8);
                        if !cells.contains(&cell) {
                            assert_eq!(
                                src[(y * 128 + x) * 3..][..3],
                                tgt[(y * 128 + x) * 3..][..3],
                                "{}",
                                s.text
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_kind_of_edit_is_drawn_and_named_as_it_is_serialised() {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..400 {
            let s = english_edit(8, i);
            let edit = s.edit.expect("edit samples carry their edit");
            assert_eq!(serde_json::to_value(&edit).unwrap()["op"], edit.op());
            seen.insert(edit.op());
        }
        let all = [
            "add",
            "background",
            "move",
            "recolor",
            "remove",
            "sign_text",
        ];
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), all);
    }

    /// The 3×3 cells whose objects differ, or `None` when the edit touches the background or the sign.
    fn changed_cells(a: &Scene, b: &Scene) -> Option<Vec<(u8, u8)>> {
        if a.background != b.background || a.sign != b.sign {
            return None;
        }
        let mut cells = vec![];
        for r in 0..3 {
            for c in 0..3 {
                if a.object_at(r, c) != b.object_at(r, c) {
                    cells.push((r, c));
                }
            }
        }
        Some(cells)
    }

    #[test]
    fn captions_name_every_object_of_a_grid_in_reading_order() {
        let s = sample(
            &mut example_rng(4, 0),
            Category::Grid,
            Lang::En,
            HeldOut::Exclude,
        );
        let mut at = 0;
        for o in &s.scene.objects {
            let name = format!("{} {}", o.color.en(), o.shape.en());
            let found = s.text[at..]
                .find(&name)
                .unwrap_or_else(|| panic!("{name} after {at} in {}", s.text));
            at += found + name.len();
        }
    }
}
