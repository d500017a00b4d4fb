//! Images given to the model (edits, uploads): any format the `image` crate reads, bounded in size,
//! centre-cropped to a square and resized to the model's resolution.

use image::{DynamicImage, ImageReader, Limits, imageops::FilterType};

use crate::error::{Result, TesseraError};

/// Larger images are refused before decoding (a 16384² RGBA image is 1 GiB).
pub const MAX_SIDE: u32 = 16384;
const MAX_DECODED_BYTES: u64 = 1 << 30;

/// Decode `bytes` and return `size`×`size` RGB bytes: alpha composited over white, the centre square kept.
pub fn load_rgb(bytes: &[u8], size: u32) -> Result<Vec<u8>> {
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| TesseraError::Image(e.to_string()))?;
    if reader.format().is_none() {
        return Err(TesseraError::Image(
            "not an image this app can read (use PNG, JPEG, GIF, WebP or BMP)".into(),
        ));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| TesseraError::Image(e.to_string()))?;
    Ok(fit(img, size))
}

fn fit(img: DynamicImage, size: u32) -> Vec<u8> {
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    let side = w.min(h);
    let square =
        image::imageops::crop_imm(&rgba, (w - side) / 2, (h - side) / 2, side, side).to_image();
    let small = if side == size {
        square
    } else {
        image::imageops::resize(&square, size, size, FilterType::Triangle)
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

    #[test]
    fn non_images_are_refused_with_a_reason() {
        let e = load_rgb(b"hello, I am text", 128).unwrap_err().to_string();
        assert!(e.contains("not an image"), "{e}");
        let mut truncated = png(64, 64, [1, 2, 3, 255]);
        truncated.truncate(truncated.len() / 2);
        assert!(load_rgb(&truncated, 128).is_err());
    }
}
