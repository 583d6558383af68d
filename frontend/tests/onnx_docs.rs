//! docs/onnx.md lists exactly the operators the ONNX table maps.

use kiln_frontend::onnx::supported_operators;

#[test]
fn the_documented_operator_list_is_the_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/onnx.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("<!-- onnx-operators -->").expect("start marker");
    let end = text.find("<!-- /onnx-operators -->").expect("end marker");
    let documented: Vec<&str> =
        text[start..end].split('`').skip(1).step_by(2).collect();
    assert_eq!(documented, supported_operators(), "update the list in docs/onnx.md");
}
