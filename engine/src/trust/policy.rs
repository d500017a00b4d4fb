//! The prompt policy: what the app and the CLI refuse to draw, checked before any generation (and before an
//! edit) on the prompt text alone. The rules are data (`policy.json`, the default, or any file of the same
//! shape): categories with English and Chinese terms, each with the reason the user is shown.
//!
//! Matching is on a normalised form of the prompt, so the easy evasions fail: NFKC folds full-width and
//! compatibility characters (`ｎｕｄｅ` → `nude`), accents are dropped (`nüde`), case is folded, invisible
//! characters (zero-width spaces, soft hyphens, Hangul fillers, variation selectors) are dropped, the
//! policy's `equivalents` map look-alikes from other scripts, digits and traditional Chinese characters to
//! the forms its terms use (Cyrillic `а`, `0` → `o`, `殺` → `杀`), runs of one- and two-letter fragments are
//! joined (`n u d e`, `n.u.de`, `nu d e`), and a term of several words also matches them run together
//! (`killmyself`). Terms match whole words, so `skill` never matches `kill`; terms in scripts written without
//! spaces (Chinese) match anywhere in the prompt with spaces, punctuation and other scripts removed (`血a腥`).

use std::collections::HashMap;

use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use crate::error::{Result, TesseraError};

/// The policy the app and the CLI use unless told otherwise.
pub const DEFAULT_POLICY: &str = include_str!("policy.json");

#[derive(Debug, Deserialize)]
struct PolicyFile {
    version: u32,
    #[serde(default)]
    equivalents: HashMap<String, String>,
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
struct RuleFile {
    id: String,
    category: String,
    reason: String,
    all: Vec<Vec<String>>,
}

/// One term, normalised like the prompts it is matched against.
#[derive(Debug)]
struct Term {
    /// As written in the policy file (what a refusal quotes).
    written: String,
    /// Normalised words (`"kill myself"` → `["kill", "myself"]`); empty for a term matched as a substring.
    words: Vec<String>,
    /// A trailing `*` in the file: the last word matches any word that begins with it.
    prefix: bool,
    /// For terms in scripts without spaces: the normalised term with spaces and punctuation removed.
    squashed: Option<String>,
    /// The term is in an unspaced script alone: it is looked for among the prompt's unspaced characters only.
    unspaced_only: bool,
}

#[derive(Debug)]
struct Rule {
    id: String,
    category: String,
    reason: String,
    groups: Vec<Vec<Term>>,
}

/// A loaded, checked policy.
#[derive(Debug)]
pub struct Policy {
    equivalents: HashMap<char, String>,
    rules: Vec<Rule>,
}

/// A prompt in the forms terms are matched against.
struct Normalised {
    /// Words, lower case; a change between a spaced and an unspaced script also ends a word.
    words: Vec<String>,
    /// Runs of one- and two-letter fragments with a single letter among them, joined (`"a n u de"` →
    /// `"anude"`): a term spelled out matches inside one.
    spelled: Vec<String>,
    /// Every two neighbouring words joined (`"be heading"` → `"beheading"`): a one-word term split in two.
    pairs: Vec<String>,
    /// Every letter and digit, nothing between them (for Chinese terms).
    squashed: String,
    /// The characters of unspaced scripts alone (for Chinese terms, past Latin letters put between them).
    unspaced: String,
}

/// Characters that show nothing (or nothing but a blank) where they stand: format characters, Hangul
/// fillers (NFKC turns U+3164 into U+1160), variation selectors and tags.
fn invisible(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}')
}

/// Whether a script writes words without spaces between them (Han, kana, Hangul syllables are matched as
/// substrings).
fn unspaced(c: char) -> bool {
    matches!(c, '\u{2E80}'..='\u{9FFF}' | '\u{AC00}'..='\u{D7AF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{3FFFF}')
}

impl Policy {
    /// The bundled default policy.
    pub fn default_policy() -> Self {
        Self::from_json(DEFAULT_POLICY).expect("the bundled policy is valid")
    }

    /// A policy from its JSON text; a malformed file or an empty rule is a clear error.
    pub fn from_json(text: &str) -> Result<Self> {
        let bad = |why: String| TesseraError::Policy(why);
        let file: PolicyFile = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if file.version != 1 {
            return Err(bad(format!(
                "version {} is not supported (this build reads version 1)",
                file.version
            )));
        }
        let mut equivalents = HashMap::new();
        for (from, to) in file.equivalents {
            let mut chars = from.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => equivalents.insert(c, to.to_lowercase()),
                _ => {
                    return Err(bad(format!(
                        "equivalent {from:?} must be a single character"
                    )));
                }
            };
        }
        let mut policy = Policy {
            equivalents,
            rules: Vec::new(),
        };
        for rule in file.rules {
            if rule.all.is_empty() || rule.all.iter().any(|g| g.is_empty()) {
                return Err(bad(format!(
                    "rule `{}` has an empty group of terms",
                    rule.id
                )));
            }
            let groups = rule
                .all
                .iter()
                .map(|group| {
                    group
                        .iter()
                        .map(|t| policy.term(t))
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<Vec<_>>>()?;
            policy.rules.push(Rule {
                id: rule.id,
                category: rule.category,
                reason: rule.reason,
                groups,
            });
        }
        Ok(policy)
    }

    fn term(&self, written: &str) -> Result<Term> {
        let (body, prefix) = match written.strip_suffix('*') {
            Some(body) => (body, true),
            None => (written, false),
        };
        let n = self.normalise(body);
        if n.squashed.is_empty() {
            return Err(TesseraError::Policy(format!(
                "term {written:?} has no letters"
            )));
        }
        let unspaced_only = n.squashed.chars().all(unspaced);
        let squashed = n.squashed.chars().any(unspaced).then_some(n.squashed);
        Ok(Term {
            written: written.to_string(),
            words: n.words,
            prefix,
            squashed,
            unspaced_only,
        })
    }

    fn normalise(&self, text: &str) -> Normalised {
        let mut mapped = String::with_capacity(text.len());
        // NFKD, the accents dropped, then NFKC again (so Hangul syllables are whole again).
        for c in text
            .nfkd()
            .filter(|&c| !unicode_normalization::char::is_combining_mark(c))
            .nfkc()
            .flat_map(char::to_lowercase)
            .filter(|&c| !invisible(c))
        {
            match self.equivalents.get(&c) {
                Some(to) => mapped.push_str(to),
                None => mapped.push(c),
            }
        }
        let mut words: Vec<String> = Vec::new();
        let mut word = String::new();
        for c in mapped.chars() {
            let boundary = !c.is_alphanumeric()
                || word
                    .chars()
                    .last()
                    .is_some_and(|p| unspaced(p) != unspaced(c));
            if boundary && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            if c.is_alphanumeric() {
                word.push(c);
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
        let mut spelled: Vec<String> = Vec::new();
        let mut run: Vec<&str> = Vec::new();
        let mut end_run = |run: &mut Vec<&str>| {
            if run.len() > 1 && run.iter().any(|w| w.chars().count() == 1) {
                spelled.push(run.concat());
            }
            run.clear();
        };
        for w in &words {
            if w.chars().count() <= 2 && !w.chars().any(unspaced) {
                run.push(w);
            } else {
                end_run(&mut run);
            }
        }
        end_run(&mut run);
        let squashed: String = mapped.chars().filter(|c| c.is_alphanumeric()).collect();
        let unspaced_part = squashed.chars().filter(|&c| unspaced(c)).collect();
        let pairs = words.windows(2).map(|w| w.concat()).collect();
        Normalised {
            words,
            spelled,
            pairs,
            squashed,
            unspaced: unspaced_part,
        }
    }

    /// `Ok(())` when the policy allows `prompt`, otherwise the refusal: which rule, why, and the term found.
    pub fn check(&self, prompt: &str) -> Result<()> {
        let n = self.normalise(prompt);
        for rule in &self.rules {
            let found: Option<Vec<&Term>> = rule
                .groups
                .iter()
                .map(|g| g.iter().find(|t| t.matches(&n)))
                .collect();
            if let Some(terms) = found {
                let matched = terms
                    .iter()
                    .map(|t| format!("\"{}\"", t.written))
                    .collect::<Vec<_>>();
                return Err(TesseraError::Refused {
                    rule: rule.id.clone(),
                    category: rule.category.clone(),
                    reason: rule.reason.clone(),
                    matched: matched.join(" + "),
                });
            }
        }
        Ok(())
    }
}

impl Term {
    fn matches(&self, n: &Normalised) -> bool {
        if let Some(s) = &self.squashed {
            let within = if self.unspaced_only {
                &n.unspaced
            } else {
                &n.squashed
            };
            return within.contains(s.as_str());
        }
        let joined = self.words.concat();
        if n.spelled.iter().any(|run| run.contains(joined.as_str())) {
            return true;
        }
        let word = |candidate: &String, term: &String, last: bool| {
            if self.prefix && last {
                candidate.starts_with(term.as_str())
            } else {
                candidate == term
            }
        };
        // A one-word term split in two, or a term of several words run together.
        if let [term] = self.words.as_slice()
            && n.pairs.iter().any(|p| word(p, term, true))
        {
            return true;
        }
        if self.words.len() > 1 && n.words.iter().any(|w| word(w, &joined, true)) {
            return true;
        }
        let k = self.words.len();
        n.words.windows(k).any(|w| {
            w.iter()
                .zip(&self.words)
                .enumerate()
                .all(|(i, (candidate, term))| word(candidate, term, i == k - 1))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_by(prompt: &str) -> Option<String> {
        match Policy::default_policy().check(prompt) {
            Ok(()) => None,
            Err(TesseraError::Refused { rule, .. }) => Some(rule),
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn the_model_world_and_near_misses_pass() {
        for prompt in [
            "a big red circle in the center on a white background",
            "a 3 by 3 grid: red circle, blue square, green triangle, yellow star",
            "a yellow sign that says HELLO in the middle, blue background",
            "白色背景上，左上角有一个大的红色圆形，右下角有一个小的蓝色星形",
            "a skillful drawing of a sextant and an essex map", // kill / sex inside other words
            "the therapist's blue hexagon",
            "make the circle green",
        ] {
            assert_eq!(refused_by(prompt), None, "{prompt}");
        }
    }

    #[test]
    fn plain_terms_in_both_languages_are_refused_with_their_rule() {
        assert_eq!(refused_by("a nude figure").as_deref(), Some("sexual"));
        assert_eq!(refused_by("a beheading scene").as_deref(), Some("gore"));
        assert_eq!(refused_by("一张血腥的图片").as_deref(), Some("gore"));
        assert_eq!(
            refused_by("画一个纳粹标志").as_deref(),
            Some("hate-symbols")
        );
        assert_eq!(
            refused_by("a sign that says kill myself").as_deref(),
            Some("self-harm")
        );
        // Both groups of a rule must match; the more specific rule wins.
        assert_eq!(
            refused_by("naked children").as_deref(),
            Some("sexual-minors")
        );
        assert_eq!(refused_by("children playing with a red ball"), None);
    }

    #[test]
    fn evasions_are_normalised_away() {
        for prompt in [
            "A NUDE FIGURE",         // case
            "a n u d e figure",      // spaced out
            "a n.u.d.e figure",      // dotted
            "a ｎｕｄｅ figure",     // full-width
            "a nu\u{200B}de figure", // zero-width space
            "a nu\u{00AD}de figure", // soft hyphen
            "a nudе figure",         // Cyrillic е
            "a nuԁe figure",         // Cyrillic ԁ
            "a nud3 figure",         // digits for letters
            "a pornographic poster", // prefix term
            "一张 色 情 图片",       // Chinese with spaces
            "一张ｎｕｄｅ图片",      // mixed scripts, full-width
        ] {
            assert_eq!(refused_by(prompt).as_deref(), Some("sexual"), "{prompt:?}");
        }
        assert_eq!(
            refused_by("a self-harm poster").as_deref(),
            Some("self-harm")
        );
        assert_eq!(refused_by("a SwAsTiKa").as_deref(), Some("hate-symbols"));
    }

    #[test]
    fn the_bypasses_of_mixed_spacing_accents_fillers_and_scripts_are_refused() {
        for (prompt, rule) in [
            ("a n u de figure", "sexual"),                // mixed spacing
            ("a nu d e figure", "sexual"),                // mixed spacing
            ("a n.u.de figure", "sexual"),                // mixed dots
            ("a nüde figure", "sexual"),                  // accent
            ("a nu\u{3164}de figure", "sexual"),          // Hangul filler
            ("a nu\u{FE0F}de figure", "sexual"),          // variation selector
            ("a pr0n poster", "sexual"),                  // digit for a letter, letters swapped
            ("a sign that says killmyself", "self-harm"), // words run together
            ("a whitepower flag", "hate-symbols"),        // words run together
            ("一张斬首的图片", "gore"),                   // traditional Chinese
            ("畫一個納粹標誌", "hate-symbols"),           // traditional Chinese
            ("自殺", "self-harm"),                        // traditional Chinese
            ("一张血a腥的图片", "gore"),                  // Latin inside Chinese
        ] {
            assert_eq!(refused_by(prompt).as_deref(), Some(rule), "{prompt:?}");
        }
        // The fragment runs and run-together words keep to whole words of the model's world.
        for prompt in [
            "a 3 by 3 grid of red circles",
            "a u shape and an o ring at the top",
            "a small blue star at the top left, a big red circle in the center",
        ] {
            assert_eq!(refused_by(prompt), None, "{prompt}");
        }
    }

    #[test]
    fn the_refusal_names_the_rule_the_reason_and_the_term() {
        let e = Policy::default_policy().check("a gory scene").unwrap_err();
        assert_eq!(e.name(), "PolicyRefused");
        let text = e.to_string();
        assert!(
            text.contains("`gore`")
                && text.contains("graphic violence")
                && text.contains("\"gory\""),
            "{text}"
        );
    }

    #[test]
    fn a_custom_policy_is_checked_when_loaded() {
        let custom = r#"{"version":1,"rules":[{"id":"no-cats","category":"cats","reason":"no cats here","all":[["cat*","猫"]]}]}"#;
        let p = Policy::from_json(custom).unwrap();
        assert!(
            p.check("two cats").is_err()
                && p.check("一只猫").is_err()
                && p.check("a red circle").is_ok()
        );
        for (bad, why) in [
            ("{", "EOF"),
            (r#"{"version":2,"rules":[]}"#, "version 2"),
            (
                r#"{"version":1,"rules":[{"id":"x","category":"c","reason":"r","all":[[]]}]}"#,
                "empty group",
            ),
            (
                r#"{"version":1,"rules":[{"id":"x","category":"c","reason":"r","all":[["--"]]}]}"#,
                "no letters",
            ),
            (
                r#"{"version":1,"equivalents":{"ab":"c"},"rules":[]}"#,
                "single character",
            ),
        ] {
            let e = Policy::from_json(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
            assert_eq!(e.name(), "BadPolicy");
        }
    }
}
