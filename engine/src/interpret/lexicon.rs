//! The words the interpreter knows, English and Chinese, and the lexer that turns a message into
//! [`Tok`]ens: the world's vocabulary (from [`super::scene`]) plus synonyms, approximate colour names,
//! positions, numbers, edit verbs and the small words that carry no meaning here. Everything else is an
//! [`Tok::Unknown`], which the reader reports back to the user.

use unicode_normalization::UnicodeNormalization;

use super::scene::{Color, Shape, Size};

/// Edit verbs, by what they can do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Verb {
    /// add, insert, 加: a new object.
    Add,
    /// draw, create, 画: a new picture, or a new object in an edit's grammar ("draw a star at the top").
    Draw,
    /// put, place: adds an indefinite object, moves a definite one.
    Put,
    Remove,
    /// make, turn, change, paint: a colour, a background or a sign's word.
    Change,
    Move,
}

/// One meaningful piece of a message.
#[derive(Clone, PartialEq, Debug)]
pub(super) enum Tok {
    Color(Color),
    /// A shape; `plural` for "circles", "stars".
    Shape {
        shape: Shape,
        plural: bool,
    },
    Size(Size),
    /// A position on the 3×3 layout: a vertical part (row 0 or 2), a horizontal part (column 0 or 2), or the
    /// middle; the reader merges neighbouring parts ("top" "left" → row 0, column 0).
    Pos(PosPart),
    Number(u8),
    /// "by", "x" or "×" between two numbers ("3 by 3").
    By,
    Background,
    Sign,
    /// says, reading, with the word, 写着: a sign's word follows.
    Says,
    /// A sign's word: quoted, in capitals, or after [`Tok::Says`] (upper-cased here).
    Word(String),
    /// grid, 网格; 九宫格 says its size.
    Grid(Option<u8>),
    Verb(Verb),
    /// "to", "into", and the Chinese result verbs 变成, 改成 ("change … into").
    To,
    /// 把: the object of a Chinese edit follows.
    Ba,
    /// the, this, that: a definite reference, to something already in the picture.
    The,
    /// a, an: something new.
    A,
    /// it, them, 它.
    It,
    /// "one" after an adjective ("the red one").
    One,
    /// "on", before a bare colour ("a red circle on white").
    On,
    /// Where one object is from the next: "a star above a circle".
    Relation(Relation),
    /// also, too, another, 再: more of the same picture.
    Also,
    /// "new picture", "start over", "instead": a picture of its own.
    New,
    /// A clause boundary: , ; . and with, ，、。.
    Sep,
    /// ?, or a question word.
    Question,
    /// A word or text the interpreter could not place, as typed.
    Unknown(String),
    /// A word the tables know that carries nothing here (articles, prepositions, politeness, "picture"):
    /// never a token of a message.
    Filler,
}

/// Where the object before the word is from the object after it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Relation {
    Above,
    Below,
    LeftOf,
    RightOf,
    NextTo,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum PosPart {
    /// Row 0 or 2.
    Vertical(u8),
    /// Column 0 or 2.
    Horizontal(u8),
    Middle,
    /// A whole cell (Chinese names cells in one word).
    Cell(u8, u8),
}

/// A token and what was typed for it.
#[derive(Clone, Debug)]
pub(super) struct Lexed {
    pub tok: Tok,
    pub typed: String,
}

use Tok as L;

/// English words and phrases (lower case; phrases are matched before their words).
const ENGLISH: &[(&str, Tok)] = &[
    // Colours.
    ("red", L::Color(Color::Red)),
    ("orange", L::Color(Color::Orange)),
    ("yellow", L::Color(Color::Yellow)),
    ("green", L::Color(Color::Green)),
    ("blue", L::Color(Color::Blue)),
    ("purple", L::Color(Color::Purple)),
    ("violet", L::Color(Color::Purple)),
    ("pink", L::Color(Color::Pink)),
    ("brown", L::Color(Color::Brown)),
    ("black", L::Color(Color::Black)),
    ("white", L::Color(Color::White)),
    ("gray", L::Color(Color::Gray)),
    ("grey", L::Color(Color::Gray)),
    // Shapes.
    (
        "circle",
        L::Shape {
            shape: Shape::Circle,
            plural: false,
        },
    ),
    (
        "dot",
        L::Shape {
            shape: Shape::Circle,
            plural: false,
        },
    ),
    (
        "disc",
        L::Shape {
            shape: Shape::Circle,
            plural: false,
        },
    ),
    (
        "disk",
        L::Shape {
            shape: Shape::Circle,
            plural: false,
        },
    ),
    (
        "ball",
        L::Shape {
            shape: Shape::Circle,
            plural: false,
        },
    ),
    (
        "square",
        L::Shape {
            shape: Shape::Square,
            plural: false,
        },
    ),
    (
        "box",
        L::Shape {
            shape: Shape::Square,
            plural: false,
        },
    ),
    (
        "block",
        L::Shape {
            shape: Shape::Square,
            plural: false,
        },
    ),
    (
        "triangle",
        L::Shape {
            shape: Shape::Triangle,
            plural: false,
        },
    ),
    (
        "star",
        L::Shape {
            shape: Shape::Star,
            plural: false,
        },
    ),
    (
        "heart",
        L::Shape {
            shape: Shape::Heart,
            plural: false,
        },
    ),
    (
        "hexagon",
        L::Shape {
            shape: Shape::Hexagon,
            plural: false,
        },
    ),
    (
        "diamond",
        L::Shape {
            shape: Shape::Diamond,
            plural: false,
        },
    ),
    (
        "rhombus",
        L::Shape {
            shape: Shape::Diamond,
            plural: false,
        },
    ),
    (
        "lozenge",
        L::Shape {
            shape: Shape::Diamond,
            plural: false,
        },
    ),
    (
        "cross",
        L::Shape {
            shape: Shape::Cross,
            plural: false,
        },
    ),
    (
        "plus sign",
        L::Shape {
            shape: Shape::Cross,
            plural: false,
        },
    ),
    (
        "ring",
        L::Shape {
            shape: Shape::Ring,
            plural: false,
        },
    ),
    (
        "donut",
        L::Shape {
            shape: Shape::Ring,
            plural: false,
        },
    ),
    (
        "doughnut",
        L::Shape {
            shape: Shape::Ring,
            plural: false,
        },
    ),
    (
        "hoop",
        L::Shape {
            shape: Shape::Ring,
            plural: false,
        },
    ),
    (
        "annulus",
        L::Shape {
            shape: Shape::Ring,
            plural: false,
        },
    ),
    // Sizes.
    ("small", L::Size(Size::Small)),
    ("little", L::Size(Size::Small)),
    ("tiny", L::Size(Size::Small)),
    ("mini", L::Size(Size::Small)),
    ("smaller", L::Size(Size::Small)),
    ("big", L::Size(Size::Big)),
    ("large", L::Size(Size::Big)),
    ("huge", L::Size(Size::Big)),
    ("giant", L::Size(Size::Big)),
    ("bigger", L::Size(Size::Big)),
    ("larger", L::Size(Size::Big)),
    ("enormous", L::Size(Size::Big)),
    ("massive", L::Size(Size::Big)),
    // Positions.
    ("top", L::Pos(PosPart::Vertical(0))),
    ("upper", L::Pos(PosPart::Vertical(0))),
    ("topmost", L::Pos(PosPart::Vertical(0))),
    ("bottom", L::Pos(PosPart::Vertical(2))),
    ("lower", L::Pos(PosPart::Vertical(2))),
    ("bottommost", L::Pos(PosPart::Vertical(2))),
    ("left", L::Pos(PosPart::Horizontal(0))),
    ("leftmost", L::Pos(PosPart::Horizontal(0))),
    ("right", L::Pos(PosPart::Horizontal(2))),
    ("rightmost", L::Pos(PosPart::Horizontal(2))),
    ("right in the middle", L::Pos(PosPart::Middle)),
    ("right in the center", L::Pos(PosPart::Middle)),
    ("center", L::Pos(PosPart::Middle)),
    ("centre", L::Pos(PosPart::Middle)),
    ("middle", L::Pos(PosPart::Middle)),
    ("central", L::Pos(PosPart::Middle)),
    ("centered", L::Pos(PosPart::Middle)),
    ("centred", L::Pos(PosPart::Middle)),
    ("mid", L::Pos(PosPart::Middle)),
    // Numbers.
    ("one", L::Number(1)),
    ("single", L::Number(1)),
    ("two", L::Number(2)),
    ("pair of", L::Number(2)),
    ("couple of", L::Number(2)),
    ("three", L::Number(3)),
    ("four", L::Number(4)),
    ("five", L::Number(5)),
    ("six", L::Number(6)),
    ("seven", L::Number(7)),
    ("eight", L::Number(8)),
    ("nine", L::Number(9)),
    ("by", L::By),
    ("times", L::By),
    // The scene's parts.
    ("background", L::Background),
    ("backdrop", L::Background),
    ("bg", L::Background),
    ("sign", L::Sign),
    ("signboard", L::Sign),
    ("board", L::Sign),
    ("placard", L::Sign),
    ("plaque", L::Sign),
    ("banner", L::Sign),
    ("with the word", L::Says),
    ("with the text", L::Says),
    ("with the words", L::Says),
    ("that says", L::Says),
    ("that reads", L::Says),
    ("says", L::Says),
    ("say", L::Says),
    ("saying", L::Says),
    ("reading", L::Says),
    ("reads", L::Says),
    ("read", L::Says),
    ("written", L::Says),
    ("labeled", L::Says),
    ("labelled", L::Says),
    ("spelling", L::Says),
    ("grid", L::Grid(None)),
    // Edits.
    ("add", L::Verb(Verb::Add)),
    ("insert", L::Verb(Verb::Add)),
    ("include", L::Verb(Verb::Add)),
    ("draw", L::Verb(Verb::Draw)),
    ("create", L::Verb(Verb::Draw)),
    ("generate", L::Verb(Verb::Draw)),
    ("render", L::Verb(Verb::Draw)),
    ("show", L::Verb(Verb::Draw)),
    ("put", L::Verb(Verb::Put)),
    ("place", L::Verb(Verb::Put)),
    ("remove", L::Verb(Verb::Remove)),
    ("delete", L::Verb(Verb::Remove)),
    ("erase", L::Verb(Verb::Remove)),
    ("take away", L::Verb(Verb::Remove)),
    ("take out", L::Verb(Verb::Remove)),
    ("get rid of", L::Verb(Verb::Remove)),
    ("drop", L::Verb(Verb::Remove)),
    ("eliminate", L::Verb(Verb::Remove)),
    ("make", L::Verb(Verb::Change)),
    ("turn", L::Verb(Verb::Change)),
    ("change", L::Verb(Verb::Change)),
    ("paint", L::Verb(Verb::Change)),
    ("color", L::Verb(Verb::Change)),
    ("colour", L::Verb(Verb::Change)),
    ("recolor", L::Verb(Verb::Change)),
    ("recolour", L::Verb(Verb::Change)),
    ("set", L::Verb(Verb::Change)),
    ("switch", L::Verb(Verb::Change)),
    ("move", L::Verb(Verb::Move)),
    ("shift", L::Verb(Verb::Move)),
    ("slide", L::Verb(Verb::Move)),
    ("drag", L::Verb(Verb::Move)),
    ("relocate", L::Verb(Verb::Move)),
    ("to", L::To),
    ("into", L::To),
    ("the", L::The),
    ("a", L::A),
    ("an", L::A),
    ("this", L::The),
    ("that", L::The),
    ("these", L::The),
    ("those", L::The),
    ("it", L::It),
    ("them", L::It),
    ("ones", L::One),
    ("on", L::On),
    ("above", L::Relation(Relation::Above)),
    ("over", L::Relation(Relation::Above)),
    ("on top of", L::Relation(Relation::Above)),
    ("below", L::Relation(Relation::Below)),
    ("under", L::Relation(Relation::Below)),
    ("underneath", L::Relation(Relation::Below)),
    ("beneath", L::Relation(Relation::Below)),
    ("to the left of", L::Relation(Relation::LeftOf)),
    ("left of", L::Relation(Relation::LeftOf)),
    ("to the right of", L::Relation(Relation::RightOf)),
    ("right of", L::Relation(Relation::RightOf)),
    ("next to", L::Relation(Relation::NextTo)),
    ("beside", L::Relation(Relation::NextTo)),
    ("also", L::Also),
    ("too", L::Also),
    ("another", L::Also),
    ("more", L::Also),
    ("as well", L::Also),
    ("new picture", L::New),
    ("new image", L::New),
    ("new one", L::New),
    ("new scene", L::New),
    ("start over", L::New),
    ("start again", L::New),
    ("from scratch", L::New),
    ("instead", L::New),
    ("something else", L::New),
    ("and", L::Sep),
    ("with", L::Sep),
    ("plus", L::Sep),
    ("what", L::Question),
    ("why", L::Question),
    ("how", L::Question),
    ("who", L::Question),
    ("where", L::Question),
    ("when", L::Question),
];

/// English words that carry nothing for the picture: never reported as unknown.
const ENGLISH_FILLER: &[&str] = &[
    "of",
    "in",
    "at",
    "onto",
    "is",
    "are",
    "be",
    "been",
    "was",
    "were",
    "there",
    "here",
    "has",
    "have",
    "having",
    "its",
    "their",
    "picture",
    "image",
    "photo",
    "photograph",
    "drawing",
    "painting",
    "illustration",
    "scene",
    "canvas",
    "frame",
    "please",
    "pls",
    "me",
    "i",
    "we",
    "you",
    "want",
    "wanted",
    "would",
    "like",
    "could",
    "can",
    "will",
    "should",
    "shall",
    "let",
    "lets",
    "let's",
    "give",
    "some",
    "very",
    "really",
    "just",
    "so",
    "now",
    "then",
    "same",
    "colored",
    "coloured",
    "shape",
    "shapes",
    "object",
    "objects",
    "thing",
    "things",
    "each",
    "all",
    "every",
    "both",
    "side",
    "corner",
    "corners",
    "edge",
    "part",
    "area",
    "hand",
    "which",
    "for",
    "from",
    "as",
    "well",
    "nice",
    "pretty",
    "simple",
    "plain",
    "solid",
    "bright",
    "dark",
    "light",
    "pale",
    "deep",
    "vivid",
    "empty",
    "only",
    "exactly",
    "word",
    "words",
    "text",
    "letters",
    "position",
    "spot",
    "place",
    "ok",
    "okay",
    "hey",
    "hi",
    "hello",
    "thanks",
    "thank",
    "up",
    "our",
    "my",
    "your",
    "do",
    "does",
    "did",
    "um",
    "oh",
    "sized",
    "size",
    "colors",
    "colours",
    "one's",
    "going",
    "try",
    "again",
    "near",
    "along",
    "against",
    "wearing",
    "holding",
    "sitting",
    "standing",
    "riding",
    "eating",
    "playing",
    "flying",
    "running",
    "looking",
    "made",
    "wide",
    "tall",
    "landscape",
    "portrait",
    "aspect",
    "ratio",
    "version",
    "this's",
    "whole",
];

/// Colour names outside the world's palette, each read as the palette colour it is nearest to (and said).
const NEAR_COLORS: &[(&str, Color)] = &[
    ("crimson", Color::Red),
    ("scarlet", Color::Red),
    ("maroon", Color::Brown),
    ("burgundy", Color::Red),
    ("navy", Color::Blue),
    ("azure", Color::Blue),
    ("cyan", Color::Blue),
    ("teal", Color::Green),
    ("turquoise", Color::Blue),
    ("lime", Color::Green),
    ("olive", Color::Green),
    ("gold", Color::Yellow),
    ("golden", Color::Yellow),
    ("silver", Color::Gray),
    ("lavender", Color::Purple),
    ("lilac", Color::Purple),
    ("magenta", Color::Pink),
    ("beige", Color::White),
    ("tan", Color::Brown),
    ("ivory", Color::White),
    ("cream", Color::White),
    ("charcoal", Color::Black),
    ("indigo", Color::Purple),
    ("amber", Color::Orange),
    ("coral", Color::Orange),
    ("salmon", Color::Pink),
    ("peach", Color::Orange),
    ("mint", Color::Green),
    ("khaki", Color::Brown),
];

/// Chinese words (matched longest first, so 中心 is the middle and not a heart).
const CHINESE: &[(&str, Tok)] = &[
    ("红色", L::Color(Color::Red)),
    ("红", L::Color(Color::Red)),
    ("橙色", L::Color(Color::Orange)),
    ("橘色", L::Color(Color::Orange)),
    ("橘黄色", L::Color(Color::Orange)),
    ("橙", L::Color(Color::Orange)),
    ("黄色", L::Color(Color::Yellow)),
    ("黄", L::Color(Color::Yellow)),
    ("绿色", L::Color(Color::Green)),
    ("绿", L::Color(Color::Green)),
    ("蓝色", L::Color(Color::Blue)),
    ("蓝", L::Color(Color::Blue)),
    ("紫色", L::Color(Color::Purple)),
    ("紫", L::Color(Color::Purple)),
    ("粉色", L::Color(Color::Pink)),
    ("粉红色", L::Color(Color::Pink)),
    ("粉红", L::Color(Color::Pink)),
    ("粉", L::Color(Color::Pink)),
    ("棕色", L::Color(Color::Brown)),
    ("褐色", L::Color(Color::Brown)),
    ("咖啡色", L::Color(Color::Brown)),
    ("棕", L::Color(Color::Brown)),
    ("黑色", L::Color(Color::Black)),
    ("黑", L::Color(Color::Black)),
    ("白色", L::Color(Color::White)),
    ("白", L::Color(Color::White)),
    ("灰色", L::Color(Color::Gray)),
    ("灰", L::Color(Color::Gray)),
    (
        "圆形",
        L::Shape {
            shape: Shape::Circle,
            plural: false,
        },
    ),
    (
        "圆圈",
        L::Shape {
            shape: Shape::Circle,
            plural: false,
        },
    ),
    (
        "圆点",
        L::Shape {
            shape: Shape::Circle,
            plural: false,
        },
    ),
    (
        "圆",
        L::Shape {
            shape: Shape::Circle,
            plural: false,
        },
    ),
    (
        "正方形",
        L::Shape {
            shape: Shape::Square,
            plural: false,
        },
    ),
    (
        "方形",
        L::Shape {
            shape: Shape::Square,
            plural: false,
        },
    ),
    (
        "方块",
        L::Shape {
            shape: Shape::Square,
            plural: false,
        },
    ),
    (
        "三角形",
        L::Shape {
            shape: Shape::Triangle,
            plural: false,
        },
    ),
    (
        "三角",
        L::Shape {
            shape: Shape::Triangle,
            plural: false,
        },
    ),
    (
        "星形",
        L::Shape {
            shape: Shape::Star,
            plural: false,
        },
    ),
    (
        "星星",
        L::Shape {
            shape: Shape::Star,
            plural: false,
        },
    ),
    (
        "五角星",
        L::Shape {
            shape: Shape::Star,
            plural: false,
        },
    ),
    (
        "星",
        L::Shape {
            shape: Shape::Star,
            plural: false,
        },
    ),
    (
        "心形",
        L::Shape {
            shape: Shape::Heart,
            plural: false,
        },
    ),
    (
        "爱心",
        L::Shape {
            shape: Shape::Heart,
            plural: false,
        },
    ),
    (
        "心",
        L::Shape {
            shape: Shape::Heart,
            plural: false,
        },
    ),
    (
        "六边形",
        L::Shape {
            shape: Shape::Hexagon,
            plural: false,
        },
    ),
    (
        "六角形",
        L::Shape {
            shape: Shape::Hexagon,
            plural: false,
        },
    ),
    (
        "菱形",
        L::Shape {
            shape: Shape::Diamond,
            plural: false,
        },
    ),
    (
        "十字形",
        L::Shape {
            shape: Shape::Cross,
            plural: false,
        },
    ),
    (
        "十字",
        L::Shape {
            shape: Shape::Cross,
            plural: false,
        },
    ),
    (
        "加号",
        L::Shape {
            shape: Shape::Cross,
            plural: false,
        },
    ),
    (
        "圆环",
        L::Shape {
            shape: Shape::Ring,
            plural: false,
        },
    ),
    (
        "环形",
        L::Shape {
            shape: Shape::Ring,
            plural: false,
        },
    ),
    (
        "圆环形",
        L::Shape {
            shape: Shape::Ring,
            plural: false,
        },
    ),
    (
        "环",
        L::Shape {
            shape: Shape::Ring,
            plural: false,
        },
    ),
    ("大", L::Size(Size::Big)),
    ("巨大", L::Size(Size::Big)),
    ("小", L::Size(Size::Small)),
    ("微小", L::Size(Size::Small)),
    ("左上角", L::Pos(PosPart::Cell(0, 0))),
    ("左上方", L::Pos(PosPart::Cell(0, 0))),
    ("左上", L::Pos(PosPart::Cell(0, 0))),
    ("右上角", L::Pos(PosPart::Cell(0, 2))),
    ("右上方", L::Pos(PosPart::Cell(0, 2))),
    ("右上", L::Pos(PosPart::Cell(0, 2))),
    ("左下角", L::Pos(PosPart::Cell(2, 0))),
    ("左下方", L::Pos(PosPart::Cell(2, 0))),
    ("左下", L::Pos(PosPart::Cell(2, 0))),
    ("右下角", L::Pos(PosPart::Cell(2, 2))),
    ("右下方", L::Pos(PosPart::Cell(2, 2))),
    ("右下", L::Pos(PosPart::Cell(2, 2))),
    ("上方中间", L::Pos(PosPart::Cell(0, 1))),
    ("正上方", L::Pos(PosPart::Cell(0, 1))),
    ("上方", L::Pos(PosPart::Cell(0, 1))),
    ("上面", L::Pos(PosPart::Cell(0, 1))),
    ("上边", L::Pos(PosPart::Cell(0, 1))),
    ("顶部", L::Pos(PosPart::Cell(0, 1))),
    ("上部", L::Pos(PosPart::Cell(0, 1))),
    ("下方中间", L::Pos(PosPart::Cell(2, 1))),
    ("正下方", L::Pos(PosPart::Cell(2, 1))),
    ("下方", L::Pos(PosPart::Cell(2, 1))),
    ("下面", L::Pos(PosPart::Cell(2, 1))),
    ("下边", L::Pos(PosPart::Cell(2, 1))),
    ("底部", L::Pos(PosPart::Cell(2, 1))),
    ("下部", L::Pos(PosPart::Cell(2, 1))),
    ("左边", L::Pos(PosPart::Cell(1, 0))),
    ("左侧", L::Pos(PosPart::Cell(1, 0))),
    ("左面", L::Pos(PosPart::Cell(1, 0))),
    ("左方", L::Pos(PosPart::Cell(1, 0))),
    ("右边", L::Pos(PosPart::Cell(1, 2))),
    ("右侧", L::Pos(PosPart::Cell(1, 2))),
    ("右面", L::Pos(PosPart::Cell(1, 2))),
    ("右方", L::Pos(PosPart::Cell(1, 2))),
    ("正中间", L::Pos(PosPart::Cell(1, 1))),
    ("中间", L::Pos(PosPart::Cell(1, 1))),
    ("中央", L::Pos(PosPart::Cell(1, 1))),
    ("中心", L::Pos(PosPart::Cell(1, 1))),
    ("正中", L::Pos(PosPart::Cell(1, 1))),
    ("居中", L::Pos(PosPart::Cell(1, 1))),
    ("一", L::Number(1)),
    ("二", L::Number(2)),
    ("两", L::Number(2)),
    ("三", L::Number(3)),
    ("四", L::Number(4)),
    ("五", L::Number(5)),
    ("六", L::Number(6)),
    ("七", L::Number(7)),
    ("八", L::Number(8)),
    ("九", L::Number(9)),
    ("乘", L::By),
    ("背景", L::Background),
    ("底色", L::Background),
    ("底", L::Background),
    ("牌子", L::Sign),
    ("招牌", L::Sign),
    ("标牌", L::Sign),
    ("指示牌", L::Sign),
    ("路牌", L::Sign),
    ("木牌", L::Sign),
    ("牌", L::Sign),
    ("上面写着", L::Says),
    ("写着", L::Says),
    ("写有", L::Says),
    ("印着", L::Says),
    ("写", L::Says),
    ("九宫格", L::Grid(Some(3))),
    ("网格", L::Grid(None)),
    ("格子", L::Grid(None)),
    ("方格", L::Grid(None)),
    ("添加", L::Verb(Verb::Add)),
    ("加上", L::Verb(Verb::Add)),
    ("添上", L::Verb(Verb::Add)),
    ("增加", L::Verb(Verb::Add)),
    ("加", L::Verb(Verb::Add)),
    ("画", L::Verb(Verb::Draw)),
    ("生成", L::Verb(Verb::Draw)),
    ("放", L::Verb(Verb::Put)),
    ("去掉", L::Verb(Verb::Remove)),
    ("删除", L::Verb(Verb::Remove)),
    ("删掉", L::Verb(Verb::Remove)),
    ("移除", L::Verb(Verb::Remove)),
    ("拿掉", L::Verb(Verb::Remove)),
    ("去除", L::Verb(Verb::Remove)),
    ("擦掉", L::Verb(Verb::Remove)),
    ("不要", L::Verb(Verb::Remove)),
    ("变成", L::To),
    ("改成", L::To),
    ("涂成", L::To),
    ("换成", L::To),
    ("染成", L::To),
    ("改为", L::To),
    ("变为", L::To),
    ("换为", L::To),
    ("移到", L::Verb(Verb::Move)),
    ("挪到", L::Verb(Verb::Move)),
    ("移动到", L::Verb(Verb::Move)),
    ("放到", L::Verb(Verb::Move)),
    ("搬到", L::Verb(Verb::Move)),
    ("把", L::Ba),
    ("将", L::Ba),
    ("它", L::It),
    ("这个", L::The),
    ("那个", L::The),
    ("再", L::Also),
    ("还要", L::Also),
    ("也", L::Also),
    ("另一个", L::Also),
    ("重新", L::New),
    ("新的", L::New),
    ("换一张", L::New),
    ("和", L::Sep),
    ("与", L::Sep),
    ("跟", L::Sep),
    ("还有", L::Sep),
    ("以及", L::Sep),
    ("什么", L::Question),
    ("为什么", L::Question),
    ("怎么", L::Question),
    ("吗", L::Question),
    // Carry nothing here.
    ("的", L::Filler),
    ("有", L::Filler),
    ("在", L::Filler),
    ("上", L::Filler),
    ("是", L::Filler),
    ("个", L::Filler),
    ("只", L::Filler),
    ("颗", L::Filler),
    ("块", L::Filler),
    ("枚", L::Filler),
    ("张", L::Filler),
    ("幅", L::Filler),
    ("请", L::Filler),
    ("图", L::Filler),
    ("图片", L::Filler),
    ("画面", L::Filler),
    ("里", L::Filler),
    ("中", L::Filler),
    ("着", L::Filler),
    ("了", L::Filler),
    ("吧", L::Filler),
    ("呢", L::Filler),
    ("一下", L::Filler),
    ("帮我", L::Filler),
    ("给我", L::Filler),
    ("我", L::Filler),
    ("想要", L::Filler),
    ("要", L::Filler),
    ("颜色", L::Filler),
    ("色", L::Filler),
    ("字", L::Filler),
    ("文字", L::Filler),
    ("单词", L::Filler),
    ("按", L::Filler),
    ("阅读顺序", L::Filler),
    ("顺序", L::Filler),
    ("为", L::Filler),
    ("空白", L::Filler),
    ("纯", L::Filler),
    ("形状", L::Filler),
    ("角", L::Filler),
    ("边", L::Filler),
    ("现在", L::Filler),
    ("然后", L::Filler),
    ("一些", L::Filler),
    ("行", L::Filler),
    ("列", L::Filler),
];

/// The palette colour nearest `rgb`, by the "redmean" weighted RGB distance (close to perceptual for the
/// saturated colours the world draws).
pub(super) fn nearest_color(rgb: [u8; 3]) -> Color {
    let distance = |c: Color| {
        let q = c.rgb();
        let r_mean = (rgb[0] as f64 + q[0] as f64) / 2.0;
        let d = |i: usize| rgb[i] as f64 - q[i] as f64;
        (2.0 + r_mean / 256.0) * d(0).powi(2)
            + 4.0 * d(1).powi(2)
            + (2.0 + (255.0 - r_mean) / 256.0) * d(2).powi(2)
    };
    Color::ALL
        .into_iter()
        .min_by(|a, b| distance(*a).total_cmp(&distance(*b)))
        .expect("the palette is not empty")
}

/// `#RRGGBB` or `#RGB` as RGB, or `None` when it is not a colour.
pub(super) fn hex_rgb(text: &str) -> Option<[u8; 3]> {
    let digits = text.strip_prefix('#')?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let channel = |s: &str| u8::from_str_radix(s, 16).ok();
    match digits.len() {
        6 => Some([
            channel(&digits[0..2])?,
            channel(&digits[2..4])?,
            channel(&digits[4..6])?,
        ]),
        3 => {
            let d: Vec<u8> = digits
                .chars()
                .map(|c| channel(&format!("{c}{c}")))
                .collect::<Option<_>>()?;
            Some([d[0], d[1], d[2]])
        }
        _ => None,
    }
}

/// What the lexer found besides tokens: things worth telling the user.
#[derive(Default, Debug)]
pub(super) struct LexNotes {
    /// `(typed, read as)` for colours outside the palette.
    pub approximated: Vec<(String, Color)>,
    /// `(typed, read as)` for misspelt words.
    pub corrected: Vec<(String, String)>,
    /// Hex codes that are not colours, as typed.
    pub bad_hex: Vec<String>,
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF)
}

/// A table entry as a token of the message: `None` for a filler.
fn token(entry: &Tok) -> Option<Tok> {
    (*entry != Tok::Filler).then(|| entry.clone())
}

/// The lexer's state over one message.
struct Lexer {
    out: Vec<Lexed>,
    notes: LexNotes,
    /// The next word is a sign's word (after "says", "写着").
    word_next: bool,
}

impl Lexer {
    fn push(&mut self, tok: Tok, typed: &str) {
        // "says: HELLO" still names the word.
        self.word_next = tok == Tok::Says || (self.word_next && tok == Tok::Sep);
        self.out.push(Lexed {
            tok,
            typed: typed.to_string(),
        });
    }

    /// One run of English words (split on spaces and hyphens), matching phrases before words.
    fn english(&mut self, words: &[&str]) {
        let mut i = 0;
        while i < words.len() {
            let raw = words[i];
            // A sign's word: after "says", or typed in capitals (two letters or more, not "I", "A").
            let letters = raw.chars().all(|c| c.is_ascii_alphabetic());
            let capitals = letters && raw.len() >= 2 && raw.chars().all(|c| c.is_ascii_uppercase());
            if letters && (self.word_next || capitals && !is_english_phrase_start(words, i)) {
                self.push(Tok::Word(raw.to_ascii_uppercase()), raw);
                i += 1;
                continue;
            }
            if let Some((entry, n)) = english_phrase(words, i) {
                let typed = words[i..i + n].join(" ");
                match token(entry) {
                    Some(tok) => self.push(tok, &typed),
                    None => self.word_next = false,
                }
                i += n;
                continue;
            }
            self.word(raw);
            i += 1;
        }
    }

    /// One English word no phrase starts with.
    fn word(&mut self, raw: &str) {
        let lower = raw.to_lowercase();
        if lower.starts_with('#') {
            match hex_rgb(&lower) {
                Some(rgb) => {
                    let c = nearest_color(rgb);
                    self.notes.approximated.push((raw.to_string(), c));
                    self.push(Tok::Color(c), raw);
                }
                None => {
                    self.notes.bad_hex.push(raw.to_string());
                    self.push(Tok::Unknown(raw.to_string()), raw);
                }
            }
            return;
        }
        if let Ok(n) = lower.parse::<u32>() {
            self.push(Tok::Number(n.min(255) as u8), raw);
            return;
        }
        // "3x3", "4×4"
        if let Some((a, b)) = lower.split_once(['x', '×', '*'])
            && let (Ok(a), Ok(b)) = (a.parse::<u8>(), b.parse::<u8>())
        {
            self.push(Tok::Number(a), raw);
            self.push(Tok::By, raw);
            self.push(Tok::Number(b), raw);
            return;
        }
        if lower == "x" || lower == "×" {
            self.push(Tok::By, raw);
            return;
        }
        if let Some(tok) = self.known(&lower, raw) {
            self.push(tok, raw);
            return;
        }
        if ENGLISH_FILLER.contains(&lower.as_str()) {
            self.word_next = false;
            return;
        }
        // A misspelling of a known word ("trangle", "bule"), when one is clearly meant.
        if let Some(fixed) = correction(&lower) {
            if let Some(tok) = self.known(fixed, raw) {
                self.notes
                    .corrected
                    .push((raw.to_string(), fixed.to_string()));
                self.push(tok, raw);
            }
            return;
        }
        self.push(Tok::Unknown(raw.to_string()), raw);
    }

    /// A single known word, its plural, or an approximate colour.
    fn known(&mut self, lower: &str, raw: &str) -> Option<Tok> {
        if let Some(entry) = single_word(lower) {
            return token(entry);
        }
        for suffix in ["es", "s"] {
            if let Some(stem) = lower.strip_suffix(suffix)
                && let Some(&L::Shape { shape, .. }) = single_word(stem)
            {
                return Some(Tok::Shape {
                    shape,
                    plural: true,
                });
            }
        }
        let (_, c) = *NEAR_COLORS.iter().find(|(name, _)| *name == lower)?;
        self.notes.approximated.push((raw.to_string(), c));
        Some(Tok::Color(c))
    }

    /// A run of Chinese text, longest match first; what matches nothing is one unknown run.
    fn chinese(&mut self, text: &str) {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut unknown_from: Option<usize> = None;
        let mut i = 0;
        while i < chars.len() {
            let at = chars[i].0;
            let found = CHINESE
                .iter()
                .filter(|(w, _)| text[at..].starts_with(w))
                .max_by_key(|(w, _)| w.len());
            match found {
                Some((w, entry)) => {
                    if let Some(from) = unknown_from.take() {
                        self.push(Tok::Unknown(text[from..at].to_string()), &text[from..at]);
                    }
                    if let Some(tok) = token(entry) {
                        self.push(tok, w);
                    }
                    i += w.chars().count();
                }
                None => {
                    unknown_from.get_or_insert(at);
                    i += 1;
                }
            }
        }
        if let Some(from) = unknown_from {
            self.push(Tok::Unknown(text[from..].to_string()), &text[from..]);
        }
    }
}

fn single_word(lower: &str) -> Option<&'static Tok> {
    ENGLISH.iter().find(|(w, _)| *w == lower).map(|(_, t)| t)
}

/// Whether a known phrase of two words or more starts at `words[i]` (so "say" in "with the word" is not a
/// sign's word).
fn is_english_phrase_start(words: &[&str], i: usize) -> bool {
    english_phrase(words, i).is_some_and(|(_, n)| n > 1)
}

/// The longest known phrase (or word) starting at `words[i]`, and how many words it spans.
fn english_phrase(words: &[&str], i: usize) -> Option<(&'static Tok, usize)> {
    ENGLISH
        .iter()
        .filter_map(|(phrase, entry)| {
            let parts: Vec<&str> = phrase.split(' ').collect();
            let fits = words.len() >= i + parts.len()
                && parts
                    .iter()
                    .zip(&words[i..])
                    .all(|(p, w)| w.eq_ignore_ascii_case(p));
            fits.then_some((entry, parts.len()))
        })
        .max_by_key(|(_, n)| *n)
}

/// The content word `lower` misspells, if exactly one is close enough: one edit (a letter added, dropped,
/// changed or two swapped) for words of four letters or more, two for words of eight or more.
fn correction(lower: &str) -> Option<&'static str> {
    if lower.chars().count() < 4 || !lower.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let candidates = ENGLISH
        .iter()
        .filter(|(w, entry)| {
            !w.contains(' ')
                && w.len() >= 4
                && match entry {
                    L::Color(_)
                    | L::Shape { .. }
                    | L::Size(_)
                    | L::Pos(_)
                    | L::Background
                    | L::Sign
                    | L::Grid(_) => true,
                    // Short verbs are one letter from common nouns (make, cake).
                    L::Verb(_) => w.len() >= 6,
                    _ => false,
                }
        })
        .map(|(w, _)| *w)
        .chain(NEAR_COLORS.iter().map(|(w, _)| *w))
        .chain(ENGLISH_FILLER.iter().copied().filter(|w| w.len() >= 6));
    let limit = if lower.len() >= 8 { 2 } else { 1 };
    let mut best: Option<(&str, usize)> = None;
    let mut tied = false;
    for w in candidates {
        let d = strsim::osa_distance(lower, w);
        if d > limit {
            continue;
        }
        match best {
            Some((_, bd)) if d > bd => {}
            // Two words of the same meaning ("colored", "coloured") are no tie.
            Some((bw, bd)) if d == bd => tied |= meaning(bw) != meaning(w),
            _ => {
                best = Some((w, d));
                tied = false;
            }
        }
    }
    best.filter(|_| !tied).map(|(w, _)| w)
}

/// What a correction candidate means: its entry, its palette colour, or nothing (a filler).
fn meaning(word: &str) -> Option<Tok> {
    single_word(word).cloned().or_else(|| {
        NEAR_COLORS
            .iter()
            .find(|(w, _)| *w == word)
            .map(|(_, c)| L::Color(*c))
    })
}

/// The tokens of `text`, and what is worth telling about how they were read.
pub(super) fn lex(text: &str) -> (Vec<Lexed>, LexNotes) {
    let text: String = text.nfkc().collect();
    let mut lexer = Lexer {
        out: Vec::new(),
        notes: LexNotes::default(),
        word_next: false,
    };
    let mut words: Vec<&str> = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    let flush = |lexer: &mut Lexer, words: &mut Vec<&str>| {
        lexer.english(words);
        words.clear();
    };
    while i < chars.len() {
        let (at, c) = chars[i];
        if c.is_ascii_alphanumeric() || c == '#' {
            // A word: letters, digits, `#`, and apostrophes inside it ("let's").
            let mut end = i;
            while end < chars.len() {
                let d = chars[end].1;
                let inside = d == '\''
                    && end > i
                    && chars
                        .get(end + 1)
                        .is_some_and(|(_, n)| n.is_ascii_alphanumeric());
                if !(d.is_ascii_alphanumeric() || d == '#' || inside) {
                    break;
                }
                end += 1;
            }
            let to = chars.get(end).map_or(text.len(), |(e, _)| *e);
            words.push(&text[at..to]);
            i = end;
            continue;
        }
        if let Some(close) = closing_quote(c)
            && let Some(len) = text[at + c.len_utf8()..].find(close)
        {
            // A quoted word: a sign's text, whatever it says.
            flush(&mut lexer, &mut words);
            let inner = &text[at + c.len_utf8()..at + c.len_utf8() + len];
            let word: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
            if !word.is_empty() {
                lexer.push(Tok::Word(word.to_uppercase()), inner);
            }
            let skip = text[at..at + c.len_utf8() + len + close.len_utf8()]
                .chars()
                .count();
            i += skip;
            continue;
        }
        if is_cjk(c) {
            flush(&mut lexer, &mut words);
            let end = chars[i..]
                .iter()
                .find(|(_, c)| !is_cjk(*c))
                .map_or(text.len(), |(e, _)| *e);
            lexer.chinese(&text[at..end]);
            i += text[at..end].chars().count();
            continue;
        }
        match c {
            ',' | ';' | '.' | ':' | '!' | '，' | '、' | '；' | '。' | '：' | '！' | '\n' => {
                flush(&mut lexer, &mut words);
                lexer.push(Tok::Sep, &c.to_string());
            }
            '?' | '？' => {
                flush(&mut lexer, &mut words);
                lexer.push(Tok::Question, &c.to_string());
            }
            '×' | '*' => {
                flush(&mut lexer, &mut words);
                lexer.push(Tok::By, &c.to_string());
            }
            '&' | '+' => {
                flush(&mut lexer, &mut words);
                lexer.push(Tok::Sep, &c.to_string());
            }
            _ => {}
        }
        i += 1;
    }
    flush(&mut lexer, &mut words);
    (lexer.out, lexer.notes)
}

/// The quote that closes one opened with `open`.
fn closing_quote(open: char) -> Option<char> {
    match open {
        '"' => Some('"'),
        '“' => Some('”'),
        '「' => Some('」'),
        '『' => Some('』'),
        '‘' => Some('’'),
        '\'' => Some('\''),
        _ => None,
    }
}
