//! Prompts worded the way people write them rather than the way the world's captions do: other words
//! for shapes, colours, sizes and places (and `#RRGGBB` codes), other orders, number words, Chinese
//! variants, and now and then a typo. ShapesEval's `paraphrase` split is made of them; the trainer never
//! sees them, so the split measures what a model (and the interpreter in front of it) makes of wording it
//! was not taught.

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};

use crate::scenes::{Color, Lang, Layout, Object, Scene, Shape, Size};

fn pick<'a, R: Rng>(rng: &mut R, options: &[&'a str]) -> &'a str {
    options.choose(rng).expect("options are never empty")
}

fn shape_en<R: Rng>(rng: &mut R, s: Shape) -> &'static str {
    match s {
        Shape::Circle => pick(rng, &["circle", "dot", "disc"]),
        Shape::Square => pick(rng, &["square", "box", "block"]),
        Shape::Triangle => "triangle",
        Shape::Star => "star",
        Shape::Heart => "heart",
        Shape::Hexagon => "hexagon",
        Shape::Diamond => pick(rng, &["diamond", "rhombus"]),
        Shape::Cross => pick(rng, &["cross", "plus sign"]),
        Shape::Ring => pick(rng, &["ring", "donut", "hoop"]),
    }
}

fn shape_zh<R: Rng>(rng: &mut R, s: Shape) -> &'static str {
    match s {
        Shape::Circle => pick(rng, &["圆", "圆圈", "圆形"]),
        Shape::Square => pick(rng, &["方块", "方形", "正方形"]),
        Shape::Triangle => pick(rng, &["三角", "三角形"]),
        Shape::Star => pick(rng, &["星星", "五角星", "星形"]),
        Shape::Heart => pick(rng, &["爱心", "心形"]),
        Shape::Hexagon => pick(rng, &["六角形", "六边形"]),
        Shape::Diamond => "菱形",
        Shape::Cross => pick(rng, &["十字", "十字形", "加号"]),
        Shape::Ring => pick(rng, &["圆环", "环形"]),
    }
}

/// A colour as a name, another name, or the exact `#RRGGBB` the world paints it with.
fn color_en<R: Rng>(rng: &mut R, c: Color) -> String {
    if rng.random_bool(0.15) {
        let [r, g, b] = c.rgb();
        return format!("#{r:02x}{g:02x}{b:02x}");
    }
    match c {
        Color::Gray => pick(rng, &["gray", "grey"]).into(),
        Color::Purple => pick(rng, &["purple", "violet"]).into(),
        other => other.en().into(),
    }
}

fn color_zh<R: Rng>(rng: &mut R, c: Color) -> String {
    let full = c.zh();
    if rng.random_bool(0.4) {
        full.trim_end_matches('色').to_string()
    } else {
        full.to_string()
    }
}

fn size_en<R: Rng>(rng: &mut R, s: Size) -> &'static str {
    match s {
        Size::Small => pick(rng, &["tiny", "small", "little", "mini"]),
        Size::Big => pick(rng, &["huge", "large", "big", "giant"]),
    }
}

fn place_en<R: Rng>(rng: &mut R, row: u8, col: u8) -> String {
    let v = ["top", "middle", "bottom"][row as usize];
    let h = ["left", "center", "right"][col as usize];
    match (row, col) {
        (1, 1) => pick(
            rng,
            &[
                "in the centre",
                "right in the middle",
                "in the center of the picture",
            ],
        )
        .into(),
        (1, _) => {
            let at = pick(rng, &["on the", "at the", "along the"]);
            let side = pick(rng, &["", " side", " edge"]);
            format!("{at} {h}{side}")
        }
        (_, 1) => {
            let at = pick(rng, &["at the", "near the"]);
            let part = pick(rng, &["", " middle", " edge"]);
            format!("{at} {v}{part}")
        }
        _ => {
            let corner = match rng.random_range(0..4) {
                0 => format!("{v}-{h} corner"),
                1 => format!("{v} {h}"),
                2 => format!("{} {h}", if row == 0 { "upper" } else { "lower" }),
                _ => format!("{v}-{h}"),
            };
            format!("{} {corner}", pick(rng, &["in the", "at the", "up in the"]))
        }
    }
}

fn place_zh<R: Rng>(rng: &mut R, row: u8, col: u8) -> &'static str {
    match (row, col) {
        (0, 0) => pick(rng, &["左上", "左上方", "左上角"]),
        (0, 1) => pick(rng, &["顶部", "上面", "正上方"]),
        (0, 2) => pick(rng, &["右上", "右上方", "右上角"]),
        (1, 0) => pick(rng, &["左侧", "左面", "左边"]),
        (1, 1) => pick(rng, &["中央", "中心", "正中间"]),
        (1, 2) => pick(rng, &["右侧", "右面", "右边"]),
        (2, 0) => pick(rng, &["左下", "左下方", "左下角"]),
        (2, 1) => pick(rng, &["底部", "下面", "正下方"]),
        _ => pick(rng, &["右下", "右下方", "右下角"]),
    }
}

/// One letter dropped, doubled or swapped with the next, in a word of six letters or more.
fn typo<R: Rng>(rng: &mut R, word: &str) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    let i = rng.random_range(1..chars.len() - 2);
    match rng.random_range(0..3) {
        0 => {
            chars.remove(i);
        }
        1 => chars.insert(i, chars[i]),
        _ => chars.swap(i, i + 1),
    }
    chars.into_iter().collect()
}

/// At most one typo in an English prompt, in three prompts of ten.
fn misspell<R: Rng>(rng: &mut R, text: String) -> String {
    if !rng.random_bool(0.3) {
        return text;
    }
    let long: Vec<&str> = text
        .split(' ')
        .filter(|w| w.len() >= 6 && w.chars().all(|c| c.is_ascii_lowercase()))
        .collect();
    let Some(word) = long.choose(rng).map(|w| w.to_string()) else {
        return text;
    };
    let wrong = typo(rng, &word);
    text.replacen(&word, &wrong, 1)
}

fn object_en<R: Rng>(rng: &mut R, o: &Object) -> String {
    let (size, color, shape) = (
        size_en(rng, o.size),
        color_en(rng, o.color),
        shape_en(rng, o.shape),
    );
    match rng.random_range(0..3) {
        0 => format!("a {size} {color} {shape}"),
        1 => format!("a {size} {shape} in {color}"),
        _ => format!("one {size} {shape} colored {color}"),
    }
}

fn background_en<R: Rng>(rng: &mut R, c: Color) -> String {
    let c = color_en(rng, c);
    match rng.random_range(0..4) {
        0 => format!("the background is {c}"),
        1 => format!("on a plain {c} backdrop"),
        2 => format!("background: {c}"),
        _ => format!("with a {c} background"),
    }
}

fn english<R: Rng>(rng: &mut R, scene: &Scene) -> String {
    let bg = background_en(rng, scene.background);
    if let Layout::Grid(n) = scene.layout {
        let items: Vec<String> = scene
            .objects
            .iter()
            .map(|o| format!("{} {}", color_en(rng, o.color), shape_en(rng, o.shape)))
            .collect();
        let number = ["", "", "two", "three", "four"][n as usize];
        let size = match rng.random_range(0..3) {
            0 => format!("{number} by {number}"),
            1 => format!("{n}×{n}"),
            _ => format!("{n}x{n}"),
        };
        return format!(
            "{size} grid, {bg}. Left to right, top to bottom: {}",
            items.join("; ")
        );
    }
    let mut parts: Vec<String> = scene
        .objects
        .iter()
        .map(|o| {
            let obj = object_en(rng, o);
            let place = place_en(rng, o.row, o.col);
            if rng.random_bool(0.3) {
                let mut p = place;
                p[..1].make_ascii_uppercase();
                format!("{p} there is {obj}")
            } else {
                format!("{obj} {place}")
            }
        })
        .collect();
    parts.shuffle(rng);
    let body = parts.join(if rng.random_bool(0.5) { ", and " } else { ". " });
    if rng.random_bool(0.5) {
        format!("{bg}. {body}")
    } else {
        format!("{body}, {bg}")
    }
}

fn chinese<R: Rng>(rng: &mut R, scene: &Scene) -> String {
    let bg = color_zh(rng, scene.background);
    let bg = match rng.random_range(0..3) {
        0 => format!("{bg}底"),
        1 => format!("底色是{bg}"),
        _ => format!("背景为{bg}"),
    };
    if let Layout::Grid(n) = scene.layout {
        let items: Vec<String> = scene
            .objects
            .iter()
            .map(|o| format!("{}{}", color_zh(rng, o.color), shape_zh(rng, o.shape)))
            .collect();
        let number = ["", "", "二", "三", "四"][n as usize];
        return format!("{number}乘{number}的网格，{bg}：{}", items.join("、"));
    }
    let mut parts: Vec<String> = scene
        .objects
        .iter()
        .map(|o| {
            let size = match o.size {
                Size::Big => pick(rng, &["大", "巨大的"]),
                Size::Small => pick(rng, &["小", "小小的"]),
            };
            let color = color_zh(rng, o.color);
            let shape = shape_zh(rng, o.shape);
            let place = place_zh(rng, o.row, o.col);
            if rng.random_bool(0.5) {
                format!("{place}是一个{size}{color}{shape}")
            } else {
                format!("一个{color}的{size}{shape}在{place}")
            }
        })
        .collect();
    parts.shuffle(rng);
    format!("{bg}，{}", parts.join("，"))
}

/// A prompt for `scene` in `lang`, worded unlike the world's captions. Scenes with a sign are not
/// paraphrased (their word is the test; see the `text` split).
pub fn paraphrase<R: Rng>(rng: &mut R, scene: &Scene, lang: Lang) -> String {
    assert!(scene.sign.is_none(), "signs are not paraphrased");
    match lang {
        Lang::En => {
            let text = english(rng, scene);
            misspell(rng, text)
        }
        Lang::Zh => chinese(rng, scene),
    }
}
