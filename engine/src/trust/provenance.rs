//! Provenance for every image the engine writes: an XMP packet in a PNG `iTXt` chunk (keyword
//! `XML:com.adobe.xmp`, the place exiftool and other readers look) stating the IPTC digital source type
//! `trainedAlgorithmicMedia`, the model id and weights hash, the seed and sampling settings, a salted hash of
//! the prompt (not the prompt itself: the image should not leak what was typed; salted per image, so a
//! dictionary of this small world's prompts cannot be hashed once and looked up) and, when the model was
//! prompted with the prompt as interpreted, a hash of that text too, and when it was made
//! (`xmp:CreateDate`, set by the front door that knows the clock).

use crate::generation::sampler::Settings;
use crate::model::sha256_hex;

/// The keyword of the `iTXt` chunk that holds a PNG's XMP packet.
pub const XMP_KEYWORD: &str = "XML:com.adobe.xmp";

pub const DIGITAL_SOURCE_TYPE: &str =
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";

/// What an image claims about where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Provenance {
    pub model_id: String,
    pub model_sha256: String,
    pub settings: Settings,
    /// 32 random hex digits drawn for this image, hashed in front of the prompt and the text the model saw;
    /// `None` in images made before hashes were salted.
    pub salt: Option<String>,
    /// [`Provenance::text_sha256`] of the prompt.
    pub prompt_sha256: String,
    /// [`Provenance::text_sha256`] of the text the model saw, when that was not the prompt as typed (the
    /// interpreter's canonical caption); `None`: the model saw the prompt.
    pub model_text_sha256: Option<String>,
    /// For edits: sha256 of the edited image's tokens (little-endian u32s).
    pub source_sha256: Option<String>,
    /// When the image was made, RFC 3339 in UTC.
    pub created: Option<String>,
}

/// A fresh salt: 16 bytes from the system's randomness, as 32 hex digits.
pub fn new_salt() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the system has randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Provenance {
    /// The claims of an image drawn from `prompt`, its hashes salted with `salt` ([`new_salt`]).
    pub fn new(
        model_id: &str,
        model_sha256: &str,
        settings: &Settings,
        prompt: &str,
        source: Option<&[u32]>,
        salt: &str,
    ) -> Self {
        Provenance {
            model_id: model_id.into(),
            model_sha256: model_sha256.into(),
            settings: settings.clone(),
            prompt_sha256: salted_sha256(Some(salt), prompt),
            salt: Some(salt.into()),
            model_text_sha256: None,
            source_sha256: source
                .map(|t| sha256_hex(&t.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>())),
            created: None,
        }
    }

    /// The same claims for a model that was prompted with `model_text` rather than the prompt.
    pub fn model_saw(mut self, model_text: &str) -> Self {
        let hash = self.text_sha256(model_text);
        self.model_text_sha256 = (hash != self.prompt_sha256).then_some(hash);
        self
    }

    /// sha256 of the salt's hex digits followed by `text`'s UTF-8 bytes (of `text` alone without a salt):
    /// how the prompt and the model's text are recorded, and how a prompt offered is checked.
    pub fn text_sha256(&self, text: &str) -> String {
        salted_sha256(self.salt.as_deref(), text)
    }

    /// The same claims with the time the image was made (RFC 3339, UTC).
    pub fn created_at(mut self, rfc3339: impl Into<String>) -> Self {
        self.created = Some(rfc3339.into());
        self
    }

    /// The claims as one JSON object (`modelId`, `modelSha256`, `seed`, `temperature`, `topK`, `topP`, `guidance`,
    /// `keep`, `salt`, `promptSha256`, `modelTextSha256`, `sourceTokensSha256`, `created`; absent values are
    /// `null`): the C2PA manifest's generation assertion and what the browser's `readProvenance` returns.
    pub fn claims_json(&self) -> serde_json::Value {
        let s = &self.settings;
        serde_json::json!({
            "modelId": self.model_id,
            "modelSha256": self.model_sha256,
            "seed": s.seed,
            "temperature": s.temperature,
            "topK": s.top_k,
            "topP": s.top_p,
            "guidance": s.guidance,
            "keep": s.keep,
            "salt": self.salt,
            "promptSha256": self.prompt_sha256,
            "modelTextSha256": self.model_text_sha256,
            "sourceTokensSha256": self.source_sha256,
            "created": self.created,
        })
    }

    /// The XMP packet.
    pub fn xmp(&self) -> String {
        let s = &self.settings;
        let top_k = s.top_k.map_or("none".to_string(), |k| k.to_string());
        let source = self.source_sha256.as_ref().map_or(String::new(), |h| {
            format!("\n      tessera:SourceTokensSha256=\"{h}\"")
        });
        let model_text = self.model_text_sha256.as_ref().map_or(String::new(), |h| {
            format!("\n      tessera:ModelTextSha256=\"{h}\"")
        });
        let salt = self.salt.as_ref().map_or(String::new(), |salt| {
            format!("\n      tessera:Salt=\"{salt}\"")
        });
        let created = self.created.as_ref().map_or(String::new(), |t| {
            format!("\n      xmp:CreateDate=\"{}\"", xml_escape(t))
        });
        format!(
            r#"<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
  <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
    <rdf:Description rdf:about=""
      xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
      xmlns:tessera="https://tessera.invalid/ns/1.0/"
      xmlns:xmp="http://ns.adobe.com/xap/1.0/"
      Iptc4xmpExt:DigitalSourceType="{DIGITAL_SOURCE_TYPE}"
      tessera:Model="{}"
      tessera:ModelSha256="{}"
      tessera:Seed="{}"
      tessera:Temperature="{}"
      tessera:TopK="{top_k}"
      tessera:TopP="{}"
      tessera:Guidance="{}"
      tessera:Keep="{}"{salt}
      tessera:PromptSha256="{}"{model_text}{source}{created}/>
  </rdf:RDF>
</x:xmpmeta>
<?xpacket end="r"?>"#,
            xml_escape(&self.model_id),
            self.model_sha256,
            s.seed,
            s.temperature,
            s.top_p,
            s.guidance,
            s.keep,
            self.prompt_sha256,
        )
    }
}

impl Provenance {
    /// The claims of an XMP packet this engine wrote (the `tessera:` attributes and the IPTC source type).
    /// Reads attributes only; a packet without them, or with a malformed value, is an error that says which.
    pub fn from_xmp(xmp: &str) -> Result<Self, String> {
        let attr = |name: &str| -> Result<String, String> {
            let key = format!("{name}=\"");
            let start = xmp
                .find(&key)
                .ok_or(format!("the metadata has no {name}"))?
                + key.len();
            let len = xmp[start..]
                .find('"')
                .ok_or(format!("{name} is not closed"))?;
            Ok(xml_unescape(&xmp[start..start + len]))
        };
        let number = |name: &str| -> Result<f32, String> {
            attr(name)?
                .parse()
                .map_err(|_| format!("{name} is not a number"))
        };
        if attr("Iptc4xmpExt:DigitalSourceType")? != DIGITAL_SOURCE_TYPE {
            return Err("the digital source type is not trainedAlgorithmicMedia".into());
        }
        let top_k = match attr("tessera:TopK")?.as_str() {
            "none" => None,
            k => Some(k.parse().map_err(|_| "tessera:TopK is not a number")?),
        };
        Ok(Provenance {
            model_id: attr("tessera:Model")?,
            model_sha256: attr("tessera:ModelSha256")?,
            settings: Settings {
                seed: attr("tessera:Seed")?
                    .parse()
                    .map_err(|_| "tessera:Seed is not a number")?,
                temperature: number("tessera:Temperature")?,
                top_k,
                top_p: number("tessera:TopP")?,
                // Written as `Cfg` before the guidance scale had its name.
                guidance: match attr("tessera:Guidance") {
                    Ok(_) => number("tessera:Guidance")?,
                    Err(_) => number("tessera:Cfg")?,
                },
                // Written since edits could keep their source; an older image was made without.
                keep: match attr("tessera:Keep") {
                    Ok(_) => number("tessera:Keep")?,
                    Err(_) => 0.0,
                },
            },
            salt: match attr("tessera:Salt") {
                Ok(salt) if is_salt(&salt) => Some(salt),
                Ok(_) => return Err("tessera:Salt is not 32 hex digits".into()),
                Err(_) => None,
            },
            prompt_sha256: attr("tessera:PromptSha256")?,
            model_text_sha256: attr("tessera:ModelTextSha256").ok(),
            source_sha256: attr("tessera:SourceTokensSha256").ok(),
            created: attr("xmp:CreateDate").ok(),
        })
    }
}

fn salted_sha256(salt: Option<&str>, text: &str) -> String {
    sha256_hex(format!("{}{text}", salt.unwrap_or_default()).as_bytes())
}

fn is_salt(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn xml_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Encode RGB bytes as a PNG carrying `provenance` in XMP.
pub fn png_with_provenance(
    rgb: &[u8],
    width: u32,
    height: u32,
    provenance: &Provenance,
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.add_itxt_chunk(XMP_KEYWORD.into(), provenance.xmp())
            .expect("a valid iTXt keyword");
        let mut writer = enc.write_header().expect("writing to memory cannot fail");
        writer
            .write_image_data(rgb)
            .expect("the buffer matches the declared size");
    }
    out
}

/// The XMP packet of a PNG, if it has one.
pub fn read_xmp(png_bytes: &[u8]) -> Option<String> {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    xmp_in(decoder.read_info().ok()?.info())
}

/// The XMP packet among the text chunks of a PNG's header (those before its pixels).
pub fn xmp_in(info: &png::Info) -> Option<String> {
    info.utf8_text
        .iter()
        .find(|t| t.keyword == XMP_KEYWORD)
        .and_then(|t| t.get_text().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_carries_the_digital_source_type_and_the_settings() {
        let p = Provenance::new(
            "m<1>",
            "abc",
            &Settings {
                seed: 42,
                ..Settings::default()
            },
            "a red circle",
            None,
            &new_salt(),
        );
        let png = png_with_provenance(&[0u8; 4 * 4 * 3], 4, 4, &p);
        let xmp = read_xmp(&png).expect("an XMP packet");
        assert!(xmp.contains(&format!(
            "Iptc4xmpExt:DigitalSourceType=\"{DIGITAL_SOURCE_TYPE}\""
        )));
        assert!(xmp.contains("tessera:Seed=\"42\""));
        assert!(xmp.contains("tessera:Model=\"m&lt;1&gt;\""));
        assert!(xmp.contains(&p.text_sha256("a red circle")));
        assert!(
            !xmp.contains("a red circle"),
            "the prompt itself is not stored"
        );
        assert!(
            !xmp.contains(&sha256_hex(b"a red circle")),
            "nor its unsalted hash, which a dictionary of prompts would reverse"
        );
        let img = image::load_from_memory(&png).unwrap();
        assert_eq!((img.width(), img.height()), (4, 4));
    }

    #[test]
    fn each_image_salts_its_hashes_anew() {
        let settings = Settings::default();
        let a = Provenance::new("m", "ab", &settings, "a red circle", None, &new_salt());
        let b = Provenance::new("m", "ab", &settings, "a red circle", None, &new_salt());
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.prompt_sha256, b.prompt_sha256);
        let salt = a.salt.clone().unwrap();
        assert_eq!(
            a.prompt_sha256,
            sha256_hex(format!("{salt}a red circle").as_bytes())
        );
        // The model's text is salted alike, and recorded only when it is not the prompt.
        let read = a.clone().model_saw("one big red circle in the center");
        assert_eq!(
            read.model_text_sha256,
            Some(sha256_hex(
                format!("{salt}one big red circle in the center").as_bytes()
            ))
        );
        assert_eq!(a.clone().model_saw("a red circle").model_text_sha256, None);
    }

    #[test]
    fn the_claims_read_back_exactly() {
        let settings = Settings {
            seed: 9,
            temperature: 0.7,
            top_k: Some(40),
            top_p: 0.95,
            guidance: 3.0,
            keep: 2.5,
        };
        for source in [None, Some(&[1u32, 2, 3][..])] {
            let p = Provenance::new("a&\"b", "f00d", &settings, "x", source, &new_salt())
                .created_at("2026-11-28T12:00:00Z");
            assert_eq!(Provenance::from_xmp(&p.xmp()), Ok(p));
        }
        let forged = Provenance::new("m", "ab", &settings, "x", None, &new_salt())
            .xmp()
            .replace("tessera:Seed=\"9\"", "tessera:Seed=\"nine\"");
        assert_eq!(
            Provenance::from_xmp(&forged),
            Err("tessera:Seed is not a number".into())
        );
        // An image made before edits could keep their source was made without: keep 0.
        let p = Provenance::new("m", "ab", &settings, "x", None, &new_salt());
        let older = p.xmp().replace("\n      tessera:Keep=\"2.5\"", "");
        assert_ne!(older, p.xmp());
        let read = Provenance::from_xmp(&older).unwrap();
        assert_eq!((read.settings.keep, read.settings.guidance), (0.0, 3.0));
        // An image made before the guidance scale had its name records it as `Cfg`.
        let named_cfg = p.xmp().replace("tessera:Guidance=", "tessera:Cfg=");
        assert_ne!(named_cfg, p.xmp());
        assert_eq!(
            Provenance::from_xmp(&named_cfg).unwrap().settings.guidance,
            3.0
        );
        // An image made before hashes were salted: the prompt's own sha256.
        let unsalted = p.xmp().replace(
            &format!("\n      tessera:Salt=\"{}\"", p.salt.as_deref().unwrap()),
            "",
        );
        assert_ne!(unsalted, p.xmp());
        let read = Provenance::from_xmp(&unsalted).unwrap();
        assert_eq!(read.salt, None);
        assert_eq!(read.text_sha256("x"), sha256_hex(b"x"));
        let short = p.xmp().replace("tessera:Salt=\"", "tessera:Salt=\"0");
        assert_eq!(
            Provenance::from_xmp(&short),
            Err("tessera:Salt is not 32 hex digits".into())
        );
        assert_eq!(
            Provenance::from_xmp("<x/>"),
            Err("the metadata has no Iptc4xmpExt:DigitalSourceType".into())
        );
    }
}
