//! Checking, before a long run starts, that every file it will write can
//! be written: a run must not train for an hour and then lose its work to
//! a folder that does not exist.

use std::fs::OpenOptions;
use std::path::Path;

/// Checks that each `(flag, path)` names a file that can be created or
/// replaced: not a folder, in a folder that exists and takes new files.
/// The error names the flag, the path and what is wrong.
pub fn check_writable<P: AsRef<Path>>(outputs: &[(&str, P)]) -> Result<(), String> {
    for (flag, path) in outputs {
        let path = path.as_ref();
        let shown = path.display();
        if path.is_dir() {
            return Err(format!("{flag} {shown}: is a folder, not a file"));
        }
        let folder = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        if !folder.is_dir() {
            return Err(format!(
                "{flag} {shown}: the folder '{}' does not exist",
                folder.display()
            ));
        }
        // Creating a file is the only reliable test of permission.
        let probe = folder.join(format!(".cps-write-test-{}", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&probe) {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(e) => {
                return Err(format!(
                    "{flag} {shown}: cannot write in the folder '{}': {e}",
                    folder.display()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_folders_and_folders_are_refused() {
        let dir = std::env::temp_dir().join(format!("cps-outputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("model.safetensors");
        assert_eq!(check_writable(&[("--save", &good)]), Ok(()));
        assert!(!good.exists(), "the check leaves no file behind");
        let missing = dir.join("no-such-folder").join("model.safetensors");
        assert_eq!(
            check_writable(&[("--save", &good), ("--plot", &missing)]).unwrap_err(),
            format!(
                "--plot {}: the folder '{}' does not exist",
                missing.display(),
                dir.join("no-such-folder").display()
            )
        );
        assert!(
            check_writable(&[("--loss-log", &dir)])
                .unwrap_err()
                .ends_with("is a folder, not a file")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
