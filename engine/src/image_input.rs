//! Images given to the model (edits, uploads, the "Check an image" panel): any still PNG, JPEG, GIF, WebP or
//! BMP, refused by name before decoding when the file, its declared pixels or its colour model are beyond
//! what the engine takes, then centre-cropped to a square and resized to the model's resolution.
//!
//! Memory is bounded by the declared size: a file of at most [`MAX_FILE_BYTES`] declaring at most
//! [`MAX_PIXELS`] (a 48-megapixel phone photo fits) is decoded once into at most [`MAX_DECODED_BYTES`] and
//! converted once to 8-bit RGBA (4 bytes a pixel): under 0.6 GB at the very worst, checked before decoding.

use std::io::Cursor;

use image::codecs::webp::WebPDecoder;
use image::codecs::{bmp::BmpDecoder, gif::GifDecoder, jpeg::JpegDecoder, png::PngDecoder};
use image::{
    AnimationDecoder, DynamicImage, ImageDecoder, ImageError, ImageFormat, Limits,
    imageops::FilterType,
};

use crate::error::{Result, TesseraError};

/// Largest file taken.
pub const MAX_FILE_BYTES: usize = 64 << 20;
/// Most pixels an image may declare: 8192 × 8192.
pub const MAX_PIXELS: u64 = 8192 * 8192;
/// Most bytes an image's decoded pixels may take in their own format (16-bit RGBA takes 8 a pixel).
pub const MAX_DECODED_BYTES: u64 = 256 << 20;

fn refused(reason: String) -> TesseraError {
    TesseraError::Image(reason)
}

fn unreadable(e: ImageError) -> TesseraError {
    TesseraError::Image(e.to_string())
}

/// Decode `bytes` and return `size`×`size` RGB bytes: alpha composited over white, the centre square kept.
pub fn load_rgb(bytes: &[u8], size: u32) -> Result<Vec<u8>> {
    Ok(fit(decode(bytes)?, size))
}

/// The format and declared size of an image, read from its header only, after the same checks as
/// [`decode`] makes before decoding.
pub fn probe(bytes: &[u8]) -> Result<(ImageFormat, u32, u32)> {
    let format = format_of(bytes)?;
    let (w, h) = match format {
        ImageFormat::Png => PngDecoder::new(Cursor::new(bytes))
            .map_err(unreadable)?
            .shape(),
        ImageFormat::Gif => GifDecoder::new(Cursor::new(bytes))
            .map_err(unreadable)?
            .shape(),
        ImageFormat::WebP => WebPDecoder::new(Cursor::new(bytes))
            .map_err(unreadable)?
            .shape(),
        ImageFormat::Jpeg => JpegDecoder::new(Cursor::new(bytes))
            .map_err(unreadable)?
            .shape(),
        _ => BmpDecoder::new(Cursor::new(bytes))
            .map_err(unreadable)?
            .shape(),
    }?;
    Ok((format, w, h))
}

/// An image's pixels, after the checks every image given to the engine passes: the file size, the format,
/// the declared pixels, one frame only, and no CMYK.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage> {
    let cursor = || Cursor::new(bytes);
    match format_of(bytes)? {
        ImageFormat::Png => {
            let decoder = PngDecoder::new(cursor()).map_err(unreadable)?;
            if decoder.is_apng().map_err(unreadable)? {
                return Err(animated("PNG"));
            }
            bounded(decoder)
        }
        ImageFormat::Gif => {
            let mut decoder = GifDecoder::new(cursor()).map_err(unreadable)?;
            decoder.shape()?;
            decoder.set_limits(limits()).map_err(unreadable)?;
            let mut frames = decoder.into_frames();
            let first = frames
                .next()
                .ok_or_else(|| refused("the GIF has no frames".into()))?
                .map_err(unreadable)?;
            if frames.next().is_some() {
                return Err(animated("GIF"));
            }
            Ok(DynamicImage::ImageRgba8(first.into_buffer()))
        }
        ImageFormat::WebP => {
            let decoder = WebPDecoder::new(cursor()).map_err(unreadable)?;
            if decoder.has_animation() {
                return Err(animated("WebP"));
            }
            bounded(decoder)
        }
        ImageFormat::Jpeg => {
            use zune_core::colorspace::ColorSpace;
            let mut header =
                zune_jpeg::JpegDecoder::new(zune_core::bytestream::ZCursor::new(bytes));
            header
                .decode_headers()
                .map_err(|e| refused(format!("the JPEG cannot be read: {e:?}")))?;
            if let Some(space @ (ColorSpace::CMYK | ColorSpace::YCCK)) = header.input_colorspace() {
                return Err(refused(format!(
                    "the JPEG is in {space:?}, a print colour model; save it as RGB and try again"
                )));
            }
            bounded(JpegDecoder::new(cursor()).map_err(unreadable)?)
        }
        _ => bounded(BmpDecoder::new(cursor()).map_err(unreadable)?),
    }
}

/// One of the formats the engine reads, by the file's first bytes, within the file-size cap.
fn format_of(bytes: &[u8]) -> Result<ImageFormat> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(refused(format!(
            "the file is {:.1} MB; images may be at most {} MiB",
            bytes.len() as f64 / 1e6,
            MAX_FILE_BYTES >> 20
        )));
    }
    match image::guess_format(bytes) {
        Ok(
            format @ (ImageFormat::Png
            | ImageFormat::Jpeg
            | ImageFormat::Gif
            | ImageFormat::WebP
            | ImageFormat::Bmp),
        ) => Ok(format),
        _ => Err(refused(
            "not an image this app can read (use PNG, JPEG, GIF, WebP or BMP)".into(),
        )),
    }
}

fn animated(format: &str) -> TesseraError {
    refused(format!(
        "the {format} is animated; use a still image (one frame)"
    ))
}

/// A decoder's declared size, checked against the budgets before anything is decoded.
trait Shape {
    fn shape(&self) -> Result<(u32, u32)>;
}

impl<D: ImageDecoder> Shape for D {
    fn shape(&self) -> Result<(u32, u32)> {
        let (w, h) = self.dimensions();
        let pixels = w as u64 * h as u64;
        if pixels > MAX_PIXELS {
            return Err(refused(format!(
                "it is {w}×{h} pixels ({:.1} M); images may have at most {:.1} M pixels (8192×8192)",
                pixels as f64 / 1e6,
                MAX_PIXELS as f64 / 1e6
            )));
        }
        let bytes = pixels * self.color_type().bytes_per_pixel() as u64;
        if bytes > MAX_DECODED_BYTES {
            return Err(refused(format!(
                "it is {w}×{h} pixels of {:?}, {} MB decoded; images may take at most {} MB",
                self.color_type(),
                bytes / 1_000_000,
                MAX_DECODED_BYTES / 1_000_000
            )));
        }
        Ok((w, h))
    }
}

fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    limits
}

/// The decoder's image, once its declared size is within the budget.
fn bounded(mut decoder: impl ImageDecoder) -> Result<DynamicImage> {
    decoder.shape()?;
    decoder.set_limits(limits()).map_err(unreadable)?;
    DynamicImage::from_decoder(decoder).map_err(unreadable)
}

fn fit(img: DynamicImage, size: u32) -> Vec<u8> {
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let side = w.min(h);
    // A view of the centre square: resizing reads it in place.
    let square = image::imageops::crop_imm(&rgba, (w - side) / 2, (h - side) / 2, side, side);
    let small = if side == size {
        square.to_image()
    } else {
        image::imageops::resize(&*square, size, size, FilterType::Triangle)
    };
    small
        .pixels()
        .flat_map(|p| {
            let a = p[3] as u32;
            [0, 1, 2].map(|c| ((p[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, rgba: [u8; 4]) -> Vec<u8> {
        let img = image::RgbaImage::from_pixel(w, h, image::Rgba(rgba));
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn any_size_becomes_the_model_size() {
        let rgb = load_rgb(&png(300, 200, [10, 20, 30, 255]), 128).unwrap();
        assert_eq!(rgb.len(), 128 * 128 * 3);
        assert_eq!(&rgb[..3], &[10, 20, 30]);
    }

    #[test]
    fn transparency_becomes_white() {
        let rgb = load_rgb(&png(8, 8, [0, 0, 0, 0]), 8).unwrap();
        assert!(rgb.iter().all(|&v| v == 255));
    }

    /// A PNG that declares `w`×`h` of `colour` (PNG colour type) at `depth` bits, with an `acTL` chunk when
    /// `animated`, and no pixel data worth the name: only its header is ever read.
    fn png_header(w: u32, h: u32, depth: u8, colour: u8, animated: bool) -> Vec<u8> {
        let chunk = |out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]| {
            out.extend((data.len() as u32).to_be_bytes());
            let start = out.len();
            out.extend(kind);
            out.extend(data);
            let crc = crc32fast::hash(&out[start..]);
            out.extend(crc.to_be_bytes());
        };
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = [w.to_be_bytes(), h.to_be_bytes()].concat();
        ihdr.extend([depth, colour, 0, 0, 0]);
        chunk(&mut out, b"IHDR", &ihdr);
        if animated {
            chunk(&mut out, b"acTL", &[0, 0, 0, 2, 0, 0, 0, 0]);
        }
        chunk(
            &mut out,
            b"IDAT",
            &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        );
        chunk(&mut out, b"IEND", &[]);
        out
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../tests/fixtures/images/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn refusal(bytes: &[u8]) -> String {
        let e = load_rgb(bytes, 32).unwrap_err();
        assert_eq!(e.name(), "BadImage");
        e.to_string()
    }

    #[test]
    fn images_declaring_too_many_pixels_are_refused_from_the_header() {
        // Grey 8-bit, grey 16-bit and RGBA 8-bit, at the old side limit and one past it.
        for (depth, colour) in [(8, 0), (16, 0), (8, 6)] {
            for side in [16384, 16385] {
                let e = refusal(&png_header(side, side, depth, colour, false));
                assert!(
                    e.contains(&format!("{side}×{side} pixels")) && e.contains("67.1 M"),
                    "{e}"
                );
            }
        }
        // Within the pixel budget, 16-bit RGBA is held to the decoded-bytes budget.
        let e = refusal(&png_header(8000, 8000, 16, 6, false));
        assert!(
            e.contains("Rgba16, 512 MB decoded") && e.contains("at most 268 MB"),
            "{e}"
        );
        // Within both, the same header gets as far as its (empty) pixel data.
        let e = refusal(&png_header(8000, 8000, 8, 0, false));
        assert!(!e.contains("pixels"), "{e}");
        let e = probe(&png_header(20000, 4000, 8, 0, false))
            .unwrap_err()
            .to_string();
        assert!(e.contains("20000×4000"), "{e}");
        assert_eq!(
            probe(&png(300, 200, [0, 0, 0, 255])).unwrap(),
            (ImageFormat::Png, 300, 200)
        );
    }

    #[test]
    fn animations_cmyk_and_oversized_files_are_refused_by_name() {
        for name in ["animated.gif", "animated.webp", "animated.png"] {
            let e = refusal(&fixture(name));
            assert!(e.contains("animated"), "{name}: {e}");
        }
        assert!(refusal(&png_header(64, 64, 8, 2, true)).contains("PNG is animated"));
        let e = refusal(&fixture("cmyk.jpg"));
        assert!(e.contains("CMYK") && e.contains("RGB"), "{e}");
        let mut huge = png(8, 8, [1, 2, 3, 255]);
        huge.resize(MAX_FILE_BYTES + 1, 0);
        let e = refusal(&huge);
        assert!(
            e.contains("is 67.1 MB") && e.contains("at most 64 MiB"),
            "{e}"
        );
        // A still WebP of one frame is taken.
        let rgb = load_rgb(&fixture("still.webp"), 8).unwrap();
        assert_eq!(&rgb[..3], &[0, 128, 0]);
    }

    #[test]
    fn non_images_are_refused_with_a_reason() {
        let e = load_rgb(b"hello, I am text", 128).unwrap_err().to_string();
        assert!(e.contains("not an image"), "{e}");
        let mut truncated = png(64, 64, [1, 2, 3, 255]);
        truncated.truncate(truncated.len() / 2);
        assert!(load_rgb(&truncated, 128).is_err());
    }
}
