//! The engine's interpreter over the world's own captions and over paraphrases of them: everything the
//! world can say is read back as the scene (or edit) it describes.

use tessera::interpret::{Before, EditReading, Kind, interpret};

use crate::scenes::sample::{Category, Mix, example_rng, training_sample};

/// Fails with the first few of `failures` (of `total` messages read).
fn assert_none_misread(failures: &[String], total: u64) {
    let first: Vec<&str> = failures.iter().take(12).map(String::as_str).collect();
    assert!(
        failures.is_empty(),
        "{} of {total} misread, e.g.\n{}",
        failures.len(),
        first.join("\n")
    );
}

#[test]
fn every_caption_and_instruction_the_world_writes_reads_back_as_its_scene() {
    let mut failures = vec![];
    for i in 0..6000 {
        let s = training_sample(&mut example_rng(11, i), Mix::default());
        let r = match &s.source {
            None => interpret(&s.text, Before::Nothing, None),
            Some(source) => interpret(&s.text, Before::Picture(Some(source)), None),
        };
        let want_kind = if s.category == Category::Edit {
            Kind::Edit
        } else {
            Kind::New
        };
        let edit_right = s
            .edit
            .as_ref()
            .is_none_or(|e| r.edit == Some(EditReading::from(e)));
        if r.kind != want_kind
            || r.scene.as_ref() != Some(&s.scene)
            || !edit_right
            || !r.unknown.is_empty()
        {
            failures.push(format!(
                "{}\n   read {:?} {:?} unknown {:?}\n   as {}",
                s.text, r.kind, r.edit, r.unknown, r.canonical
            ));
        }
    }
    assert_none_misread(&failures, 6000);
}

#[test]
fn a_canonical_caption_reads_back_as_itself() {
    for i in 0..2000 {
        let s = training_sample(&mut example_rng(12, i), Mix::default());
        if s.source.is_some() {
            continue;
        }
        let first = interpret(&s.text, Before::Nothing, None);
        let again = interpret(&first.canonical, Before::Nothing, None);
        assert_eq!(again.canonical, first.canonical, "{}", s.text);
        assert_eq!(again.scene, first.scene, "{}", s.text);
    }
}

#[test]
fn paraphrases_in_english_and_chinese_read_as_their_scene() {
    use crate::eval::paraphrase::paraphrase;
    use crate::scenes::Lang;
    use crate::scenes::sample::{HeldOut, sample};
    let categories = [Category::Single, Category::Multi, Category::Grid];
    let mut failures = vec![];
    let total = 600;
    for i in 0..total {
        let mut rng = example_rng(13, i);
        // A third in Chinese, of every category.
        let lang = if (i / 3) % 3 == 1 { Lang::Zh } else { Lang::En };
        let s = sample(&mut rng, categories[i as usize % 3], lang, HeldOut::Exclude);
        let text = paraphrase(&mut rng, &s.scene, lang);
        let r = interpret(&text, Before::Nothing, None);
        if r.scene.as_ref() != Some(&s.scene) || !r.unknown.is_empty() {
            failures.push(format!(
                "{text}\n   as {}\n   want {}\n   unknown {:?}",
                r.canonical,
                tessera::interpret::caption::describe(
                    &mut tessera::interpret::caption::Canonical,
                    &s.scene,
                    Lang::En
                ),
                r.unknown
            ));
        }
    }
    assert_none_misread(&failures, total);
}
