//! A generated data set for the default run: 8×8 images of simple shapes
//! (lines, diagonals, boxes, crosses) of random size and place, on a noisy
//! background, from a fixed seed. Nothing to download.

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The image side.
pub const SIDE: usize = 8;

/// The classes, by label.
pub const CLASSES: [&str; 6] = [
    "horizontal line",
    "vertical line",
    "diagonal",
    "anti-diagonal",
    "box",
    "cross",
];

/// `count` images (one per row, `SIDE²` pixels in 0..=1) and their labels,
/// the classes in equal numbers, in random order.
pub fn generate(count: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut images = Array2::zeros((count, SIDE * SIDE));
    let mut labels = Vec::with_capacity(count);
    for mut image in images.rows_mut() {
        let label = rng.random_range(0..CLASSES.len());
        let ink = rng.random_range(0.6..1.0f32);
        let mut pixels = [0.0f32; SIDE * SIDE];
        for (row, column) in shape(label, &mut rng) {
            pixels[row * SIDE + column] = ink;
        }
        for (out, ink) in image.iter_mut().zip(pixels) {
            *out = (ink + rng.random_range(-0.2..0.3f32)).clamp(0.0, 1.0);
        }
        labels.push(label);
    }
    (images, labels)
}

/// The pixels (row, column) of a random shape of class `label`.
fn shape(label: usize, rng: &mut StdRng) -> Vec<(usize, usize)> {
    let length = rng.random_range(4..=SIDE - 1);
    // Where a segment of `length` may start.
    let start = |rng: &mut StdRng| rng.random_range(0..=SIDE - length);
    match label {
        0 | 1 => {
            let (line, from) = (rng.random_range(0..SIDE), start(rng));
            let segment = (from..from + length).map(|i| (line, i));
            if label == 0 {
                segment.collect()
            } else {
                segment.map(|(r, c)| (c, r)).collect()
            }
        }
        2 | 3 => {
            let (row, column) = (start(rng), start(rng));
            (0..length)
                .map(|i| {
                    let step = if label == 2 { i } else { length - 1 - i };
                    (row + i, column + step)
                })
                .collect()
        }
        4 => {
            let size = rng.random_range(3..=6);
            let (top, left) = (
                rng.random_range(0..=SIDE - size),
                rng.random_range(0..=SIDE - size),
            );
            let last = size - 1;
            (0..size)
                .flat_map(|i| {
                    [
                        (top, left + i),
                        (top + last, left + i),
                        (top + i, left),
                        (top + i, left + last),
                    ]
                })
                .collect()
        }
        _ => {
            let arm = rng.random_range(1..=2);
            let (row, column) = (
                rng.random_range(arm..SIDE - arm),
                rng.random_range(arm..SIDE - arm),
            );
            (0..=2 * arm)
                .flat_map(|i| [(row + i - arm, column), (row, column + i - arm)])
                .collect()
        }
    }
}
