//! The CPU's decode-step attention: one new position per row attends over the host KV cache in place (a
//! tensor view of the cache would be copied out every step), natively half the heads on each core.

/// `a · b`, in 8 running sums (a sum in one running total is one dependent add after another, which the
/// compiler may not reorder into vectors).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in a8.zip(b8) {
        for ((s, a), b) in sums.iter_mut().zip(a).zip(b) {
            *s += a * b;
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// One decode step's attention on the host: `q` `[B·H, hd]` over the first `len` positions of `keys` and
/// `values` `[B·H, capacity, hd]` → `[B, H·hd]` (heads side by side, the layout `wo` reads). Softmax in f32
/// with the maximum subtracted, as burn's.
pub(crate) fn host_decode_attention(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    capacity: usize,
    len: usize,
    hd: usize,
) -> Vec<f32> {
    let mut out = vec![0.0; q.len()];
    // Natively, half the heads on each core (as burn's batched matmul did).
    #[cfg(not(target_arch = "wasm32"))]
    {
        let heads = q.len() / hd;
        let (split, cached) = (heads / 2 * hd, heads / 2 * capacity * hd);
        let (q_left, q_right) = q.split_at(split);
        let (out_left, out_right) = out.split_at_mut(split);
        let (keys_left, keys_right) = keys.split_at(cached);
        let (values_left, values_right) = values.split_at(cached);
        super::hot_join::join(
            || attend(q_left, keys_left, values_left, out_left, capacity, len, hd),
            || {
                attend(
                    q_right,
                    keys_right,
                    values_right,
                    out_right,
                    capacity,
                    len,
                    hd,
                )
            },
        );
    }
    #[cfg(target_arch = "wasm32")]
    attend(q, keys, values, &mut out, capacity, len, hd);
    out
}

/// [`host_decode_attention`] for some heads: `q` and `out` `[heads, hd]`, `keys` and `values` `[heads,
/// capacity, hd]`.
fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    out: &mut [f32],
    capacity: usize,
    len: usize,
    hd: usize,
) {
    let scale = 1.0 / (hd as f32).sqrt();
    let mut scores = vec![0.0f32; len];
    let heads = keys
        .chunks_exact(capacity * hd)
        .zip(values.chunks_exact(capacity * hd));
    for ((q, out), (keys, values)) in q.chunks_exact(hd).zip(out.chunks_exact_mut(hd)).zip(heads) {
        for (score, key) in scores.iter_mut().zip(keys.chunks_exact(hd)) {
            *score = dot(q, key) * scale;
        }
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0;
        for score in scores.iter_mut() {
            *score = (*score - max).exp();
            total += *score;
        }
        for (weight, value) in scores.iter().zip(values.chunks_exact(hd)) {
            let weight = weight / total;
            for (o, v) in out.iter_mut().zip(value) {
                *o += weight * v;
            }
        }
    }
}
