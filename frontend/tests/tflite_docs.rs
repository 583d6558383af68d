//! The README lists exactly the operators the TFLite table maps.

use kiln_frontend::tflite::supported_operators;

#[test]
fn the_documented_operator_list_is_the_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("<!-- tflite-operators -->").expect("start marker");
    let end = text.find("<!-- /tflite-operators -->").expect("end marker");
    let documented: Vec<&str> = text[start..end].split('`').skip(1).step_by(2).collect();
    assert_eq!(documented, supported_operators(), "update the TFLite list in README.md");
}
