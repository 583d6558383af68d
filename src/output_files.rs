//! File names for a model's outputs: `kiln run` writes each output to
//! `DIR/<file name>.npy`, and output names are not file names
//! (`save_infer_model/scale_0.tmp_1` in PaddlePaddle exports,
//! `StatefulPartitionedCall:0` in TensorFlow ones, empty names, `..`).
//!
//! [`file_names`] maps every output name to a file name that:
//! - is a single path component: no separator, not `.` or `..`, no leading
//!   dot (no hidden files), so `DIR.join(name)` stays inside `DIR`;
//! - holds only letters, digits (any script), `-`, `_` and `.`: every other
//!   character (`/`, `\`, `:`, spaces, control characters, ...) becomes `_`;
//! - is not a device name of Windows (`CON`, `NUL`, `COM1`, ...);
//! - is at most [`MAX_STEM_BYTES`] bytes before its `.npy` extension;
//! - differs from every other name of the list and every reserved name
//!   also when letter case is ignored (case-insensitive file systems): a
//!   clash gets the first free suffix `_2`, `_3`, ... in output order.
//!
//! A name that already satisfies all of this is kept as it is (`probs` ->
//! `probs.npy`). The mapping is deterministic: it depends only on the names
//! and their order.

use std::collections::BTreeSet;

/// The longest file name stem, in bytes (file systems allow 255 bytes per
/// component; room is left for a collision suffix and `.npy`).
pub const MAX_STEM_BYTES: usize = 200;

/// The extension of every output file.
pub const EXTENSION: &str = "npy";

/// Windows' reserved device names, compared without case and extension.
const WINDOWS_DEVICES: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "LPT1", "LPT2",
    "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// The file name (`STEM.npy`) of every name in `names`, in order, distinct
/// from each other and from `reserved` (file names already taken, e.g. by
/// an explicit `--output NAME=FILE`) when case is ignored.
pub fn file_names(names: &[&str], reserved: &[&str]) -> Vec<String> {
    let mut taken: BTreeSet<String> = reserved.iter().map(|r| r.to_lowercase()).collect();
    names
        .iter()
        .map(|name| {
            let stem = sanitize(name);
            let file = (1..)
                .map(|n| if n == 1 { format!("{stem}.{EXTENSION}") } else { format!("{stem}_{n}.{EXTENSION}") })
                .find(|f| !taken.contains(&f.to_lowercase()))
                .unwrap_or_default(); // the range is unbounded: some suffix is free
            taken.insert(file.to_lowercase());
            file
        })
        .collect()
}

/// `name` made a safe file name stem (the rules of the module doc, except
/// uniqueness).
pub fn sanitize(name: &str) -> String {
    let mut stem: String =
        name.chars().map(|c| if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    // Leading dots: `.`, `..` and hidden files.
    let dots = stem.len() - stem.trim_start_matches('.').len();
    stem.replace_range(..dots, &"_".repeat(dots));
    if stem.len() > MAX_STEM_BYTES {
        let cut = (0..=MAX_STEM_BYTES).rev().find(|&i| stem.is_char_boundary(i)).unwrap_or(0);
        stem.truncate(cut);
    }
    if stem.is_empty() {
        return "output".to_string();
    }
    let device = stem.split('.').next().unwrap_or_default();
    if WINDOWS_DEVICES.iter().any(|d| d.eq_ignore_ascii_case(device)) {
        stem.insert(0, '_');
    }
    stem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_kept_when_already_safe() {
        assert_eq!(file_names(&["probs", "logits-1", "a.b_c"], &[]), ["probs.npy", "logits-1.npy", "a.b_c.npy"]);
        assert_eq!(file_names(&["Ausgabe_ü", "出力"], &[]), ["Ausgabe_ü.npy", "出力.npy"]);
    }

    #[test]
    fn framework_names_become_single_components() {
        let names = ["save_infer_model/scale_0.tmp_1", "StatefulPartitionedCall:0", "a\\b", "x y\n", "/abs/path"];
        assert_eq!(
            file_names(&names, &[]),
            [
                "save_infer_model_scale_0.tmp_1.npy",
                "StatefulPartitionedCall_0.npy",
                "a_b.npy",
                "x_y_.npy",
                "_abs_path.npy"
            ]
        );
    }

    #[test]
    fn dots_empty_names_and_devices_are_not_special_files() {
        assert_eq!(file_names(&["", ".", "..", "../x", ".hidden"], &[]), [
            "output.npy",
            "_.npy",
            "__.npy",
            "___x.npy",
            "_hidden.npy"
        ]);
        assert_eq!(file_names(&["con", "NUL.txt", "com1", "console"], &[]), [
            "_con.npy",
            "_NUL.txt.npy",
            "_com1.npy",
            "console.npy"
        ]);
    }

    #[test]
    fn collisions_get_suffixes_ignoring_case() {
        assert_eq!(file_names(&["a:0", "a/0", "a_0", "A_0"], &[]), ["a_0.npy", "a_0_2.npy", "a_0_3.npy", "A_0_4.npy"]);
        // A suffixed name does not take a later output's own name.
        assert_eq!(file_names(&["y", "Y", "y_2"], &[]), ["y.npy", "Y_2.npy", "y_2_2.npy"]);
        // Reserved names (explicit --output files) are avoided.
        assert_eq!(file_names(&["probs", "x"], &["PROBS.npy"]), ["probs_2.npy", "x.npy"]);
        assert_eq!(file_names(&["", ""], &[]), ["output.npy", "output_2.npy"]);
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let long = "é".repeat(150); // 300 bytes
        let [file] = <[String; 1]>::try_from(file_names(&[&long], &[])).unwrap();
        let stem = file.strip_suffix(".npy").unwrap();
        assert_eq!(stem, "é".repeat(100));
        let two = file_names(&[&long, &long], &[]);
        assert_eq!(two[1], format!("{}_2.npy", "é".repeat(100)));
    }

    #[test]
    fn every_name_maps_inside_the_folder() {
        let names: Vec<String> = (0u32..512).map(|i| char::from_u32(i).map(|c| format!("{c}{c}")).unwrap()).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let files = file_names(&refs, &[]);
        let distinct: BTreeSet<String> = files.iter().map(|f| f.to_lowercase()).collect();
        assert_eq!(distinct.len(), files.len());
        for file in &files {
            let path = std::path::Path::new("out").join(file);
            assert_eq!(path.parent(), Some(std::path::Path::new("out")), "{file:?}");
            assert!(!file.starts_with('.') && file.ends_with(".npy"), "{file:?}");
            assert!(
                file.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.')),
                "{file:?}"
            );
        }
    }
}
