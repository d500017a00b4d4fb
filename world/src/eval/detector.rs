//! ShapesEval's judge: parses an image back into a scene. Given the layout the prompt asked for (free 3×3 or an
//! n×n grid, and the sign's row), it reads each cell's object (colour by nearest named colour, shape and size by
//! the best overlap with the renderer's own outlines, allowing a few pixels of shift), the background, and
//! the sign's word (glyph cells sampled at the font's grid, nearest glyph by Hamming distance).

use crate::scenes::font::{GLYPH_H, GLYPH_W, charset, glyph};
use crate::scenes::render::{Outline, object_geometry};
use crate::scenes::sign::{FONT_SCALE, GLYPH_ADVANCE, sign_board};
use crate::scenes::{Color, IMAGE_SIZE, Layout, Object, Shape, Sign, Size};

/// What the detector read from an image.
#[derive(Clone, Debug, PartialEq)]
pub struct Detected {
    pub background: Color,
    /// Row-major over the layout's cells.
    pub cells: Vec<Option<Found>>,
    pub word: Option<String>,
    pub board: Option<Color>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Found {
    pub shape: Shape,
    pub color: Color,
    pub size: Size,
    /// Overlap (IoU) with the best outline, in [0, 1].
    pub fit: f32,
}

fn nearest_color(p: &[u8]) -> (Color, i32) {
    Color::ALL
        .iter()
        .map(|c| {
            let q = c.rgb();
            (
                *c,
                (0..3)
                    .map(|i| (p[i] as i32 - q[i] as i32).pow(2))
                    .sum::<i32>(),
            )
        })
        .min_by_key(|(_, d)| *d)
        .expect("the palette is not empty")
}

fn mode(colors: impl Iterator<Item = Color>) -> Option<Color> {
    let mut counts = [0usize; Color::ALL.len()];
    for c in colors {
        counts[Color::ALL.iter().position(|x| *x == c).unwrap()] += 1;
    }
    let (i, &n) = counts.iter().enumerate().max_by_key(|(_, n)| **n)?;
    (n > 0).then_some(Color::ALL[i])
}

/// Per-pixel nearest named colour.
fn classify(img: &[u8]) -> Vec<Color> {
    img.chunks_exact(3).map(|p| nearest_color(p).0).collect()
}

/// Read `img` (RGB, `IMAGE_SIZE`²) as a scene of `layout`, with a sign in row `sign_row` if given.
pub fn detect(img: &[u8], layout: Layout, sign_row: Option<u8>) -> Detected {
    assert_eq!(
        img.len(),
        IMAGE_SIZE * IMAGE_SIZE * 3,
        "detector input must be {IMAGE_SIZE}² RGB"
    );
    let colors = classify(img);
    let at = |x: usize, y: usize| colors[y * IMAGE_SIZE + x];
    let frame = (0..IMAGE_SIZE).flat_map(|i| {
        [
            (i, 0),
            (i, 1),
            (i, IMAGE_SIZE - 1),
            (i, IMAGE_SIZE - 2),
            (0, i),
            (1, i),
            (IMAGE_SIZE - 1, i),
            (IMAGE_SIZE - 2, i),
        ]
    });
    let background = mode(frame.map(|(x, y)| at(x, y))).unwrap();
    let n = layout.n() as usize;
    let mut cells = Vec::with_capacity(n * n);
    for row in 0..n {
        for col in 0..n {
            let skip = sign_row.is_some_and(|r| r as usize == row) && layout == Layout::Free;
            cells.push(if skip {
                None
            } else {
                detect_cell(img, &colors, background, layout, row, col)
            });
        }
    }
    let (word, board) = match sign_row {
        Some(r) => read_sign(&colors, background, r),
        None => (None, None),
    };
    Detected {
        background,
        cells,
        word,
        board,
    }
}

fn cell_bounds(layout: Layout, row: usize, col: usize) -> (usize, usize, usize, usize) {
    let n = layout.n() as usize;
    let edge = |i: usize| (i * IMAGE_SIZE + n / 2) / n;
    (edge(col), edge(row), edge(col + 1), edge(row + 1))
}

fn detect_cell(
    img: &[u8],
    colors: &[Color],
    background: Color,
    layout: Layout,
    row: usize,
    col: usize,
) -> Option<Found> {
    let (x0, y0, x1, y1) = cell_bounds(layout, row, col);
    let (w, h) = (x1 - x0, y1 - y0);
    let pixels = || (y0..y1).flat_map(|y| (x0..x1).map(move |x| y * IMAGE_SIZE + x));
    let area = pixels().filter(|&p| colors[p] != background).count();
    let sizes: &[Size] = if layout == Layout::Free {
        &[Size::Small, Size::Big]
    } else {
        &[Size::Big]
    };
    // An object must cover at least a third of the smallest outline this layout can hold.
    let min_area = sizes
        .iter()
        .map(|&size| {
            let (_, _, r) = object_geometry(layout, &probe(size));
            Shape::ALL
                .iter()
                .map(|&s| template_area(s, r))
                .fold(f32::MAX, f32::min)
        })
        .fold(f32::MAX, f32::min);
    if (area as f32) < min_area / 3.0 {
        return None;
    }
    let color = mode(pixels().map(|p| colors[p]).filter(|c| *c != background))?;
    // The object's pixels: nearer its colour than the background's, i.e. more than half covered (the same
    // rule as the outlines below, whose inside is where coverage exceeds one half).
    let dist = |p: usize, c: Color| -> i32 {
        (0..3)
            .map(|i| (img[p * 3 + i] as i32 - c.rgb()[i] as i32).pow(2))
            .sum()
    };
    let mask: Vec<bool> = pixels()
        .map(|p| dist(p, color) < dist(p, background))
        .collect();
    let mut best: Option<Found> = None;
    for &size in sizes {
        let (cx, cy, r) = object_geometry(
            layout,
            &Object {
                row: row as u8,
                col: col as u8,
                ..probe(size)
            },
        );
        for shape in Shape::ALL {
            let outline = Outline::new(shape, r);
            for dy in -3i32..=3 {
                for dx in -3i32..=3 {
                    let (mut inter, mut union) = (0usize, 0usize);
                    for j in 0..h {
                        for i in 0..w {
                            let px = (x0 + i) as f32 + 0.5 - cx - dx as f32;
                            let py = (y0 + j) as f32 + 0.5 - cy - dy as f32;
                            let t = outline.distance(px, py) < 0.0;
                            let m = mask[j * w + i];
                            inter += (t && m) as usize;
                            union += (t || m) as usize;
                        }
                    }
                    let fit = inter as f32 / union.max(1) as f32;
                    if best.is_none_or(|b| fit > b.fit) {
                        best = Some(Found {
                            shape,
                            color,
                            size,
                            fit,
                        });
                    }
                }
            }
        }
    }
    best
}

fn probe(size: Size) -> Object {
    Object {
        shape: Shape::Circle,
        color: Color::Red,
        size,
        row: 0,
        col: 0,
    }
}

fn template_area(shape: Shape, r: f32) -> f32 {
    let outline = Outline::new(shape, r);
    let reach = (r * 1.3) as i32 + 2;
    let mut a = 0.0;
    for y in -reach..reach {
        for x in -reach..reach {
            a += outline.coverage(x as f32 + 0.5, y as f32 + 0.5);
        }
    }
    a
}

/// The word on the sign in row `row`, and the board's colour.
fn read_sign(colors: &[Color], background: Color, row: u8) -> (Option<String>, Option<Color>) {
    let band = (
        row as usize * IMAGE_SIZE / 3,
        (row as usize + 1) * IMAGE_SIZE / 3,
    );
    let in_band = || (band.0..band.1).flat_map(|y| (0..IMAGE_SIZE).map(move |x| (x, y)));
    let Some(board) = mode(
        in_band()
            .map(|(x, y)| colors[y * IMAGE_SIZE + x])
            .filter(|c| *c != background),
    ) else {
        return (None, None);
    };
    // The board spans the columns where it fills most of its rows; its width gives the number of letters.
    let is_board = |x: usize, y: usize| colors[y * IMAGE_SIZE + x] == board;
    let col_count = |x: usize| (band.0..band.1).filter(|&y| is_board(x, y)).count();
    let tallest = (0..IMAGE_SIZE).map(col_count).max().unwrap_or(0);
    let cols: Vec<usize> = (0..IMAGE_SIZE)
        .filter(|&x| tallest > 0 && col_count(x) * 2 >= tallest)
        .collect();
    let (Some(&bx0), Some(&bx1)) = (cols.first(), cols.last()) else {
        return (None, Some(board));
    };
    let width = bx1 - bx0 + 1;
    let letters = ((width as f32 - 13.0) / GLYPH_ADVANCE as f32)
        .round()
        .clamp(1.0, 5.0) as usize;
    // Where the renderer would put a word of that length.
    let template = Sign {
        word: "A".repeat(letters),
        board,
        row,
    };
    let (tx0, ty0, _, _) = sign_board(&template);
    let ink = |x: usize, y: usize| {
        x < IMAGE_SIZE && y < IMAGE_SIZE && colors[y * IMAGE_SIZE + x] != board
    };
    let mut best = (usize::MAX, String::new());
    for dy in -2i32..=2 {
        for dx in -2i32..=2 {
            let mut cost = 0;
            let mut word = String::new();
            for i in 0..letters {
                let gx = (tx0 as i32 + 8 + (i * GLYPH_ADVANCE) as i32 + dx).max(0) as usize;
                let gy = (ty0 as i32 + 6 + dy).max(0) as usize;
                let mut cells = [[false; GLYPH_W]; GLYPH_H];
                for (cy, row) in cells.iter_mut().enumerate() {
                    for (cx, on) in row.iter_mut().enumerate() {
                        let hits = (0..FONT_SCALE)
                            .flat_map(|j| (0..FONT_SCALE).map(move |i| (i, j)))
                            .filter(|&(i, j)| {
                                ink(gx + cx * FONT_SCALE + i, gy + cy * FONT_SCALE + j)
                            })
                            .count();
                        *on = hits * 2 > FONT_SCALE * FONT_SCALE;
                    }
                }
                let (c, d) = charset()
                    .map(|c| {
                        let g = glyph(c).unwrap();
                        let d: usize = (0..GLYPH_H)
                            .map(|y| (0..GLYPH_W).filter(|&x| g[y][x] != cells[y][x]).count())
                            .sum();
                        (c, d)
                    })
                    .min_by_key(|(_, d)| *d)
                    .unwrap();
                cost += d;
                word.push(c);
            }
            if cost < best.0 {
                best = (cost, word);
            }
        }
    }
    (Some(best.1), Some(board))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenes::render::render;
    use crate::scenes::sample::{Category, HeldOut, example_rng, sample};
    use crate::scenes::{Lang, WORDS};

    #[test]
    fn reads_ground_truth_renders_back() {
        let mut objects = 0;
        let mut right = 0;
        for i in 0..120 {
            let category = [
                Category::Single,
                Category::Multi,
                Category::Grid,
                Category::Sign,
            ][i % 4];
            let s = sample(
                &mut example_rng(11, i as u64),
                category,
                Lang::En,
                HeldOut::Exclude,
            );
            let img = render(&s.scene);
            let d = detect(&img, s.scene.layout, s.scene.sign.as_ref().map(|x| x.row));
            assert_eq!(d.background, s.scene.background, "{}", s.text);
            let n = s.scene.layout.n() as usize;
            for o in &s.scene.objects {
                objects += 1;
                let f = d.cells[o.row as usize * n + o.col as usize];
                right += f.is_some_and(|f| f.shape == o.shape && f.color == o.color) as usize;
            }
            let expected_cells = s.scene.objects.len();
            assert_eq!(
                d.cells.iter().flatten().count(),
                expected_cells,
                "no phantom objects: {}",
                s.text
            );
            if let Some(sign) = &s.scene.sign {
                assert_eq!(d.word.as_deref(), Some(sign.word.as_str()), "{}", s.text);
            }
        }
        assert_eq!(right, objects, "every object read back");
    }

    #[test]
    fn reads_every_word() {
        for (i, w) in WORDS.iter().enumerate() {
            let sign = Sign {
                word: w.to_string(),
                board: [Color::Yellow, Color::Black, Color::Blue][i % 3],
                row: (i % 3) as u8,
            };
            let scene = crate::scenes::Scene {
                background: Color::Gray,
                layout: Layout::Free,
                objects: vec![],
                sign: Some(sign),
            };
            let d = detect(&render(&scene), Layout::Free, Some((i % 3) as u8));
            assert_eq!(d.word.as_deref(), Some(*w));
        }
    }
}
