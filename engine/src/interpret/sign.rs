//! Signs: a board with a word in the world's 5×7 [`super::font`], scaled ×3, centred in a row of the 3×3
//! layout. The world's renderer draws them into scenes; the engine draws a sign alone
//! ([`sign_picture`]) for models that read the lettering they are to draw as a picture (`sign_glyphs` in
//! a model's config): the sign, where and as it will be, becomes context the model copies from.

use super::font::{GLYPH_H, GLYPH_W, glyph};
use super::scene::{IMAGE_SIZE, Scene, Sign};

/// Font cells are drawn as `FONT_SCALE`² pixel blocks; glyphs advance by one blank cell.
pub const FONT_SCALE: usize = 3;
pub const GLYPH_ADVANCE: usize = (GLYPH_W + 1) * FONT_SCALE;
const BOARD_PAD_X: usize = 8;
const BOARD_PAD_Y: usize = 6;

/// The board rectangle of a sign: (x0, y0, width, height) in pixels.
pub fn sign_board(sign: &Sign) -> (usize, usize, usize, usize) {
    let (w, h) = (
        lettering_width(sign) + 2 * BOARD_PAD_X,
        GLYPH_H * FONT_SCALE + 2 * BOARD_PAD_Y,
    );
    let cell = IMAGE_SIZE as f32 / 3.0;
    let cy = ((sign.row as f32 + 0.5) * cell) as usize;
    ((IMAGE_SIZE - w) / 2, cy - h / 2, w, h)
}

/// Pixel box `(x0, y0, x1, y1)` (x1, y1 exclusive) holding a sign's letters: where the image depends on
/// which word the caption names, so the trainer can weight it (`train.py --text-weight`).
pub fn sign_lettering(sign: &Sign) -> (usize, usize, usize, usize) {
    let (x0, y0) = sign_char_origin(sign, 0);
    (
        x0,
        y0,
        x0 + lettering_width(sign),
        y0 + GLYPH_H * FONT_SCALE,
    )
}

/// Width in pixels of a sign's word: every glyph's advance but the last one's trailing blank cell.
fn lettering_width(sign: &Sign) -> usize {
    sign.word.len() * GLYPH_ADVANCE - FONT_SCALE
}

/// Top-left pixel of character `i` of a sign's text.
pub fn sign_char_origin(sign: &Sign, i: usize) -> (usize, usize) {
    let (x0, y0, _, _) = sign_board(sign);
    (x0 + BOARD_PAD_X + i * GLYPH_ADVANCE, y0 + BOARD_PAD_Y)
}

/// The picture of `scene`'s sign alone on the scene's background, RGB, `IMAGE_SIZE`² × 3 bytes: every pixel
/// the sign covers as a full render of the scene draws it (signs are drawn last, over everything).
/// `None` when the scene has no sign.
pub fn sign_picture(scene: &Scene) -> Option<Vec<u8>> {
    let sign = scene.sign.as_ref()?;
    let mut img = scene.background.rgb().repeat(IMAGE_SIZE * IMAGE_SIZE);
    draw_sign(&mut img, sign);
    Some(img)
}

pub fn draw_sign(img: &mut [u8], sign: &Sign) {
    let (x0, y0, w, h) = sign_board(sign);
    let board = sign.board.rgb();
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            img[(y * IMAGE_SIZE + x) * 3..][..3].copy_from_slice(&board);
        }
    }
    let ink = sign.board.ink().rgb();
    for (i, c) in sign.word.chars().enumerate() {
        let cells = glyph(c).expect("sign words use the font's characters");
        let (gx, gy) = sign_char_origin(sign, i);
        for (cy, row) in cells.iter().enumerate() {
            for (cx, &on) in row.iter().enumerate() {
                if !on {
                    continue;
                }
                for dy in 0..FONT_SCALE {
                    for dx in 0..FONT_SCALE {
                        let (x, y) = (gx + cx * FONT_SCALE + dx, gy + cy * FONT_SCALE + dy);
                        img[(y * IMAGE_SIZE + x) * 3..][..3].copy_from_slice(&ink);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interpret::scene::{Color, Layout};

    #[test]
    fn sign_lettering_holds_every_letter_pixel_and_lies_on_the_board() {
        let scene = |word: &str| Scene {
            layout: Layout::Free,
            background: Color::Blue,
            objects: vec![],
            sign: Some(Sign {
                word: word.into(),
                board: Color::Yellow,
                row: 2,
            }),
        };
        for (a, b) in [("STOP", "CAFE"), ("GO", "UP"), ("HELLO", "MUSIC")] {
            let sign = scene(a).sign.unwrap();
            let (x0, y0, x1, y1) = sign_lettering(&sign);
            let (bx, by, bw, bh) = sign_board(&sign);
            assert!(bx < x0 && x1 < bx + bw && by < y0 && y1 < by + bh, "{a}");
            let (img_a, img_b) = (
                sign_picture(&scene(a)).unwrap(),
                sign_picture(&scene(b)).unwrap(),
            );
            let mut differs_inside = false;
            for y in 0..IMAGE_SIZE {
                for x in 0..IMAGE_SIZE {
                    let p = (y * IMAGE_SIZE + x) * 3;
                    let inside = (x0..x1).contains(&x) && (y0..y1).contains(&y);
                    let differs = img_a[p..p + 3] != img_b[p..p + 3];
                    assert!(
                        inside || !differs,
                        "{a}/{b} differ outside the box at ({x}, {y})"
                    );
                    differs_inside |= differs;
                }
            }
            assert!(differs_inside, "{a}/{b}");
        }
    }

    #[test]
    fn sign_boards_fit_the_image() {
        for row in 0..3 {
            let sign = Sign {
                word: "HELLO".into(),
                board: Color::Yellow,
                row,
            };
            let (x0, y0, w, h) = sign_board(&sign);
            assert!(x0 + w <= IMAGE_SIZE && y0 + h <= IMAGE_SIZE, "row {row}");
            let cell = IMAGE_SIZE / 3;
            assert!(
                y0 >= row as usize * cell && y0 + h <= (row as usize + 1) * cell + 1,
                "row {row}"
            );
        }
    }
}
