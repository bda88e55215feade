//! Comparing with the PyTorch references of `../shared/baselines`: their
//! loss logs, and whether python3 can run them.

use std::path::Path;
use std::process::Command;

/// Whether python3 has what the references need to run and to write their
/// parameters (recent `safetensors.torch` writes through numpy).
pub fn python_with_torch() -> bool {
    Command::new("python3")
        .args(["-c", "import torch, safetensors.torch, numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The losses of a loss log, one per line.
pub fn read_losses(path: &Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| l.trim().parse().expect("a loss per line"))
        .collect()
}

/// The largest relative difference between our losses and the
/// reference's, and the step where it occurs.
pub fn worst_difference(ours: &[f32], theirs: &[f64]) -> (f64, usize) {
    assert_eq!(ours.len(), theirs.len(), "as many losses on both sides");
    ours.iter()
        .zip(theirs)
        .map(|(&a, &b)| (f64::from(a) - b).abs() / b.abs().max(1e-6))
        .enumerate()
        .fold(
            (0.0, 0),
            |worst, (i, e)| if e > worst.0 { (e, i) } else { worst },
        )
}
