//! The world's caption grammar: captions and edit instructions for scenes, in English and Chinese, each with
//! several phrasings so the model learns the meaning rather than one template. The phrasing is drawn from
//! the caller's [`Phrasing`]: an RNG for training data and ShapesEval, [`Canonical`] for the one form the
//! interpreter writes back.

use rand::Rng;
use rand::seq::IndexedRandom;

use super::scene::{Edit, Lang, Layout, Object, Scene, Sign, Size};

/// Where a caption's choices of phrasing come from.
pub trait Phrasing {
    /// One of `options` (never empty).
    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str;
    /// One of `n` sentence forms, `0..n`.
    fn form(&mut self, n: i32) -> i32;
    /// Whether to take a variant offered with probability `p`.
    fn chance(&mut self, p: f64) -> bool;
}

/// Any RNG draws phrasings; each choice consumes the RNG exactly as the training data was drawn.
impl<R: Rng + ?Sized> Phrasing for R {
    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options.choose(self).expect("phrasings are never empty")
    }

    fn form(&mut self, n: i32) -> i32 {
        self.random_range(0..n)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.random_bool(p)
    }
}

/// The first phrasing of everything, objects named by colour and shape: the canonical caption.
pub struct Canonical;

impl Phrasing for Canonical {
    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[0]
    }

    fn form(&mut self, _: i32) -> i32 {
        0
    }

    fn chance(&mut self, _: f64) -> bool {
        false
    }
}

/// English names of the 3×3 positions, several phrasings each, indexed `[row][col]`.
const POS_EN: [[&[&str]; 3]; 3] = [
    [
        &[
            "in the top left corner",
            "at the top left",
            "in the upper left",
        ],
        &["at the top", "at the top center", "in the top middle"],
        &[
            "in the top right corner",
            "at the top right",
            "in the upper right",
        ],
    ],
    [
        &["on the left", "at the middle left", "at the left"],
        &["in the center", "in the middle", "at the center"],
        &["on the right", "at the middle right", "at the right"],
    ],
    [
        &[
            "in the bottom left corner",
            "at the bottom left",
            "in the lower left",
        ],
        &[
            "at the bottom",
            "at the bottom center",
            "in the bottom middle",
        ],
        &[
            "in the bottom right corner",
            "at the bottom right",
            "in the lower right",
        ],
    ],
];

const POS_ZH: [[&[&str]; 3]; 3] = [
    [&["左上角"], &["上方", "上方中间"], &["右上角"]],
    [&["左边", "左侧"], &["中间", "正中间"], &["右边", "右侧"]],
    [&["左下角"], &["下方", "下方中间"], &["右下角"]],
];

const SIGN_ROW_EN: [&[&str]; 3] = [
    &["at the top"],
    &["in the middle", "in the center"],
    &["at the bottom"],
];
const SIGN_ROW_ZH: [&str; 3] = ["上方", "中间", "下方"];

fn pick<'a, R: Phrasing + ?Sized>(rng: &mut R, options: &[&'a str]) -> &'a str {
    rng.pick(options)
}

fn article(next: &str) -> &'static str {
    if next.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn size_en<R: Phrasing + ?Sized>(rng: &mut R, size: Size) -> &'static str {
    match size {
        Size::Small => pick(rng, &["small", "little"]),
        Size::Big => pick(rng, &["big", "large"]),
    }
}

fn size_zh(size: Size) -> &'static str {
    match size {
        Size::Small => "小",
        Size::Big => "大",
    }
}

/// "a big red circle" / "一个大的红色圆形"
fn object_phrase<R: Phrasing + ?Sized>(rng: &mut R, o: &Object, lang: Lang) -> String {
    match lang {
        Lang::En => {
            let size = size_en(rng, o.size);
            format!("{} {size} {} {}", article(size), o.color.en(), o.shape.en())
        }
        Lang::Zh => match rng.form(2) {
            0 => format!("一个{}的{}{}", size_zh(o.size), o.color.zh(), o.shape.zh()),
            _ => format!("一个{}{}{}", o.color.zh(), size_zh(o.size), o.shape.zh()),
        },
    }
}

/// "a big red circle in the top left corner" / "左上角有一个大的红色圆形"
fn placed_phrase<R: Phrasing + ?Sized>(rng: &mut R, o: &Object, lang: Lang) -> String {
    let obj = object_phrase(rng, o, lang);
    match lang {
        Lang::En => format!(
            "{obj} {}",
            pick(rng, POS_EN[o.row as usize][o.col as usize])
        ),
        Lang::Zh => format!(
            "{}有{obj}",
            pick(rng, POS_ZH[o.row as usize][o.col as usize])
        ),
    }
}

fn sign_phrase<R: Phrasing + ?Sized>(rng: &mut R, s: &Sign, lang: Lang) -> String {
    match lang {
        Lang::En => {
            let says = pick(rng, &["that says", "reading", "with the word"]);
            let board = s.board.en();
            format!(
                "{} {board} sign {says} {} {}",
                article(board),
                s.word,
                pick(rng, SIGN_ROW_EN[s.row as usize])
            )
        }
        Lang::Zh => format!(
            "{}有一块{}的牌子，上面写着{}",
            SIGN_ROW_ZH[s.row as usize],
            s.board.zh(),
            s.word
        ),
    }
}

fn join_en(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Describe a scene in one caption.
pub fn describe<R: Phrasing + ?Sized>(rng: &mut R, scene: &Scene, lang: Lang) -> String {
    let bg = scene.background;
    if let Layout::Grid(n) = scene.layout {
        return grid_caption(rng, scene, n, lang);
    }
    let mut parts: Vec<String> = scene
        .sign
        .iter()
        .map(|s| sign_phrase(rng, s, lang))
        .collect();
    parts.extend(scene.objects.iter().map(|o| placed_phrase(rng, o, lang)));
    match lang {
        Lang::En => {
            let body = join_en(&parts);
            if parts.is_empty() {
                return format!(
                    "{} {} background",
                    pick(rng, &["an empty", "a plain"]),
                    bg.en()
                );
            }
            match rng.form(3) {
                0 => format!("{body} on {} {} background", article(bg.en()), bg.en()),
                1 => format!("{body}, {} background", bg.en()),
                _ => format!("{} background with {body}", bg.en()),
            }
        }
        Lang::Zh => {
            if parts.is_empty() {
                return format!("空白的{}背景", bg.zh());
            }
            let body = parts.join("，");
            match rng.form(2) {
                0 => format!("{}背景上，{body}", bg.zh()),
                _ => format!("{body}，背景是{}", bg.zh()),
            }
        }
    }
}

fn grid_caption<R: Phrasing + ?Sized>(rng: &mut R, scene: &Scene, n: u8, lang: Lang) -> String {
    let bg = scene.background;
    match lang {
        Lang::En => {
            let items: Vec<String> = scene
                .objects
                .iter()
                .map(|o| format!("{} {}", o.color.en(), o.shape.en()))
                .collect();
            let items = items.join(", ");
            match rng.form(2) {
                0 => format!(
                    "a {n} by {n} grid on {} {} background: {items}",
                    article(bg.en()),
                    bg.en()
                ),
                _ => format!(
                    "{n}x{n} grid, {} background, in reading order: {items}",
                    bg.en()
                ),
            }
        }
        Lang::Zh => {
            let items: Vec<String> = scene
                .objects
                .iter()
                .map(|o| format!("{}{}", o.color.zh(), o.shape.zh()))
                .collect();
            let items = items.join("、");
            match rng.form(2) {
                0 => format!("{}背景上的{n}×{n}网格：{items}", bg.zh()),
                _ => format!("{n}×{n}网格，{}背景，按阅读顺序：{items}", bg.zh()),
            }
        }
    }
}

/// How an instruction names an object: by shape alone when it is the only one of its shape, else by colour
/// and shape (the sampler keeps colour × shape unique within a scene).
fn reference<R: Phrasing + ?Sized>(rng: &mut R, scene: &Scene, o: &Object, lang: Lang) -> String {
    let unique_shape = scene.objects.iter().filter(|x| x.shape == o.shape).count() == 1;
    let by_shape = unique_shape && rng.chance(0.4);
    match (lang, by_shape) {
        (Lang::En, true) => format!("the {}", o.shape.en()),
        (Lang::En, false) => format!("the {} {}", o.color.en(), o.shape.en()),
        (Lang::Zh, true) => o.shape.zh().to_string(),
        (Lang::Zh, false) => format!("{}{}", o.color.zh(), o.shape.zh()),
    }
}

/// An edit instruction for `edit` applied to `scene`.
pub fn instruct<R: Phrasing + ?Sized>(
    rng: &mut R,
    scene: &Scene,
    edit: &Edit,
    lang: Lang,
) -> String {
    instruct_naming(rng, edit, lang, |rng, o| reference(rng, scene, o, lang))
}

/// An edit instruction for `edit` whose edited object is called what `name` says ("the red circle").
pub fn instruct_naming<R: Phrasing + ?Sized>(
    rng: &mut R,
    edit: &Edit,
    lang: Lang,
    mut name: impl FnMut(&mut R, &Object) -> String,
) -> String {
    match (edit, lang) {
        (Edit::Add { object }, Lang::En) => {
            let verb = pick(rng, &["add", "put", "draw"]);
            format!("{verb} {}", placed_phrase(rng, object, lang))
        }
        (Edit::Add { object }, Lang::Zh) => {
            let pos = pick(rng, POS_ZH[object.row as usize][object.col as usize]);
            let verb = pick(rng, &["加", "添加", "画"]);
            format!("在{pos}{verb}{}", object_phrase(rng, object, lang))
        }
        (Edit::Remove { object }, Lang::En) => {
            format!(
                "{} {}",
                pick(rng, &["remove", "delete", "take away"]),
                name(rng, object)
            )
        }
        (Edit::Remove { object }, Lang::Zh) => {
            format!(
                "{}{}",
                pick(rng, &["去掉", "删除", "移除"]),
                name(rng, object)
            )
        }
        (Edit::Recolor { object, to }, Lang::En) => {
            let r = name(rng, object);
            match rng.form(3) {
                0 => format!("make {r} {}", to.en()),
                1 => format!("change the color of {r} to {}", to.en()),
                _ => format!("turn {r} {}", to.en()),
            }
        }
        (Edit::Recolor { object, to }, Lang::Zh) => {
            let r = name(rng, object);
            format!("把{r}{}{}", pick(rng, &["变成", "改成", "涂成"]), to.zh())
        }
        (Edit::Move { object, row, col }, Lang::En) => {
            let r = name(rng, object);
            let to = pick(rng, POS_EN[*row as usize][*col as usize]);
            let to = to
                .trim_start_matches("in the ")
                .trim_start_matches("at the ")
                .trim_start_matches("on the ");
            format!("{} {r} to the {to}", pick(rng, &["move", "shift"]))
        }
        (Edit::Move { object, row, col }, Lang::Zh) => {
            let r = name(rng, object);
            format!(
                "把{r}移到{}",
                pick(rng, POS_ZH[*row as usize][*col as usize])
            )
        }
        (Edit::Background { to }, Lang::En) => match rng.form(2) {
            0 => format!("change the background to {}", to.en()),
            _ => format!("make the background {}", to.en()),
        },
        (Edit::Background { to }, Lang::Zh) => {
            format!("把背景{}{}", pick(rng, &["改成", "换成"]), to.zh())
        }
        (Edit::SignText { to }, Lang::En) => match rng.form(2) {
            0 => format!("change the sign to say {to}"),
            _ => format!("make the sign say {to}"),
        },
        (Edit::SignText { to }, Lang::Zh) => format!("把牌子上的字改成{to}"),
    }
}

/// A few prompts that show what the default model can draw, for the app's example chips and the CLI demo.
pub fn examples() -> Vec<&'static str> {
    vec![
        "a big red circle in the center on a white background",
        "a small blue star in the top left corner and a big yellow heart at the bottom right, black background",
        "a 3 by 3 grid on a white background: red circle, blue square, green triangle, yellow star, purple heart, \
         orange hexagon, pink diamond, brown cross, black ring",
        "a yellow sign that says HELLO in the middle, blue background",
        "白色背景上，左上角有一个大的红色圆形，右下角有一个小的蓝色星形",
    ]
}
