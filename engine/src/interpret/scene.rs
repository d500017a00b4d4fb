//! The world the default model knows, "Shapes & Signs", as data: shapes, colours, sizes, objects at named
//! cells, signs with a word, scenes and the edits between them. The interpreter reads messages into these
//! types and [`super::caption`] writes them back in the world's caption grammar; the `tessera-world` crate
//! samples, renders and judges them.

use serde::{Deserialize, Serialize};

/// Rendered scenes are `IMAGE_SIZE`² RGB.
pub const IMAGE_SIZE: usize = 128;
/// Free objects and signs sit on a 3×3 layout of named positions.
pub const FREE_LAYOUT: u8 = 3;
/// Sign words are at most this many characters, so a sign fits one row of the 3×3 layout.
pub const MAX_WORD_LEN: usize = 5;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Star,
    Heart,
    Hexagon,
    Diamond,
    Cross,
    Ring,
}

impl Shape {
    pub const ALL: [Shape; 9] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Star,
        Shape::Heart,
        Shape::Hexagon,
        Shape::Diamond,
        Shape::Cross,
        Shape::Ring,
    ];

    pub fn en(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Star => "star",
            Shape::Heart => "heart",
            Shape::Hexagon => "hexagon",
            Shape::Diamond => "diamond",
            Shape::Cross => "cross",
            Shape::Ring => "ring",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            Shape::Circle => "圆形",
            Shape::Square => "正方形",
            Shape::Triangle => "三角形",
            Shape::Star => "星形",
            Shape::Heart => "心形",
            Shape::Hexagon => "六边形",
            Shape::Diamond => "菱形",
            Shape::Cross => "十字",
            Shape::Ring => "圆环",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Red,
    Orange,
    Yellow,
    Green,
    Blue,
    Purple,
    Pink,
    Brown,
    Black,
    White,
    Gray,
}

impl Color {
    pub const ALL: [Color; 11] = [
        Color::Red,
        Color::Orange,
        Color::Yellow,
        Color::Green,
        Color::Blue,
        Color::Purple,
        Color::Pink,
        Color::Brown,
        Color::Black,
        Color::White,
        Color::Gray,
    ];

    pub fn rgb(self) -> [u8; 3] {
        match self {
            Color::Red => [220, 40, 40],
            Color::Orange => [245, 140, 20],
            Color::Yellow => [245, 215, 30],
            Color::Green => [40, 170, 60],
            Color::Blue => [40, 90, 220],
            Color::Purple => [140, 60, 190],
            Color::Pink => [245, 130, 190],
            Color::Brown => [130, 80, 40],
            Color::Black => [20, 20, 20],
            Color::White => [245, 245, 245],
            Color::Gray => [128, 128, 128],
        }
    }

    pub fn en(self) -> &'static str {
        match self {
            Color::Red => "red",
            Color::Orange => "orange",
            Color::Yellow => "yellow",
            Color::Green => "green",
            Color::Blue => "blue",
            Color::Purple => "purple",
            Color::Pink => "pink",
            Color::Brown => "brown",
            Color::Black => "black",
            Color::White => "white",
            Color::Gray => "gray",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            Color::Red => "红色",
            Color::Orange => "橙色",
            Color::Yellow => "黄色",
            Color::Green => "绿色",
            Color::Blue => "蓝色",
            Color::Purple => "紫色",
            Color::Pink => "粉色",
            Color::Brown => "棕色",
            Color::Black => "黑色",
            Color::White => "白色",
            Color::Gray => "灰色",
        }
    }

    /// Whether `self` drawn on `other` (or the reverse) is clearly visible: the Euclidean RGB distance is
    /// over 110, which rules out pairs such as orange on yellow that a small model blurs together.
    pub fn contrasts(self, other: Color) -> bool {
        let (a, b) = (self.rgb(), other.rgb());
        let d2: i32 = (0..3).map(|i| (a[i] as i32 - b[i] as i32).pow(2)).sum();
        d2 > 110 * 110
    }

    /// Ink colour for text on a board of this colour.
    pub fn ink(self) -> Color {
        let [r, g, b] = self.rgb();
        if 299 * r as u32 + 587 * g as u32 + 114 * b as u32 > 140_000 {
            Color::Black
        } else {
            Color::White
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    Small,
    Big,
}

/// Shape × colour pairs that never appear in training data; ShapesEval's `heldout` split is made of them.
pub const HELD_OUT: [(Shape, Color); 6] = [
    (Shape::Star, Color::Green),
    (Shape::Heart, Color::Blue),
    (Shape::Triangle, Color::Purple),
    (Shape::Ring, Color::Orange),
    (Shape::Hexagon, Color::Pink),
    (Shape::Cross, Color::Yellow),
];

/// Words that signs can say (2–5 letters, A–Z).
pub const WORDS: [&str; 40] = [
    "STOP", "OPEN", "EXIT", "CAFE", "SHOP", "HOTEL", "BANK", "PARK", "ZOO", "TAXI", "BUS", "SALE",
    "FOOD", "BOOK", "MUSIC", "PIZZA", "HELLO", "YES", "NO", "GO", "UP", "LEFT", "RIGHT", "WEST",
    "EAST", "NORTH", "SOUTH", "ART", "GYM", "SPA", "BAR", "INN", "MILK", "TEA", "BREAD", "FISH",
    "CAKE", "JAZZ", "QUIZ", "WAVE",
];

/// One object: a shape of a colour and size in cell (`row`, `col`) of the scene's layout.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Object {
    pub shape: Shape,
    pub color: Color,
    pub size: Size,
    pub row: u8,
    pub col: u8,
}

impl Object {
    pub fn is_held_out(&self) -> bool {
        HELD_OUT.contains(&(self.shape, self.color))
    }
}

/// A board with a word on it, centred horizontally in row `row` of the 3×3 layout.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Sign {
    pub word: String,
    pub board: Color,
    pub row: u8,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "n")]
pub enum Layout {
    /// Up to a few objects at named positions of the 3×3 layout, each small or big.
    Free,
    /// Every cell of an n×n grid filled, described in reading order.
    Grid(u8),
}

impl Layout {
    /// Cells per side.
    pub fn n(self) -> u8 {
        match self {
            Layout::Free => FREE_LAYOUT,
            Layout::Grid(n) => n,
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Scene {
    pub background: Color,
    pub layout: Layout,
    /// In reading order (row-major).
    pub objects: Vec<Object>,
    pub sign: Option<Sign>,
}

impl Scene {
    pub fn object_at(&self, row: u8, col: u8) -> Option<&Object> {
        self.objects.iter().find(|o| o.row == row && o.col == col)
    }

    /// Whether an object may be placed in (`row`, `col`): the cell is empty and not covered by the sign.
    pub fn cell_free(&self, row: u8, col: u8) -> bool {
        self.object_at(row, col).is_none() && self.sign.as_ref().is_none_or(|s| s.row != row)
    }

    pub fn sort_objects(&mut self) {
        self.objects.sort_by_key(|o| (o.row, o.col));
    }
}

/// An edit instruction as data: what changes between a source scene and its target.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Edit {
    Add { object: Object },
    Remove { object: Object },
    Recolor { object: Object, to: Color },
    Move { object: Object, row: u8, col: u8 },
    Background { to: Color },
    SignText { to: String },
}

impl Edit {
    /// The kind of edit, as its serialised `op` tag names it.
    pub fn op(&self) -> &'static str {
        match self {
            Edit::Add { .. } => "add",
            Edit::Remove { .. } => "remove",
            Edit::Recolor { .. } => "recolor",
            Edit::Move { .. } => "move",
            Edit::Background { .. } => "background",
            Edit::SignText { .. } => "sign_text",
        }
    }

    /// The scene after the edit. Everything the edit does not name is left as it was.
    pub fn apply(&self, scene: &Scene) -> Scene {
        let mut out = scene.clone();
        let find = |s: &Scene, o: &Object| {
            s.objects
                .iter()
                .position(|x| x == o)
                .expect("edited object is in the scene")
        };
        match self {
            Edit::Add { object } => out.objects.push(object.clone()),
            Edit::Remove { object } => {
                let i = find(&out, object);
                out.objects.remove(i);
            }
            Edit::Recolor { object, to } => {
                let i = find(&out, object);
                out.objects[i].color = *to;
            }
            Edit::Move { object, row, col } => {
                let i = find(&out, object);
                out.objects[i].row = *row;
                out.objects[i].col = *col;
            }
            Edit::Background { to } => out.background = *to,
            Edit::SignText { to } => {
                out.sign.as_mut().expect("sign edit needs a sign").word = to.clone()
            }
        }
        out.sort_objects();
        out
    }
}

/// Caption language.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    Zh,
}
