//! The browser's Content Credentials (`pkg/credentials/`, driven by `www/credentials.js`): certificates for
//! a key WebCrypto holds, manifests signed by it, and manifests read back. The private key never enters
//! the wasm: signing calls back into JavaScript, which asks WebCrypto.

use std::io::Cursor;

use js_sys::{Array, Function, Promise, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::{Credentials, SubjectKey};

/// The chain (`[end-entity DER, authority DER]`) for a WebCrypto ECDSA P-256 public key, exported `raw`
/// (65 bytes, uncompressed), issued by a fresh local authority; `year`: the current year (UTC).
#[wasm_bindgen(js_name = issueCertificates)]
pub fn issue_certificates(p256_public: &[u8], year: i32) -> Result<Array, JsValue> {
    if p256_public.len() != 65 || p256_public[0] != 4 {
        return Err(JsValue::from_str(&format!(
            "the public key is {} bytes; an uncompressed P-256 point is 65, starting 0x04",
            p256_public.len()
        )));
    }
    let subject = SubjectKey::P256(p256_public.to_vec());
    let chain = crate::issue_chain(&subject, "Tessera image signer (this browser)", year)
        .map_err(|e| JsValue::from_str(&e))?;
    Ok(chain.iter().map(|der| Uint8Array::from(&der[..])).collect())
}

/// `png` with a signed manifest embedded, claiming `claims_json` (the engine's `readProvenance` of the
/// same file); `chain`: the DER certificates of [`issue_certificates`]; `sign(bytes) → Promise<Uint8Array>`:
/// an ES256 signature of `bytes` in IEEE P1363 form (WebCrypto's own).
#[wasm_bindgen(js_name = signPng)]
pub async fn sign_png(
    png: Vec<u8>,
    title: String,
    claims_json: String,
    chain: Array,
    sign: Function,
) -> Result<Uint8Array, JsValue> {
    let claims = claims_from(&claims_json)?;
    let signer = WebSigner {
        chain: chain.iter().map(|c| Uint8Array::new(&c).to_vec()).collect(),
        sign,
    };
    let mut builder = crate::builder(&title, &claims).map_err(|e| JsValue::from_str(&e))?;
    let mut signed = Cursor::new(Vec::with_capacity(png.len() + 16_384));
    builder
        .sign_async(&signer, "image/png", &mut Cursor::new(png), &mut signed)
        .await
        .map_err(|e| JsValue::from_str(&crate::signing_failed(e)))?;
    Ok(Uint8Array::from(&signed.into_inner()[..]))
}

/// What `png`'s manifest says, as JSON: `null` without one; else `{valid, failures, signer,
/// certificateSha256, signedAt, digitalSourceType, problem}`, `problem` saying why it does not vouch for
/// `claims_json` (the XMP's claims), `null` when a valid signature covers them. Throws when the manifest
/// cannot be parsed.
#[wasm_bindgen(js_name = readCredentials)]
pub async fn read_credentials(png: Vec<u8>, claims_json: String) -> Result<String, JsValue> {
    let claims = claims_from(&claims_json)?;
    let manifest = match crate::read_async(&png)
        .await
        .map_err(|e| JsValue::from_str(&e))?
    {
        Credentials::Absent => return Ok("null".into()),
        Credentials::Present(m) => m,
    };
    Ok(serde_json::json!({
        "valid": manifest.valid,
        "failures": manifest.failures,
        "signer": manifest.signer,
        "certificateSha256": manifest.certificate_sha256,
        "signedAt": manifest.signed_at,
        "digitalSourceType": manifest.digital_source_type,
        "problem": manifest.problem_with(&claims),
    })
    .to_string())
}

/// The generation claims the page passes as JSON text (the engine's `readProvenance` of the file).
fn claims_from(json: &str) -> Result<serde_json::Value, JsValue> {
    serde_json::from_str(json)
        .map_err(|e| JsValue::from_str(&format!("the claims are not JSON: {e}")))
}

/// sha256 of a certificate's DER, hex: what `readCredentials` names a signer by.
#[wasm_bindgen(js_name = certificateSha256)]
pub fn certificate_sha256(der: &[u8]) -> String {
    crate::certificate_sha256(der)
}

/// A signer whose key is WebCrypto's: c2pa hands it the bytes to sign, JavaScript signs them.
struct WebSigner {
    chain: Vec<Vec<u8>>,
    sign: Function,
}

#[async_trait::async_trait(?Send)]
impl c2pa::AsyncSigner for WebSigner {
    async fn sign(&self, data: Vec<u8>) -> c2pa::Result<Vec<u8>> {
        let failed = |e: JsValue| {
            c2pa::Error::BadParam(format!(
                "the browser's key did not sign: {}",
                e.as_string()
                    .or_else(|| e.dyn_ref::<js_sys::Error>().map(|e| e.message().into()))
                    .unwrap_or_default()
            ))
        };
        let promise: Promise = self
            .sign
            .call1(&JsValue::NULL, &Uint8Array::from(&data[..]))
            .map_err(failed)?
            .dyn_into()
            .map_err(failed)?;
        let signature = JsFuture::from(promise).await.map_err(failed)?;
        Ok(Uint8Array::new(&signature).to_vec())
    }

    fn alg(&self) -> c2pa::SigningAlg {
        c2pa::SigningAlg::Es256
    }

    fn certs(&self) -> c2pa::Result<Vec<Vec<u8>>> {
        Ok(self.chain.clone())
    }

    fn reserve_size(&self) -> usize {
        // The certificates, a 64-byte signature and the COSE structure around them.
        self.chain.iter().map(Vec::len).sum::<usize>() + 4096
    }
}
