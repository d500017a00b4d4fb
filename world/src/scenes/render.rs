//! Draws a [`Scene`] into RGB pixels. Shapes are signed-distance functions with one pixel of analytic
//! anti-aliasing; signs (integer-aligned boards with the bitmap font scaled ×3) are drawn by the engine's
//! [`super::sign`]. Deterministic: the same scene gives the same bytes, which is what makes "everything not
//! named stays pixel-identical" testable.

use super::sign::draw_sign;
use super::{IMAGE_SIZE, Layout, Object, Scene, Shape, Size};

/// An RGB image, row-major, `IMAGE_SIZE`² × 3 bytes.
pub type Rgb = Vec<u8>;

/// Centre (x, y) and radius in pixels of an object's cell.
pub fn object_geometry(layout: Layout, o: &Object) -> (f32, f32, f32) {
    let cell = IMAGE_SIZE as f32 / layout.n() as f32;
    let radius = match layout {
        Layout::Free => match o.size {
            Size::Big => 17.0,
            Size::Small => 10.5,
        },
        Layout::Grid(_) => 0.36 * cell,
    };
    (
        (o.col as f32 + 0.5) * cell,
        (o.row as f32 + 0.5) * cell,
        radius,
    )
}

pub fn render(scene: &Scene) -> Rgb {
    let mut img = vec![0u8; IMAGE_SIZE * IMAGE_SIZE * 3];
    let bg = scene.background.rgb();
    for px in img.chunks_exact_mut(3) {
        px.copy_from_slice(&bg);
    }
    for o in &scene.objects {
        draw_object(&mut img, scene.layout, o);
    }
    if let Some(sign) = &scene.sign {
        draw_sign(&mut img, sign);
    }
    img
}

fn draw_object(img: &mut [u8], layout: Layout, o: &Object) {
    let (cx, cy, r) = object_geometry(layout, o);
    let outline = Outline::new(o.shape, r);
    let color = o.color.rgb();
    let reach = r * 1.25 + 2.0;
    let lo = |c: f32| (c - reach).floor().max(0.0) as usize;
    let hi = |c: f32| ((c + reach).ceil() as usize).min(IMAGE_SIZE);
    for y in lo(cy)..hi(cy) {
        for x in lo(cx)..hi(cx) {
            let a = outline.coverage(x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            if a > 0.0 {
                let p = &mut img[(y * IMAGE_SIZE + x) * 3..][..3];
                for c in 0..3 {
                    p[c] = (p[c] as f32 * (1.0 - a) + color[c] as f32 * a).round() as u8;
                }
            }
        }
    }
}

/// A shape of radius `r` ready to be sampled: polygons are built once, not per pixel.
pub struct Outline {
    shape: Shape,
    r: f32,
    polygon: Vec<(f32, f32)>,
}

impl Outline {
    pub fn new(shape: Shape, r: f32) -> Self {
        let polygon = match shape {
            Shape::Triangle => regular(3, 1.18 * r, 1.0, -90.0, 0.18 * r),
            Shape::Star => regular(5, 1.15 * r, 0.45, -90.0, 0.07 * r),
            Shape::Hexagon => regular(6, 1.02 * r, 1.0, 0.0, 0.0),
            Shape::Diamond => vec![
                (0.0, -1.15 * r),
                (0.8 * r, 0.0),
                (0.0, 1.15 * r),
                (-0.8 * r, 0.0),
            ],
            Shape::Heart => heart(r),
            Shape::Circle | Shape::Square | Shape::Cross | Shape::Ring => vec![],
        };
        Outline { shape, r, polygon }
    }

    /// Signed distance in pixels from (`x`, `y`) (relative to the centre, y down) to the outline; negative
    /// inside.
    pub fn distance(&self, x: f32, y: f32) -> f32 {
        let r = self.r;
        let len = (x * x + y * y).sqrt();
        match self.shape {
            Shape::Circle => len - r,
            Shape::Square => sd_box(x, y, 0.82 * r, 0.82 * r),
            Shape::Cross => sd_box(x, y, r, 0.34 * r).min(sd_box(x, y, 0.34 * r, r)),
            Shape::Ring => (len - 0.75 * r).abs() - 0.25 * r,
            _ => sd_polygon(&self.polygon, x, y),
        }
    }

    /// Share of the pixel at offset (`x`, `y`) that the shape covers: 1 inside, 0 outside, linear across the
    /// one-pixel edge.
    pub fn coverage(&self, x: f32, y: f32) -> f32 {
        (0.5 - self.distance(x, y)).clamp(0.0, 1.0)
    }
}

fn sd_box(x: f32, y: f32, hw: f32, hh: f32) -> f32 {
    let (dx, dy) = (x.abs() - hw, y.abs() - hh);
    let outside = (dx.max(0.0).powi(2) + dy.max(0.0).powi(2)).sqrt();
    outside + dx.max(dy).min(0.0)
}

/// A regular polygon (or a star when `inner` < 1: every other vertex at `inner` × the radius), first vertex
/// at `start_deg`, shifted down by `dy` so its visual centre sits on the cell centre.
fn regular(points: usize, radius: f32, inner: f32, start_deg: f32, dy: f32) -> Vec<(f32, f32)> {
    let n = if inner < 1.0 { points * 2 } else { points };
    (0..n)
        .map(|i| {
            let a = (start_deg + 360.0 * i as f32 / n as f32).to_radians();
            let rr = if inner < 1.0 && i % 2 == 1 {
                radius * inner
            } else {
                radius
            };
            (rr * a.cos(), rr * a.sin() + dy)
        })
        .collect()
}

/// The classic parametric heart (x = 16 sin³t, y = 13 cos t − 5 cos 2t − 2 cos 3t − cos 4t), as a
/// 48-gon scaled to radius `r` and centred on its bounding box.
fn heart(r: f32) -> Vec<(f32, f32)> {
    let s = 1.1 * r / 16.0;
    (0..48)
        .map(|i| {
            let t = std::f32::consts::TAU * i as f32 / 48.0;
            let x = 16.0 * t.sin().powi(3);
            let y =
                13.0 * t.cos() - 5.0 * (2.0 * t).cos() - 2.0 * (3.0 * t).cos() - (4.0 * t).cos();
            // The curve spans y ∈ [−17, 11.92]; flip for y-down and centre that span on 0.
            (x * s, (-y - 2.54) * s)
        })
        .collect()
}

/// Exact signed distance to a simple polygon (convex or not), after Inigo Quilez's `sdPolygon`.
fn sd_polygon(v: &[(f32, f32)], px: f32, py: f32) -> f32 {
    let dot = |a: (f32, f32), b: (f32, f32)| a.0 * b.0 + a.1 * b.1;
    let mut d = dot((px - v[0].0, py - v[0].1), (px - v[0].0, py - v[0].1));
    let mut sign = 1.0;
    let mut j = v.len() - 1;
    for i in 0..v.len() {
        let e = (v[j].0 - v[i].0, v[j].1 - v[i].1);
        let w = (px - v[i].0, py - v[i].1);
        let t = (dot(w, e) / dot(e, e)).clamp(0.0, 1.0);
        let b = (w.0 - e.0 * t, w.1 - e.1 * t);
        d = d.min(dot(b, b));
        let c = [py >= v[i].1, py < v[j].1, e.0 * w.1 > e.1 * w.0];
        if c.iter().all(|&x| x) || c.iter().all(|&x| !x) {
            sign = -sign;
        }
        j = i;
    }
    sign * d.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenes::{Color, Scene};

    #[test]
    fn shapes_have_distinct_filled_areas_of_similar_size() {
        let r = 17.0;
        let area = |s: Shape| -> f32 {
            let outline = Outline::new(s, r);
            let mut a = 0.0;
            for y in -30..30 {
                for x in -30..30 {
                    a += outline.coverage(x as f32 + 0.5, y as f32 + 0.5);
                }
            }
            a
        };
        let circle = area(Shape::Circle);
        assert!(
            (circle - std::f32::consts::PI * r * r).abs() < 3.0,
            "circle area {circle}"
        );
        for s in Shape::ALL {
            let a = area(s);
            assert!(
                a > 0.35 * circle && a < 1.3 * circle,
                "{s:?} area {a} vs circle {circle}"
            );
            // Every shape's centre is inside it except the ring's.
            assert_eq!(
                Outline::new(s, r).distance(0.0, 0.0) < 0.0,
                s != Shape::Ring,
                "{s:?}"
            );
        }
    }

    #[test]
    fn objects_stay_inside_their_cells() {
        for layout in [
            Layout::Free,
            Layout::Grid(2),
            Layout::Grid(3),
            Layout::Grid(4),
        ] {
            for s in Shape::ALL {
                let o = Object {
                    shape: s,
                    color: Color::Red,
                    size: Size::Big,
                    row: 0,
                    col: 0,
                };
                let scene = Scene {
                    background: Color::White,
                    layout,
                    objects: vec![o],
                    sign: None,
                };
                let img = render(&scene);
                let cell = IMAGE_SIZE / layout.n() as usize;
                for y in 0..IMAGE_SIZE {
                    for x in 0..IMAGE_SIZE {
                        if x >= cell || y >= cell {
                            assert_eq!(
                                &img[(y * IMAGE_SIZE + x) * 3..][..3],
                                &Color::White.rgb(),
                                "{s:?} {layout:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}
