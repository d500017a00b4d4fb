//! "Interpreted as": the message read back in the world's own words before the model sees it. For the
//! default model's world ([`scene`], "Shapes & Signs") a message in English or Chinese, and the picture it
//! follows, become:
//! - [`Interpretation::canonical`]: the message as the world's caption grammar ([`caption`]) says it, in
//!   English, with everything the message left open filled in (sizes, places, a background);
//! - [`Interpretation::kind`]: a new picture, or an edit of the previous one, and which edit;
//! - [`Interpretation::unknown`]: what it could not place ("cat", "hat"), with a kind [`Interpretation::note`]
//!   that says what the model can draw instead.
//!
//! The interpreter never fails: a message it cannot read at all is a new picture with everything unknown.
//! Models with their own text understanding take the text as typed ([`Interpretation::as_typed`]).

pub mod caption;
pub mod font;
mod lexicon;
mod read;
pub mod scene;
pub mod sign;

use serde::{Deserialize, Serialize};

use caption::{Canonical, describe, instruct, instruct_naming};
use lexicon::{LexNotes, Tok, lex};
use read::{Asked, Description, Named, Tokens, Wanted};
use scene::{
    Color, Edit, FREE_LAYOUT, Lang, Layout, MAX_WORD_LEN, Object, Scene, Shape, Sign, Size, WORDS,
};

/// Messages longer than this are refused before they are read (the front doors check it; the interpreter
/// itself reads only this much).
pub const MAX_MESSAGE_BYTES: usize = 2048;

/// Whether a message asks for a picture of its own or changes the previous one.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    New,
    Edit,
}

/// What the conversation shows before the message.
#[derive(Clone, Copy, Debug)]
pub enum Before<'a> {
    /// No picture yet: every message is a new picture.
    Nothing,
    /// A picture, and the scene it shows when that is known (what an earlier interpretation asked for).
    Picture(Option<&'a Scene>),
}

/// An object an edit names, as far as the message (and the picture) say.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Target {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<Shape>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<Color>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub col: Option<u8>,
}

impl From<&Object> for Target {
    fn from(o: &Object) -> Self {
        Target {
            shape: Some(o.shape),
            color: Some(o.color),
            size: Some(o.size),
            row: Some(o.row),
            col: Some(o.col),
        }
    }
}

/// The edit a message asks for: the world's [`Edit`], with the edited object as far as it is known.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum EditReading {
    Add { object: Object },
    Remove { object: Target },
    Recolor { object: Target, to: Color },
    Move { object: Target, row: u8, col: u8 },
    Background { to: Color },
    SignText { to: String },
}

impl From<&Edit> for EditReading {
    fn from(e: &Edit) -> Self {
        match e {
            Edit::Add { object } => EditReading::Add {
                object: object.clone(),
            },
            Edit::Remove { object } => EditReading::Remove {
                object: object.into(),
            },
            Edit::Recolor { object, to } => EditReading::Recolor {
                object: object.into(),
                to: *to,
            },
            Edit::Move { object, row, col } => EditReading::Move {
                object: object.into(),
                row: *row,
                col: *col,
            },
            Edit::Background { to } => EditReading::Background { to: *to },
            Edit::SignText { to } => EditReading::SignText { to: to.clone() },
        }
    }
}

/// A message, read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Interpretation {
    /// What the model is prompted with: the world's caption grammar, in English; the message as typed when
    /// nothing in it could be read.
    pub canonical: String,
    pub kind: Kind,
    /// For an edit: which operation, on which object.
    pub edit: Option<EditReading>,
    /// Words and phrases it could not place, as typed.
    pub unknown: Vec<String>,
    /// Whatever it filled in or read loosely ("#3366ff read as blue", "no background given: white").
    pub notes: Vec<String>,
    /// The kind note, when something could not be read: what was not understood, and what the model can draw.
    pub note: Option<String>,
    /// The picture as it should look afterwards, when that is known.
    pub scene: Option<Scene>,
    /// False when nothing in the message could be read.
    pub understood: bool,
}

impl Interpretation {
    /// The text as typed, for model families that read it themselves.
    pub fn as_typed(text: &str, kind: Kind) -> Self {
        Interpretation {
            canonical: text.to_string(),
            kind,
            edit: None,
            unknown: vec![],
            notes: vec![],
            note: None,
            scene: None,
            understood: true,
        }
    }
}

/// What the default model can draw, in one sentence (for the kind note and the app).
pub fn what_it_draws() -> String {
    let shapes: Vec<String> = Shape::ALL.iter().map(|s| format!("{}s", s.en())).collect();
    let colors: Vec<&str> = Color::ALL.iter().map(|c| c.en()).collect();
    format!(
        "It draws {}, big or small, in {}, at nine places (top left to bottom right) on a background of one of \
         those colours; signs with a word of up to {MAX_WORD_LEN} letters; and grids of 2×2 to 4×4 shapes.",
        join_or(&shapes, "and"),
        join_or(
            &colors.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "or"
        )
    )
}

fn join_or(items: &[String], word: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {word} {last}", init.join(", ")),
    }
}

/// Words the world has no way to draw yet, each with what to say about it.
const NOT_YET: &[(&str, &str)] = &[
    (
        "transparent",
        "this model cannot draw a transparent background yet",
    ),
    ("wide", "this model draws square pictures only"),
    ("tall", "this model draws square pictures only"),
    ("landscape", "this model draws square pictures only"),
    ("portrait", "this model draws square pictures only"),
    ("横向", "this model draws square pictures only"),
    ("竖向", "this model draws square pictures only"),
];

/// What every front door does with a message before a generation: refuses it when empty, over-long or
/// refused by `policy` as typed, reads it for `config`'s model, and refuses it when the policy refuses the
/// text as interpreted.
pub fn checked(
    config: &crate::ModelConfig,
    policy: &crate::Policy,
    text: &str,
    before: Before,
    force: Option<Kind>,
) -> crate::Result<Interpretation> {
    if text.trim().is_empty() {
        return Err(crate::TesseraError::EmptyPrompt);
    }
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(crate::TesseraError::PromptTooLong {
            bytes: text.len(),
            limit: MAX_MESSAGE_BYTES,
        });
    }
    policy.check(text)?;
    let reading = for_model(config, text, before, force);
    policy.check(&reading.canonical)?;
    Ok(reading)
}

/// How `config`'s model is prompted with `text`: interpreted into its world, or as typed.
pub fn for_model(
    config: &crate::ModelConfig,
    text: &str,
    before: Before,
    force: Option<Kind>,
) -> Interpretation {
    match config.interpreter {
        crate::config::Interpreter::Shapes => interpret(text, before, force),
        crate::config::Interpreter::AsTyped => {
            Interpretation::as_typed(text, force.unwrap_or(Kind::New))
        }
    }
}

/// Reads `text` after `before`. With `force`, the kind is the caller's (the user overrode the decision): a
/// forced `New` ignores the previous picture, a forced `Edit` reads the message as a change when it can.
pub fn interpret(text: &str, before: Before, force: Option<Kind>) -> Interpretation {
    let mut end = text.len().min(MAX_MESSAGE_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = text[..end].trim();
    let (lexed, lex_notes) = lex(text);
    let tokens = Tokens::new(&lexed);
    let mut notes = vec![];
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).collect();
    for (word, why) in NOT_YET {
        // English as whole words ("tall", not "totally"); Chinese, which has no spaces, anywhere.
        let said = if word.is_ascii() {
            words.contains(word)
        } else {
            lower.contains(word)
        };
        if said && !notes.iter().any(|n: &String| n == why) {
            notes.push(why.to_string());
        }
    }
    let picture = match before {
        Before::Picture(scene) if force != Some(Kind::New) => Some(scene),
        _ => None,
    };
    let wants_new = tokens.has_tok(&Tok::New);
    let mut reading = None;
    if let Some(previous) = picture
        && (!wants_new || force == Some(Kind::Edit))
    {
        let mut t = tokens.clone();
        if let Some(asked) = read::asked(&lexed, &mut t) {
            reading = Some(edit_reading(asked, previous, &mut notes, text, &lexed, &t));
        } else if force == Some(Kind::Edit) {
            notes.push(
                "this does not read as a change to the picture, so it is sent as typed".to_string(),
            );
            reading = Some(Interpretation::as_typed(text, Kind::Edit));
        }
    }
    let mut reading = reading.unwrap_or_else(|| {
        let mut t = tokens.clone();
        let d = read::describe(&lexed, &mut t);
        new_reading(d, &mut notes, text, &lexed, &t)
    });
    // Every reading's notes are collected in `notes` (the readers add to it; their own list stays empty).
    explain(&lex_notes, &mut notes);
    reading.notes = notes;
    if !reading.unknown.is_empty() || !reading.understood {
        reading.note = Some(kind_note(&reading, tokens.has_tok(&Tok::Question)));
    }
    reading
}

fn explain(lex_notes: &LexNotes, notes: &mut Vec<String>) {
    for (typed, c) in &lex_notes.approximated {
        notes.push(format!(
            "{typed} read as {}, the nearest colour this model draws",
            c.en()
        ));
    }
    for (typed, fixed) in &lex_notes.corrected {
        notes.push(format!("{typed} read as {fixed}"));
    }
    for typed in &lex_notes.bad_hex {
        notes.push(format!(
            "{typed} is not a colour: write one as #RRGGBB (six hex digits), e.g. #3366FF"
        ));
    }
}

/// "I can't draw cat or hat: …", and what it can.
fn kind_note(r: &Interpretation, question: bool) -> String {
    let head = if !r.understood && question && r.unknown.is_empty() {
        "I can only draw pictures, not answer questions.".to_string()
    } else if !r.understood && r.unknown.is_empty() {
        "I could not read a picture in that.".to_string()
    } else if r.unknown.is_empty() {
        "I could not read all of that.".to_string()
    } else {
        let quoted: Vec<String> = r.unknown.iter().map(|w| format!("“{w}”")).collect();
        let tail = if r.understood {
            " I will draw the rest as shown."
        } else {
            ""
        };
        format!(
            "This model does not know {} yet.{tail}",
            join_or(&quoted, "or")
        )
    };
    format!("{head} {}", what_it_draws())
}

/// Unknown tokens no reading used, as typed, each once.
fn unknown_words(lexed: &[lexicon::Lexed], t: &Tokens) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for (i, l) in lexed.iter().enumerate() {
        if let Tok::Unknown(w) = &l.tok
            && !t.used[i]
            && !out.contains(w)
        {
            out.push(w.clone());
        }
    }
    out
}

/// The cells a scene leaves free for objects, in the order new objects are placed: the middle first, then
/// the middle of each side, then the corners.
const PLACES: [(u8, u8); 9] = [
    (1, 1),
    (1, 0),
    (1, 2),
    (0, 1),
    (2, 1),
    (0, 0),
    (0, 2),
    (2, 0),
    (2, 2),
];

/// Where `n` objects without a place go when they are all there is: a row for two or three, the corners
/// for four.
fn layout_for(n: usize) -> Vec<(u8, u8)> {
    let mut order: Vec<(u8, u8)> = match n {
        1 => vec![(1, 1)],
        2 => vec![(1, 0), (1, 2)],
        3 => vec![(1, 0), (1, 1), (1, 2)],
        4 => vec![(0, 0), (0, 2), (2, 0), (2, 2)],
        5 => vec![(0, 0), (0, 2), (1, 1), (2, 0), (2, 2)],
        _ => vec![],
    };
    let rest: Vec<(u8, u8)> = PLACES.into_iter().filter(|p| !order.contains(p)).collect();
    order.extend(rest);
    order
}

/// The first colour of a fixed order that stands out against `against`.
fn contrasting(against: &[Color], order: &[Color]) -> Color {
    order
        .iter()
        .copied()
        .find(|c| against.iter().all(|a| c.contrasts(*a)))
        .unwrap_or(order[0])
}

const OBJECT_COLORS: [Color; 7] = [
    Color::Red,
    Color::Blue,
    Color::Green,
    Color::Yellow,
    Color::Purple,
    Color::Orange,
    Color::Black,
];
const BACKGROUNDS: [Color; 4] = [Color::White, Color::Black, Color::Gray, Color::Blue];
const BOARDS: [Color; 5] = [
    Color::Yellow,
    Color::White,
    Color::Red,
    Color::Blue,
    Color::Black,
];

/// Notes about a sign's word: letters only, short enough, one the model has learned.
fn check_word(word: &str, notes: &mut Vec<String>) {
    if !word.chars().all(|c| c.is_ascii_uppercase()) {
        notes.push(format!(
            "signs are written in the letters A to Z; “{word}” may not come out"
        ));
    } else if word.len() > MAX_WORD_LEN {
        notes.push(format!(
            "a sign holds at most {MAX_WORD_LEN} letters; “{word}” has {}",
            word.len()
        ));
    } else if !WORDS.contains(&word) {
        notes.push(format!(
            "“{word}” is not one of the {} words this model has learned to spell; it may come out misspelt",
            WORDS.len()
        ));
    }
}

/// A new picture from what the message describes; what it leaves open is filled in and said.
fn new_reading(
    d: Description,
    notes: &mut Vec<String>,
    text: &str,
    lexed: &[lexicon::Lexed],
    t: &Tokens,
) -> Interpretation {
    let unknown = unknown_words(lexed, t);
    let scene = compose(d, notes);
    match scene {
        Some(scene) => Interpretation {
            canonical: describe(&mut Canonical, &scene, Lang::En),
            kind: Kind::New,
            edit: None,
            unknown,
            notes: vec![],
            note: None,
            scene: Some(scene),
            understood: true,
        },
        None => Interpretation {
            unknown,
            understood: false,
            ..Interpretation::as_typed(text, Kind::New)
        },
    }
}

fn compose(d: Description, notes: &mut Vec<String>) -> Option<Scene> {
    if d.is_empty() {
        return None;
    }
    let mut used_colors: Vec<Color> = d.objects.iter().filter_map(|o| o.color).collect();
    used_colors.extend(d.sign.as_ref().and_then(|s| s.board));
    let background = d.background.unwrap_or_else(|| {
        let bg = contrasting(&used_colors, &BACKGROUNDS);
        if !d.objects.is_empty() || d.sign.is_some() {
            notes.push(format!("no background given: {}", bg.en()));
        }
        bg
    });
    let default_color = |i: usize| {
        OBJECT_COLORS[(0..OBJECT_COLORS.len())
            .map(|k| (k + i) % OBJECT_COLORS.len())
            .find(|&k| OBJECT_COLORS[k].contrasts(background))
            .unwrap_or(0)]
    };
    if let Some(n) = d.grid {
        return compose_grid(n, &d.objects, background, default_color, notes);
    }
    let mut scene = Scene {
        background,
        layout: Layout::Free,
        objects: vec![],
        sign: None,
    };
    if let Some(s) = d.sign {
        match s.word {
            Some(word) => {
                check_word(&word, notes);
                if s.column_named {
                    notes.push("signs stand centred in their row".to_string());
                }
                let board = s
                    .board
                    .unwrap_or_else(|| contrasting(&[background], &BOARDS));
                scene.sign = Some(Sign {
                    word,
                    board,
                    row: s.row.unwrap_or(1),
                });
            }
            None => notes.push(
                "say what the sign should read, e.g. a sign that says HELLO; it is left out"
                    .to_string(),
            ),
        }
    }
    if d.stray_positions > 0 {
        notes.push("a place that names no object was left out".to_string());
    }
    // Objects with a place first, then the others in the layout's order.
    let mut unplaced: Vec<Wanted> = vec![];
    for w in &d.objects {
        match w.cell {
            Some((r, c)) if scene.cell_free(r, c) => {
                scene
                    .objects
                    .push(object(w, (r, c), default_color(scene.objects.len())))
            }
            Some(_) => {
                notes.push(format!(
                    "the {} was moved: its place was taken",
                    w.shape.en()
                ));
                unplaced.push(Wanted {
                    cell: None,
                    ..w.clone()
                });
            }
            None => unplaced.push(w.clone()),
        }
    }
    let order = layout_for(unplaced.len() + scene.objects.len());
    for w in unplaced {
        let free = order
            .iter()
            .copied()
            .find(|&(r, c)| r < FREE_LAYOUT && scene.cell_free(r, c));
        match free {
            Some(cell) => {
                let color = default_color(scene.objects.len());
                scene.objects.push(object(&w, cell, color));
            }
            None => {
                notes.push(format!(
                    "there is no room left for the {}; a picture holds nine objects at most",
                    w.shape.en()
                ));
                break;
            }
        }
    }
    scene.sort_objects();
    for o in &scene.objects {
        if !o.color.contrasts(background) {
            notes.push(format!(
                "a {} {} on {} may be hard to see",
                o.color.en(),
                o.shape.en(),
                background.en()
            ));
        }
    }
    Some(scene)
}

fn object(w: &Wanted, (row, col): (u8, u8), default_color: Color) -> Object {
    Object {
        shape: w.shape,
        color: w.color.unwrap_or(default_color),
        size: w.size.unwrap_or(Size::Big),
        row,
        col,
    }
}

fn compose_grid(
    n: Option<u8>,
    items: &[Wanted],
    background: Color,
    default_color: impl Fn(usize) -> Color,
    notes: &mut Vec<String>,
) -> Option<Scene> {
    if items.is_empty() {
        notes.push("name the grid's shapes, e.g. a 2 by 2 grid: red circle, blue square, green star, pink heart".into());
        return None;
    }
    let n = n.unwrap_or(match items.len() {
        0..=4 => 2,
        5..=9 => 3,
        _ => 4,
    });
    let n = if (2..=4).contains(&n) {
        n
    } else {
        notes.push(format!("grids are 2×2 to 4×4; {n}×{n} is drawn as 4×4"));
        4.min(n.max(2))
    };
    let cells = n as usize * n as usize;
    if items.len() > cells {
        notes.push(format!(
            "a {n}×{n} grid holds {cells} shapes; the last {} were left out",
            items.len() - cells
        ));
    } else if items.len() > 1 && items.len() < cells {
        notes.push(format!(
            "a {n}×{n} grid holds {cells} shapes; the {} named repeat",
            items.len()
        ));
    }
    let objects = (0..cells)
        .map(|i| {
            let w = &items[i % items.len()];
            Object {
                shape: w.shape,
                color: w.color.unwrap_or_else(|| default_color(i)),
                size: Size::Big,
                row: (i / n as usize) as u8,
                col: (i % n as usize) as u8,
            }
        })
        .collect();
    Some(Scene {
        background,
        layout: Layout::Grid(n),
        objects,
        sign: None,
    })
}

/// "the red circle", "the circle", "it": how the canonical instruction names an object it could not find.
fn phrase_for(named: &Named) -> String {
    match (named.color, named.shape) {
        (Some(c), Some(s)) => format!("the {} {}", c.en(), s.en()),
        (None, Some(s)) => format!("the {}", s.en()),
        (Some(c), None) => format!("the {} one", c.en()),
        (None, None) => "it".to_string(),
    }
}

fn describe_named(named: &Named) -> String {
    phrase_for(named).trim_start_matches("the ").to_string()
}

/// The one object of `scene` that `named` fits, or why there is none.
fn resolve(named: &Named, scene: &Scene) -> Result<Object, String> {
    let fits: Vec<&Object> = scene
        .objects
        .iter()
        .filter(|o| {
            named.shape.is_none_or(|s| s == o.shape)
                && named.color.is_none_or(|c| c == o.color)
                && named.size.is_none_or(|s| s == o.size)
                && named.cell.is_none_or(|(r, c)| r == o.row && c == o.col)
        })
        .collect();
    match fits.as_slice() {
        [one] => Ok((*one).clone()),
        [] if scene.objects.is_empty() => Err("the picture has no objects to change".to_string()),
        [] => Err(format!(
            "there is no {} in the picture",
            describe_named(named)
        )),
        _ => Err(format!(
            "the picture has {} that fit “{}”: say which, by colour or place",
            fits.len(),
            describe_named(named)
        )),
    }
}

/// An edit of the previous picture.
fn edit_reading(
    asked: Asked,
    previous: Option<&Scene>,
    notes: &mut Vec<String>,
    text: &str,
    lexed: &[lexicon::Lexed],
    t: &Tokens,
) -> Interpretation {
    let unknown = unknown_words(lexed, t);
    let empty = Scene {
        background: Color::White,
        layout: Layout::Free,
        objects: vec![],
        sign: None,
    };
    let source = previous.unwrap_or(&empty);
    // The named object, found in the picture when the picture is known.
    let find = |named: &Named, notes: &mut Vec<String>| -> Option<Object> {
        let scene = previous?;
        resolve(named, scene).map_err(|why| notes.push(why)).ok()
    };
    let (edit, reading): (Option<Edit>, Option<EditReading>) = match asked {
        Asked::Add(w) => {
            let taken: Vec<Color> = vec![source.background];
            let color = w
                .color
                .unwrap_or_else(|| contrasting(&taken, &OBJECT_COLORS));
            let cell = match w.cell {
                Some((r, c)) if source.cell_free(r, c) => (r, c),
                asked_cell => {
                    let free = PLACES
                        .iter()
                        .copied()
                        .find(|&(r, c)| source.cell_free(r, c));
                    match (asked_cell, free) {
                        (Some(_), Some(cell)) => {
                            notes.push(format!(
                                "that place is taken; the {} goes where there is room",
                                w.shape.en()
                            ));
                            cell
                        }
                        (None, Some(cell)) => cell,
                        (_, None) => {
                            notes.push("the picture has no room for another object".to_string());
                            (1, 1)
                        }
                    }
                }
            };
            let object = Object {
                shape: w.shape,
                color,
                size: w.size.unwrap_or(Size::Big),
                row: cell.0,
                col: cell.1,
            };
            let edit = Edit::Add {
                object: object.clone(),
            };
            (Some(edit), Some(EditReading::Add { object }))
        }
        Asked::Remove(named) => {
            let found = find(&named, notes);
            let target = found
                .as_ref()
                .map_or_else(|| target_of(&named), Target::from);
            let edit = found.map(|object| Edit::Remove { object });
            (edit, Some(EditReading::Remove { object: target }))
        }
        Asked::Recolor(named, to) => {
            let found = find(&named, notes);
            if found.as_ref().is_some_and(|o| o.color == to) {
                notes.push(format!("it is {} already", to.en()));
            }
            let target = found
                .as_ref()
                .map_or_else(|| target_of(&named), Target::from);
            let edit = found.map(|object| Edit::Recolor { object, to });
            (edit, Some(EditReading::Recolor { object: target, to }))
        }
        Asked::Move(named, (row, col)) => {
            let found = find(&named, notes);
            if previous.is_some() && !source.cell_free(row, col) {
                notes.push("that place is taken".to_string());
            }
            let target = found
                .as_ref()
                .map_or_else(|| target_of(&named), Target::from);
            let edit = found.map(|object| Edit::Move { object, row, col });
            (
                edit,
                Some(EditReading::Move {
                    object: target,
                    row,
                    col,
                }),
            )
        }
        Asked::Background(to) => (
            Some(Edit::Background { to }),
            Some(EditReading::Background { to }),
        ),
        Asked::SignText(to) => {
            check_word(&to, notes);
            if previous.is_some_and(|s| s.sign.is_none()) {
                notes.push("the picture has no sign to change".to_string());
            }
            (
                Some(Edit::SignText { to: to.clone() }),
                Some(EditReading::SignText { to }),
            )
        }
        Asked::Unsupported(why) => {
            notes.push(why.to_string());
            return Interpretation {
                unknown,
                understood: false,
                ..Interpretation::as_typed(text, Kind::Edit)
            };
        }
    };
    let reading = reading.expect("every supported edit has a reading");
    let canonical = match &edit {
        Some(e) => instruct(&mut Canonical, source, e, Lang::En),
        None => unresolved_instruction(&reading),
    };
    // The scene afterwards, when the picture is known and the edit applies to it.
    let scene = match (previous, &edit) {
        (Some(scene), Some(e)) if applies(e, scene) => Some(e.apply(scene)),
        _ => None,
    };
    Interpretation {
        canonical,
        kind: Kind::Edit,
        edit: Some(reading),
        unknown,
        notes: vec![],
        note: None,
        scene,
        understood: true,
    }
}

fn applies(edit: &Edit, scene: &Scene) -> bool {
    match edit {
        Edit::Add { object } => scene.cell_free(object.row, object.col),
        Edit::Remove { object } | Edit::Recolor { object, .. } => scene.objects.contains(object),
        Edit::Move { object, row, col } => {
            scene.objects.contains(object) && scene.cell_free(*row, *col)
        }
        Edit::Background { .. } => true,
        Edit::SignText { .. } => scene.sign.is_some(),
    }
}

fn target_of(named: &Named) -> Target {
    Target {
        shape: named.shape,
        color: named.color,
        size: named.size,
        row: named.cell.map(|c| c.0),
        col: named.cell.map(|c| c.1),
    }
}

/// The canonical instruction for an edit whose object is not known exactly: the grammar's sentence with
/// the object named as the message named it.
fn unresolved_instruction(reading: &EditReading) -> String {
    let named = |t: &Target| Named {
        shape: t.shape,
        color: t.color,
        size: t.size,
        cell: t.row.zip(t.col),
        pronoun: t.shape.is_none(),
    };
    let placeholder = |t: &Target| Object {
        shape: t.shape.unwrap_or(Shape::Circle),
        color: t.color.unwrap_or(Color::Red),
        size: t.size.unwrap_or(Size::Big),
        row: t.row.unwrap_or(1),
        col: t.col.unwrap_or(1),
    };
    let (edit, name) = match reading {
        EditReading::Remove { object } => (
            Edit::Remove {
                object: placeholder(object),
            },
            named(object),
        ),
        EditReading::Recolor { object, to } => (
            Edit::Recolor {
                object: placeholder(object),
                to: *to,
            },
            named(object),
        ),
        EditReading::Move { object, row, col } => (
            Edit::Move {
                object: placeholder(object),
                row: *row,
                col: *col,
            },
            named(object),
        ),
        EditReading::Add { .. } | EditReading::Background { .. } | EditReading::SignText { .. } => {
            unreachable!("adds, backgrounds and words never need the picture to be said")
        }
    };
    instruct_naming(&mut Canonical, &edit, Lang::En, |_, _| phrase_for(&name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn scene_of(text: &str) -> Scene {
        interpret(text, Before::Nothing, None)
            .scene
            .unwrap_or_else(|| panic!("{text} describes a scene"))
    }

    /// Follow-ups after a sign and after two shapes, and the kind each should get.
    #[test]
    fn follow_ups_are_told_apart_as_new_pictures_or_edits() {
        let sign = scene_of("a yellow sign that says HELLO in the middle, blue background");
        let shapes = scene_of(
            "a small blue star in the top left corner and a big yellow heart at the bottom right, black background",
        );
        let table: &[(&Scene, &str, Kind, Option<&str>)] = &[
            // New descriptions.
            (
                &sign,
                "a big red circle in the center on a white background",
                Kind::New,
                None,
            ),
            (&shapes, "a red circle", Kind::New, None),
            (&shapes, "a 3 by 3 grid of green squares", Kind::New, None),
            (&shapes, "start over with a red square", Kind::New, None),
            (&shapes, "a new picture: two pink hearts", Kind::New, None),
            (
                &shapes,
                "白色背景上，中间有一个大的红色圆形",
                Kind::New,
                None,
            ),
            (
                &sign,
                "a green sign that says OPEN at the top",
                Kind::New,
                None,
            ),
            (&shapes, "a photo of a cat", Kind::New, None),
            // Questions.
            (&shapes, "what can you draw?", Kind::New, None),
            (
                &shapes,
                "can you make the heart pink?",
                Kind::Edit,
                Some("recolor"),
            ),
            // Edits.
            (&shapes, "make the star red", Kind::Edit, Some("recolor")),
            (&shapes, "now make it bigger", Kind::Edit, None),
            (
                &shapes,
                "now make the heart green",
                Kind::Edit,
                Some("recolor"),
            ),
            (
                &shapes,
                "turn the yellow heart purple",
                Kind::Edit,
                Some("recolor"),
            ),
            (
                &shapes,
                "change the color of the star to white",
                Kind::Edit,
                Some("recolor"),
            ),
            (&shapes, "remove the heart", Kind::Edit, Some("remove")),
            (&shapes, "get rid of the star", Kind::Edit, Some("remove")),
            (
                &shapes,
                "move the heart to the top right",
                Kind::Edit,
                Some("move"),
            ),
            (
                &shapes,
                "put the star in the center",
                Kind::Edit,
                Some("move"),
            ),
            (
                &shapes,
                "add a green triangle at the top",
                Kind::Edit,
                Some("add"),
            ),
            (
                &shapes,
                "put a red circle in the middle",
                Kind::Edit,
                Some("add"),
            ),
            (
                &shapes,
                "also a pink ring on the left",
                Kind::Edit,
                Some("add"),
            ),
            (
                &shapes,
                "make the background green",
                Kind::Edit,
                Some("background"),
            ),
            (&shapes, "blue background", Kind::Edit, Some("background")),
            (
                &sign,
                "change the sign to say CAFE",
                Kind::Edit,
                Some("sign_text"),
            ),
            (&sign, "make it say cafe", Kind::Edit, Some("sign_text")),
            (
                &sign,
                "the sign should read OPEN",
                Kind::Edit,
                Some("sign_text"),
            ),
            (&shapes, "再加一个红色圆形", Kind::Edit, Some("add")),
            (&shapes, "把心形变成绿色", Kind::Edit, Some("recolor")),
            (&shapes, "把星形移到右上角", Kind::Edit, Some("move")),
            (&shapes, "去掉星形", Kind::Edit, Some("remove")),
            (&shapes, "背景改成白色", Kind::Edit, Some("background")),
            (&sign, "把牌子上的字改成OPEN", Kind::Edit, Some("sign_text")),
        ];
        for (before, text, kind, op) in table {
            let r = interpret(text, Before::Picture(Some(before)), None);
            assert_eq!(r.kind, *kind, "{text}: {r:?}");
            let got = r
                .edit
                .as_ref()
                .map(|e| serde_json::to_value(e).unwrap()["op"].clone());
            assert_eq!(got, op.map(serde_json::Value::from), "{text}: {r:?}");
        }
        // Without a picture every message is a new one; the user's override wins over the reading.
        let r = interpret("make the star red", Before::Nothing, None);
        assert_eq!(r.kind, Kind::New);
        let r = interpret(
            "add a green triangle",
            Before::Picture(Some(&shapes)),
            Some(Kind::New),
        );
        assert_eq!((r.kind, r.edit.is_none()), (Kind::New, true));
        assert!(r.canonical.contains("green triangle"), "{}", r.canonical);
    }

    #[test]
    fn an_edit_names_its_object_from_the_picture_and_gives_the_picture_after() {
        let shapes = scene_of(
            "a small blue star in the top left corner and a big yellow heart at the bottom right, black background",
        );
        let r = interpret("make the star red", Before::Picture(Some(&shapes)), None);
        assert_eq!(r.canonical, "make the blue star red");
        let after = r.scene.unwrap();
        assert_eq!(after.objects[0].color, Color::Red);
        assert_eq!(after.objects[1], shapes.objects[1]);
        // A picture of unknown content: the object as the message names it.
        let r = interpret("make the star red", Before::Picture(None), None);
        assert_eq!((r.canonical.as_str(), r.scene), ("make the star red", None));
        // An object that is not there is said.
        let r = interpret("remove the triangle", Before::Picture(Some(&shapes)), None);
        assert!(r.notes.iter().any(|n| n.contains("no triangle")), "{r:?}");
    }

    #[test]
    fn what_cannot_be_read_is_named_kindly_with_what_can_be_drawn() {
        let r = interpret(
            "a photo of a cat wearing a detective hat",
            Before::Nothing,
            None,
        );
        assert_eq!((r.kind, r.understood), (Kind::New, false));
        assert_eq!(r.unknown, ["cat", "detective", "hat"]);
        let note = r.note.unwrap();
        assert!(
            note.contains("“cat”, “detective” or “hat”") && note.contains("hexagons"),
            "{note}"
        );
        // Partly known: the rest is drawn, the unknown word said.
        let r = interpret("a cat next to a red circle", Before::Nothing, None);
        assert!(r.understood && r.unknown == ["cat"], "{r:?}");
        assert!(r.note.unwrap().contains("draw the rest"));
        // Colours out of the palette, hex codes good and bad, typos: read and said.
        let r = interpret("a #3366FF trangle on crimson", Before::Nothing, None);
        assert_eq!(
            r.canonical,
            "a big blue triangle in the center on a red background"
        );
        assert_eq!(r.notes.len(), 3, "{:?}", r.notes);
        let r = interpret(
            "a #GGG000 circle and a #12345 square",
            Before::Nothing,
            None,
        );
        assert_eq!(r.unknown, ["#GGG000", "#12345"]);
        assert!(
            r.notes
                .iter()
                .filter(|n| n.contains("is not a colour"))
                .count()
                == 2
        );
    }

    #[test]
    fn what_the_model_cannot_draw_yet_is_said_for_whole_words_only() {
        let square_only = |text: &str| {
            interpret(text, Before::Nothing, None)
                .notes
                .iter()
                .any(|n| n == "this model draws square pictures only")
        };
        assert!(square_only("a wide picture of a red circle"));
        assert!(square_only("横向的红色圆形"));
        assert!(!square_only("a totally red circle"));
    }

    #[test]
    fn a_size_said_twice_still_leaves_the_colour_to_its_object() {
        let r = interpret(
            "一个橙色的小小的三角在正下方，背景为棕色",
            Before::Nothing,
            None,
        );
        assert_eq!(
            r.canonical,
            "a small orange triangle at the bottom on a brown background"
        );
    }

    #[test]
    fn models_that_read_text_themselves_get_it_as_typed() {
        let mut config = crate::ModelConfig::tiny();
        config.interpreter = crate::config::Interpreter::AsTyped;
        let r = for_model(&config, "a photo of a cat", Before::Nothing, None);
        assert_eq!(r, Interpretation::as_typed("a photo of a cat", Kind::New));
        let policy = crate::Policy::default_policy();
        let shapes = crate::ModelConfig::tiny();
        for (text, error) in [
            ("  ", "EmptyPrompt"),
            (&"x".repeat(3000)[..], "PromptTooLong"),
        ] {
            let e = checked(&shapes, &policy, text, Before::Nothing, None).unwrap_err();
            assert_eq!(e.name(), error);
        }
        let e = checked(&shapes, &policy, "a ｎｕｄｅ figure", Before::Nothing, None).unwrap_err();
        assert_eq!(e.name(), "PolicyRefused");
    }

    /// Random text (bytes of every kind, known words and Chinese shuffled together) never makes the
    /// interpreter panic, and what it returns holds together.
    #[test]
    fn fuzzed_messages_never_break_the_interpreter() {
        let words = [
            "a",
            "the",
            "red",
            "circle",
            "star",
            "top",
            "left",
            "and",
            "3",
            "by",
            "grid",
            "sign",
            "says",
            "HELLO",
            "make",
            "move",
            "to",
            "it",
            "#ff0000",
            "#zz",
            "背景",
            "红色",
            "圆形",
            "把",
            "改成",
            "，",
            "?",
            "\"",
            "'",
            "one",
            "above",
            "background",
            "remove",
            "add",
            "9",
            "x",
            "×",
            "九宫格",
        ];
        let scene = scene_of("a big red circle in the center on a white background");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..6_000 {
            let n = rng.random_range(0..24);
            let text: String = (0..n)
                .map(|_| match rng.random_range(0..4) {
                    0 => char::from_u32(rng.random_range(0..0x11_0000))
                        .unwrap_or('?')
                        .to_string(),
                    1 => (rng.random_range(b' '..=b'~') as char).to_string(),
                    _ => format!("{} ", words[rng.random_range(0..words.len())]),
                })
                .collect();
            for before in [
                Before::Nothing,
                Before::Picture(None),
                Before::Picture(Some(&scene)),
            ] {
                let r = interpret(&text, before, None);
                if let Some(s) = &r.scene {
                    let n = s.layout.n();
                    assert!(s.objects.iter().all(|o| o.row < n && o.col < n), "{text:?}");
                }
                assert!(r.understood || r.scene.is_none(), "{text:?}");
                assert!(
                    matches!(before, Before::Picture(_)) || r.kind == Kind::New,
                    "{text:?}"
                );
            }
        }
    }
}
