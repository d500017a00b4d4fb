//! "Shapes & Signs", the world Tessera's default model knows: the seeded procedural [`scenes`] and their
//! captions, the training [`dataset`] shards the trainer reads, and ShapesEval ([`eval`]), which draws fresh
//! scenes, has the model draw them and reads the result back. The engine never depends on this crate; the
//! command line and the tests do.

pub mod dataset;
pub mod eval;
pub mod scenes;

#[cfg(test)]
mod interpretation;

#[cfg(test)]
mod tests {
    use crate::scenes::sample::{Mix, example_rng, training_sample};
    use tessera::Policy;

    /// The prompt policy refuses nothing of the model's own world (English and Chinese captions, edits).
    #[test]
    fn no_prompt_of_the_model_world_is_refused() {
        let policy = Policy::default_policy();
        for i in 0..5000 {
            let sample = training_sample(&mut example_rng(7, i), Mix::default());
            assert!(policy.check(&sample.text).is_ok(), "{}", sample.text);
        }
        for prompt in crate::scenes::caption::examples() {
            assert!(policy.check(prompt).is_ok(), "{prompt}");
        }
    }
}
