//! From tokens to what was asked: a [`Description`] of a picture (objects, a sign, a grid, a background,
//! each part only as far as the message says it) or an [`Asked`] change to the previous one. Defaults,
//! layout and the canonical caption are the caller's (`super`).

use super::lexicon::{Lexed, PosPart, Relation, Tok, Verb};
use super::scene::{Color, Shape, Size};

/// An object as the message describes it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Wanted {
    pub shape: Shape,
    pub color: Option<Color>,
    pub size: Option<Size>,
    pub cell: Option<(u8, u8)>,
    /// Token index of the shape word (for ordering and clause membership).
    pub at: usize,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct WantedSign {
    pub word: Option<String>,
    pub board: Option<Color>,
    pub row: Option<u8>,
    /// A column was named too ("top left"): signs are centred, so it is dropped (and said).
    pub column_named: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Description {
    pub background: Option<Color>,
    pub objects: Vec<Wanted>,
    pub sign: Option<WantedSign>,
    /// An n×n grid; its objects are `objects`, in reading order.
    pub grid: Option<Option<u8>>,
    /// Positions that belong to no object, as typed.
    pub stray_positions: usize,
}

impl Description {
    pub fn is_empty(&self) -> bool {
        self.background.is_none()
            && self.objects.is_empty()
            && self.sign.is_none()
            && self.grid.is_none()
    }
}

/// How an edit names the object it changes.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Named {
    pub shape: Option<Shape>,
    pub color: Option<Color>,
    pub size: Option<Size>,
    pub cell: Option<(u8, u8)>,
    /// "it", "them", "the red one": refers without a shape.
    pub pronoun: bool,
}

impl Named {
    pub fn is_empty(&self) -> bool {
        self.shape.is_none() && self.color.is_none() && self.cell.is_none() && !self.pronoun
    }
}

/// A change to the previous picture, as asked.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Asked {
    Add(Wanted),
    Remove(Named),
    Recolor(Named, Color),
    Move(Named, (u8, u8)),
    Background(Color),
    SignText(String),
    /// A change the world cannot make (a sign's colour, a size, a shape), said in words.
    Unsupported(&'static str),
}

/// The tokens, with a mark on each one a reading has used.
#[derive(Clone)]
pub(super) struct Tokens {
    pub toks: Vec<Tok>,
    pub used: Vec<bool>,
}

impl Tokens {
    pub fn new(lexed: &[Lexed]) -> Self {
        let mut toks: Vec<Tok> = lexed.iter().map(|l| l.tok.clone()).collect();
        // "change the color of the star": after "the", "color" is a noun, not a verb.
        for i in 1..toks.len() {
            let typed = lexed[i].typed.to_ascii_lowercase();
            if toks[i - 1] == Tok::The && (typed == "color" || typed == "colour") {
                toks[i] = Tok::The;
            }
        }
        // "the red one": `one` after an adjective, with no shape following, is a pronoun.
        for i in 1..toks.len() {
            let after_adjective = matches!(toks[i - 1], Tok::Color(_) | Tok::Size(_));
            let shape_follows = matches!(toks.get(i + 1), Some(Tok::Shape { .. }));
            if toks[i] == Tok::Number(1)
                && lexed[i].typed.eq_ignore_ascii_case("one")
                && after_adjective
                && !shape_follows
            {
                toks[i] = Tok::One;
            }
        }
        let used = vec![false; toks.len()];
        Tokens { toks, used }
    }

    fn get(&self, i: usize) -> Option<&Tok> {
        self.toks.get(i)
    }

    fn free(&self, i: usize) -> bool {
        i < self.toks.len() && !self.used[i]
    }

    pub fn has_tok(&self, tok: &Tok) -> bool {
        self.toks.contains(tok)
    }

    fn has(&self, pred: impl Fn(&Tok) -> bool) -> bool {
        self.toks.iter().any(pred)
    }

    fn find(&self, from: usize, pred: impl Fn(&Tok) -> bool) -> Option<usize> {
        (from..self.toks.len()).find(|&i| pred(&self.toks[i]))
    }

    /// The clause (between separators) token `i` belongs to.
    fn clause_of(&self, i: usize) -> usize {
        self.toks[..i].iter().filter(|t| **t == Tok::Sep).count()
    }

    /// Merges neighbouring position parts from `i` on into one cell; returns it and the tokens it spans.
    fn position_at(&self, i: usize) -> Option<((u8, u8), usize)> {
        let (mut row, mut col, mut middle) = (None, None, false);
        let mut n = 0;
        while let Some(Tok::Pos(part)) = self.get(i + n) {
            match *part {
                PosPart::Cell(r, c) if n == 0 => return Some(((r, c), 1)),
                PosPart::Cell(..) => break,
                PosPart::Vertical(r) if row.is_none() => row = Some(r),
                PosPart::Horizontal(c) if col.is_none() => col = Some(c),
                PosPart::Middle if !middle => middle = true,
                _ => break,
            }
            n += 1;
        }
        (n > 0).then(|| ((row.unwrap_or(1), col.unwrap_or(1)), n))
    }

    /// Every position in the message not yet used: `(first token, cell)`, each spanning its tokens.
    fn positions(&self) -> Vec<(usize, (u8, u8), usize)> {
        let mut out = vec![];
        let mut i = 0;
        while i < self.toks.len() {
            if self.free(i)
                && let Some((cell, n)) = self.position_at(i)
            {
                out.push((i, cell, n));
                i += n;
            } else {
                i += 1;
            }
        }
        out
    }

    fn mark(&mut self, from: usize, n: usize) {
        for u in &mut self.used[from..(from + n).min(self.toks.len())] {
            *u = true;
        }
    }
}

/// Whether the message reads as Chinese (positions come before what they place).
fn chinese(lexed: &[Lexed]) -> bool {
    lexed
        .iter()
        .any(|l| l.typed.chars().any(|c| c as u32 >= 0x3400))
}

/// The background a message names: "white background", "background is white", "背景是白色", "白底",
/// "on white" (a colour after "on" that no shape or sign follows).
fn background(t: &mut Tokens) -> Option<Color> {
    for i in 0..t.toks.len() {
        if t.toks[i] != Tok::Background {
            continue;
        }
        if i > 0
            && let Some(Tok::Color(c)) = t.get(i - 1)
            && t.free(i - 1)
        {
            let c = *c;
            t.mark(i - 1, 2);
            return Some(c);
        }
        // "background to blue", "background: blue", "背景改成蓝色"
        let mut j = i + 1;
        if matches!(t.get(j), Some(Tok::To | Tok::Sep)) {
            j += 1;
        }
        if let Some(Tok::Color(c)) = t.get(j) {
            let c = *c;
            t.mark(i, j - i + 1);
            return Some(c);
        }
    }
    for i in 0..t.toks.len() {
        let j = if t.get(i + 1) == Some(&Tok::A) {
            i + 2
        } else {
            i + 1
        };
        if t.toks[i] == Tok::On
            && let Some(Tok::Color(c)) = t.get(j)
            && !matches!(
                t.get(j + 1),
                Some(Tok::Shape { .. } | Tok::Sign | Tok::Size(_) | Tok::Color(_) | Tok::One)
            )
        {
            let c = *c;
            t.mark(i, j - i + 1);
            return Some(c);
        }
    }
    None
}

/// The sign a message describes: its board colour (the colour just before "sign"), its word, its row.
fn sign(t: &mut Tokens, zh: bool) -> Option<WantedSign> {
    let at = t.find(0, |x| *x == Tok::Sign);
    let word_at = t.find(0, |x| matches!(x, Tok::Word(_)));
    let anchor = at.or(word_at)?;
    let mut sign = WantedSign::default();
    if let Some(w) = word_at {
        if let Tok::Word(word) = &t.toks[w] {
            sign.word = Some(word.clone());
        }
        t.mark(w, 1);
    }
    if let Some(s) = at {
        t.mark(s, 1);
        if s > 0
            && let Some(Tok::Color(c)) = t.get(s - 1)
            && t.free(s - 1)
        {
            sign.board = Some(*c);
            t.mark(s - 1, 1);
        }
    }
    // The row: a position in the sign's clause, after it in English and before it in Chinese; a
    // position that follows the word ("that says HELLO at the top") belongs to the sign either way.
    let clause = t.clause_of(anchor);
    let last = word_at.into_iter().chain(at).max().unwrap_or(anchor);
    let positions = t.positions();
    let after = positions
        .iter()
        .find(|(i, _, _)| *i > last && t.clause_of(*i) == clause && !object_between(t, last, *i));
    let before = positions.iter().rev().find(|(i, _, _)| {
        *i < anchor && t.clause_of(*i) == clause && !object_between(t, *i, anchor)
    });
    let chosen = if zh {
        before.or(after)
    } else {
        after.or(before)
    };
    if let Some(&(i, (row, col), n)) = chosen {
        sign.row = Some(row);
        sign.column_named = col != 1;
        t.mark(i, n);
    }
    Some(sign)
}

fn object_between(t: &Tokens, a: usize, b: usize) -> bool {
    t.toks[a.min(b)..a.max(b)]
        .iter()
        .any(|x| matches!(x, Tok::Shape { .. }))
}

/// A grid's size: "3 by 3 grid", "grid of 4x4", "3×3网格", "九宫格".
fn grid(t: &mut Tokens) -> Option<Option<u8>> {
    let g = t.find(0, |x| matches!(x, Tok::Grid(_)))?;
    t.mark(g, 1);
    if let Tok::Grid(Some(n)) = t.toks[g] {
        return Some(Some(n));
    }
    // n by n, just before or just after the word "grid".
    let by_at = |t: &Tokens, i: usize| match (t.get(i), t.get(i + 1), t.get(i + 2)) {
        (Some(Tok::Number(a)), Some(Tok::By), Some(Tok::Number(b))) if a == b => Some(*a),
        _ => None,
    };
    for start in [g.saturating_sub(3), g + 1] {
        if let Some(n) = by_at(t, start) {
            t.mark(start, 3);
            return Some(Some(n));
        }
    }
    if g > 0
        && let Some(Tok::Number(n)) = t.get(g - 1)
    {
        let n = *n;
        t.mark(g - 1, 1);
        return Some(Some(n));
    }
    Some(None)
}

/// Every object the message names: a shape with the colour, size and count just before it (and a colour or
/// size just after it, "a circle in red"), placed by the positions of its clause.
fn objects(t: &mut Tokens, zh: bool, in_grid: bool) -> (Vec<Wanted>, usize) {
    let mut out: Vec<Wanted> = vec![];
    for k in 0..t.toks.len() {
        let Tok::Shape { shape, plural } = t.toks[k] else {
            continue;
        };
        if !t.free(k) {
            continue;
        }
        t.mark(k, 1);
        let (mut color, mut size, mut count) = (None, None, None);
        let mut j = k;
        while j > 0 && t.free(j - 1) {
            match t.toks[j - 1] {
                Tok::Color(c) if color.is_none() => color = Some(c),
                Tok::Size(s) if size.is_none() => size = Some(s),
                // "小小的", "very very big": a size said twice.
                Tok::Size(s) if size == Some(s) => {}
                Tok::Number(n)
                    if count.is_none() && !(j >= 2 && t.get(j - 2) == Some(&Tok::By)) =>
                {
                    count = Some(n)
                }
                Tok::The | Tok::Also | Tok::A => {}
                _ => break,
            }
            j -= 1;
            t.used[j] = true;
        }
        // A colour or size after the shape that no other shape claims: "a circle in red".
        let mut j = k + 1;
        while let Some(tok) = t.get(j) {
            if !t.free(j) {
                break;
            }
            let next_is_shape = matches!(t.get(j + 1), Some(Tok::Shape { .. }));
            match tok {
                Tok::Color(c) if color.is_none() && !next_is_shape && !in_grid => color = Some(*c),
                Tok::Size(s) if size.is_none() && !next_is_shape && !in_grid => size = Some(*s),
                _ => break,
            }
            t.used[j] = true;
            j += 1;
        }
        // "stars" alone is two of them; in a grid's list it is one item.
        let count = match (count, plural && !in_grid) {
            (Some(n), _) => n,
            (None, true) => 2,
            (None, false) => 1,
        }
        .clamp(1, 16);
        for _ in 0..count {
            out.push(Wanted {
                shape,
                color,
                size,
                cell: None,
                at: k,
            });
        }
    }
    if in_grid {
        return (out, 0);
    }
    // Positions, clause by clause: paired with the clause's objects in order; one in a clause of its own
    // goes to the nearest object still unplaced (the previous clause's in English, the next in Chinese).
    let mut stray = 0;
    let positions = t.positions();
    let clauses = t.toks.iter().filter(|x| **x == Tok::Sep).count() + 1;
    let mut orphans = vec![];
    for clause in 0..clauses {
        let here: Vec<&(usize, (u8, u8), usize)> = positions
            .iter()
            .filter(|(i, _, _)| t.clause_of(*i) == clause)
            .collect();
        let members: Vec<usize> = (0..out.len())
            .filter(|&o| t.clause_of(out[o].at) == clause)
            .collect();
        if members.is_empty() {
            orphans.extend(here.iter().map(|p| (p.0, p.1)));
            continue;
        }
        // Each place goes to the nearest unplaced object before it in English ("a star at the top"), after
        // it in Chinese ("左上角有一个星形"), else to the nearest on the other side.
        let mut placed = 0;
        for p in &here {
            let before = members
                .iter()
                .rev()
                .copied()
                .find(|&m| out[m].at < p.0 && out[m].cell.is_none());
            let after = members
                .iter()
                .copied()
                .find(|&m| out[m].at > p.0 && out[m].cell.is_none());
            if let Some(m) = if zh {
                after.or(before)
            } else {
                before.or(after)
            } {
                out[m].cell = Some(p.1);
                placed += 1;
            }
        }
        stray += here.len() - placed;
    }
    for (at, cell) in orphans {
        let unplaced = |o: &Wanted| o.cell.is_none();
        let target = if zh {
            out.iter_mut().find(|o| o.at > at && unplaced(o))
        } else {
            out.iter_mut().rev().find(|o| o.at < at && unplaced(o))
        };
        match target {
            Some(o) => o.cell = Some(cell),
            None => stray += 1,
        }
    }
    for (i, _, n) in positions {
        t.mark(i, n);
    }
    relations(t, &mut out);
    (out, stray)
}

/// "a star above a circle": the two objects around a relation word, placed one from the other when the
/// message gives neither a place (or gives the second one's).
fn relations(t: &mut Tokens, out: &mut [Wanted]) {
    for r in 0..t.toks.len() {
        let Tok::Relation(relation) = t.toks[r] else {
            continue;
        };
        let a = out.iter().rposition(|o| o.at < r);
        let b = out.iter().position(|o| o.at > r);
        let (Some(a), Some(b)) = (a, b) else {
            continue;
        };
        if out[a].cell.is_some() || t.clause_of(out[a].at) != t.clause_of(out[b].at) {
            continue;
        }
        let (row, col) = out[b].cell.unwrap_or(match relation {
            Relation::Above => (2, 1),
            Relation::Below => (0, 1),
            Relation::LeftOf => (1, 2),
            Relation::RightOf | Relation::NextTo => (1, 0),
        });
        // The first object on the far side of the second, the whole layout apart where it fits.
        let cell = match relation {
            Relation::Above => (row >= 1).then_some((0, col)),
            Relation::Below => (row <= 1).then_some((2, col)),
            Relation::LeftOf => (col >= 1).then_some((row, 0)),
            Relation::RightOf => (col <= 1).then_some((row, 2)),
            Relation::NextTo => Some((row, if col <= 1 { 2 } else { 0 })),
        };
        if let Some(cell) = cell {
            t.used[r] = true;
            out[a].cell = Some(cell);
            out[b].cell = Some((row, col));
        }
    }
}

/// What a message describes.
pub(super) fn describe(lexed: &[Lexed], t: &mut Tokens) -> Description {
    let zh = chinese(lexed);
    let grid = grid(t);
    let background = background(t);
    let sign = if grid.is_none() { sign(t, zh) } else { None };
    let (objects, stray_positions) = objects(t, zh, grid.is_some());
    Description {
        background,
        objects,
        sign,
        grid,
        stray_positions,
    }
}

/// How the object an edit changes is named, from token `from` up to (not including) `to`.
fn named(t: &mut Tokens, from: usize, to: usize) -> Named {
    let mut n = Named::default();
    let mut i = from;
    while i < to.min(t.toks.len()) {
        match &t.toks[i] {
            Tok::Shape { shape, .. } if n.shape.is_none() => n.shape = Some(*shape),
            Tok::Color(c) if n.color.is_none() && n.shape.is_none() && !n.pronoun => {
                n.color = Some(*c)
            }
            Tok::Size(s) if n.size.is_none() => n.size = Some(*s),
            Tok::It | Tok::One => n.pronoun = true,
            Tok::Pos(_) if n.cell.is_none() => {
                if let Some((cell, len)) = t.position_at(i) {
                    n.cell = Some(cell);
                    t.mark(i, len);
                    i += len;
                    continue;
                }
            }
            _ => {}
        }
        t.used[i] = true;
        i += 1;
    }
    n
}

/// The first token at or after `from` that ends a reference: a target, a verb, a separator.
fn reference_end(t: &Tokens, from: usize, colour_ends: bool) -> usize {
    let mut seen_head = false;
    for i in from..t.toks.len() {
        match &t.toks[i] {
            Tok::To | Tok::Verb(_) | Tok::Sep | Tok::Says | Tok::Background | Tok::Word(_) => {
                return i;
            }
            Tok::Shape { .. } | Tok::It | Tok::One => seen_head = true,
            Tok::Color(_) if colour_ends && seen_head => return i,
            Tok::Pos(_) if seen_head && !colour_ends => return i,
            _ => {}
        }
    }
    t.toks.len()
}

/// A change to the previous picture, when the message asks for one.
pub(super) fn asked(lexed: &[Lexed], t: &mut Tokens) -> Option<Asked> {
    let verb = t.find(0, |x| matches!(x, Tok::Verb(_)));
    let verb_kind = verb.and_then(|i| match t.toks[i] {
        Tok::Verb(v) => Some(v),
        _ => None,
    });
    let verb_is = |v: Verb| verb_kind == Some(v);
    let ba = t.find(0, |x| *x == Tok::Ba);
    let into = t.find(0, |x| *x == Tok::To);
    // Whether the verb's object is one already there ("the star", "it", 把…) rather than a new one ("a star").
    let definite = ba.is_some()
        || verb.is_some_and(|v| {
            t.toks[v + 1..]
                .iter()
                .find(|x| {
                    matches!(
                        x,
                        Tok::The | Tok::A | Tok::It | Tok::One | Tok::Shape { .. } | Tok::Number(_)
                    )
                })
                .is_some_and(|x| matches!(x, Tok::The | Tok::It | Tok::One))
        });
    let changing = verb_is(Verb::Change) || (ba.is_some() && into.is_some());

    // The sign's word: "make the sign say CAFE", "change HELLO to CAFE", "把牌子上的字改成CAFE".
    let sign_named = t.has(|x| *x == Tok::Sign) || t.has(|x| matches!(x, Tok::Word(_)));
    let says = t.has(|x| *x == Tok::Says);
    // "make a sign that says HELLO" is a new sign, not a new word.
    let indefinite_sign = t.find(0, |x| *x == Tok::Sign).is_some_and(|s| {
        t.toks[..s]
            .iter()
            .rev()
            .take_while(|x| !matches!(x, Tok::Verb(_) | Tok::Sep))
            .any(|x| *x == Tok::A || *x == Tok::Number(1))
    });
    let the_sign = t
        .find(0, |x| *x == Tok::Sign)
        .is_some_and(|s| s > 0 && matches!(t.toks[s - 1], Tok::The | Tok::It));
    if sign_named
        && !indefinite_sign
        && (changing || (says && the_sign))
        && !t.has(|x| *x == Tok::Background)
    {
        let word = t
            .toks
            .iter()
            .rev()
            .find_map(|x| match x {
                Tok::Word(w) => Some(w.clone()),
                _ => None,
            })
            .or_else(|| {
                // "change the sign to cafe": the unknown word after "to" is the word.
                let after = into? + 1;
                match t.get(after) {
                    Some(Tok::Unknown(w)) if w.chars().all(|c| c.is_ascii_alphabetic()) => {
                        Some(w.to_ascii_uppercase())
                    }
                    _ => None,
                }
            });
        mark_all(t);
        return Some(match word {
            Some(w) => Asked::SignText(w),
            None if t.has(|x| matches!(x, Tok::Color(_))) => {
                Asked::Unsupported("the colour of a sign's board cannot be changed yet")
            }
            None => {
                Asked::Unsupported("say what the sign should read, e.g. \"make the sign say CAFE\"")
            }
        });
    }

    // The background: "change the background to blue", "make the background blue", "背景改成蓝色".
    let has_objects = t.has(|x| matches!(x, Tok::Shape { .. } | Tok::Sign | Tok::Grid(_)));
    if let Some(b) = t.find(0, |x| *x == Tok::Background) {
        let colour = t.find(b + 1, |x| matches!(x, Tok::Color(_))).or_else(|| {
            b.checked_sub(1)
                .filter(|&i| matches!(t.toks[i], Tok::Color(_)))
        });
        if let Some(c) = colour
            && (changing || into.is_some() || verb.is_none())
            && (!has_objects || changing)
        {
            let Tok::Color(color) = t.toks[c] else {
                unreachable!()
            };
            mark_all(t);
            return Some(Asked::Background(color));
        }
    }

    // Removing: "remove the red circle", "去掉圆形".
    if let Some(v) = verb
        && verb_is(Verb::Remove)
    {
        let end = reference_end(t, v + 1, false);
        let mut name = named(t, v + 1, t.toks.len().min(end.max(v + 1)));
        if name.is_empty() && end < t.toks.len() {
            name = named(t, v + 1, t.toks.len());
        }
        mark_all(t);
        return Some(Asked::Remove(name));
    }

    // Moving: "move the star to the top left", "put the star on the right", "把星形移到左上角".
    let moving = verb_is(Verb::Move) || (verb_is(Verb::Put) && definite);
    if let Some(v) = verb
        && moving
    {
        let start = ba.map_or(v + 1, |b| b + 1);
        let end = if ba.is_some() {
            v
        } else {
            reference_end(t, start, false)
        };
        let name = named(t, start, end);
        let target = t.positions().last().map(|p| p.1);
        mark_all(t);
        return Some(match target {
            Some(cell) => Asked::Move(name, cell),
            None => {
                Asked::Unsupported("say where to move it, e.g. \"move the star to the top left\"")
            }
        });
    }

    // Recolouring: "make the red circle blue", "change the color of the star to green", "把圆形变成蓝色".
    if changing {
        let start = match (ba, verb) {
            (Some(b), _) => b + 1,
            (None, Some(v)) => v + 1,
            (None, None) => 0,
        };
        let end = match ba {
            Some(_) => into.unwrap_or(t.toks.len()),
            None => reference_end(t, start, true),
        };
        let name = named(t, start, end);
        let target = t.toks[end.min(t.toks.len())..]
            .iter()
            .rev()
            .find_map(|x| match x {
                Tok::Color(c) => Some(*c),
                _ => None,
            });
        // What follows the object's name ("make it bigger", "turn the circle into a star").
        let head = t.find(start, |x| {
            matches!(x, Tok::Shape { .. } | Tok::It | Tok::One)
        });
        let after_head = head.map_or(&t.toks[0..0], |h| &t.toks[h + 1..]);
        let size = after_head.iter().any(|x| matches!(x, Tok::Size(_)));
        let shape = after_head.iter().any(|x| matches!(x, Tok::Shape { .. }));
        let indefinite_object = !definite && name.shape.is_some() && target.is_none();
        if !indefinite_object && !name.is_empty() {
            mark_all(t);
            return Some(match target {
                Some(c) => Asked::Recolor(name, c),
                None if size => Asked::Unsupported("sizes cannot be changed yet"),
                None if shape => Asked::Unsupported("an object cannot change its shape yet"),
                None => Asked::Unsupported("say which colour, e.g. \"make the circle blue\""),
            });
        }
    }

    // Adding: "add a blue star at the top", "put a star in the corner", "draw a star at the top", "在右上角加
    // 一个小的蓝色星形", "再加一个…": one new object and no new background.
    let adding = verb_is(Verb::Add)
        || (verb_is(Verb::Put) && !definite)
        || t.has(|x| *x == Tok::Also)
        || verb_is(Verb::Draw);
    if adding
        && !t.has(|x| *x == Tok::Background)
        && !t.has(|x| matches!(x, Tok::Grid(_) | Tok::Sign))
    {
        let description = describe(lexed, t);
        let first = description.objects.first().cloned();
        let explicit_add = verb_is(Verb::Add) || t.has(|x| *x == Tok::Also) || verb_is(Verb::Put);
        if let Some(o) = first
            && (explicit_add || description.objects.len() == 1)
        {
            return Some(Asked::Add(o));
        }
    }
    None
}

fn mark_all(t: &mut Tokens) {
    for (u, tok) in t.used.iter_mut().zip(&t.toks) {
        if !matches!(tok, Tok::Unknown(_)) {
            *u = true;
        }
    }
}
