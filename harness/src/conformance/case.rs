//! The typed form of a WPT conformance case, and loading it from the JSON
//! vectors (`{op, cases: [...]}`, one file per operator).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use kiln_ir::{DataType, Number, OperandDescriptor, Shape};
use serde_json::{Map, Value};

use super::LoadError;

/// One WPT test case: a graph of WebNN operators, its inputs, the outputs it
/// must produce and the tolerance WPT judges them with.
#[derive(Clone, Debug)]
pub struct Case {
    /// The operator the case's file tests (the file's `op`), e.g. `conv2d`.
    pub op: String,
    /// The WPT test name; unique across all the vectors.
    pub name: String,
    /// The file the case was loaded from.
    pub file: PathBuf,
    /// Graph inputs and constants, by name.
    pub inputs: BTreeMap<String, CaseInput>,
    /// The operators, in the order they are built.
    pub operators: Vec<CaseOperator>,
    /// The graph outputs with their expected descriptors and values.
    pub expected: BTreeMap<String, CaseTensor>,
    /// How WPT compares every output of this case.
    pub tolerance: Tolerance,
    /// Set when upstream lost values (NaN/Infinity became `null`); the text
    /// says what was lost.
    pub lossy: Option<String>,
}

/// A graph input: fed at dispatch, or a constant (`constant: true`).
#[derive(Clone, Debug)]
pub struct CaseInput {
    pub tensor: CaseTensor,
    pub constant: bool,
}

/// A descriptor with its data, as written in the vectors.
#[derive(Clone, Debug)]
pub struct CaseTensor {
    pub desc: OperandDescriptor,
    pub data: Data,
}

/// Tensor data before it is encoded for a data type.
///
/// Elements are [`Number`]s: JSON integers and decimal strings that parse as
/// integers are exact [`Number::Int`]s (int64/uint64 included); other JSON
/// numbers and the strings `"NaN"`, `"Infinity"`, `"-Infinity"`, `"-0"` are
/// [`Number::Float`]s. A `null` element (a value upstream lost) is NaN.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// A scalar `data`: every element has this value (WPT's fill rule).
    Fill(Number),
    /// One value per element, row-major.
    List(Vec<Number>),
}

/// One operator application: `builder[name](...arguments)`.
#[derive(Clone, Debug)]
pub struct CaseOperator {
    /// The WebNN (JavaScript) operator name.
    pub name: String,
    /// `(argument name, value)` in positional (spec) order; the entry named
    /// `options` holds an [`Arg::Map`] of the named options.
    pub arguments: Vec<(String, Arg)>,
    /// The names given to the operator's outputs (one, or several for split).
    pub outputs: Vec<String>,
}

/// An argument value as written; strings are resolved to operands, numbers
/// or plain strings only when the graph is built.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    Str(String),
    Number(Number),
    Bool(bool),
    Null,
    List(Vec<Arg>),
    Map(BTreeMap<String, Arg>),
}

/// WPT's per-case tolerance (`tolerance.metricType` and `.value`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// At most this many units in the last place (integers: |a − b|).
    Ulp(u128),
    /// |actual − expected| ≤ this value.
    Atol(f64),
}

/// Loads every case of `path`: a `.json` file, or a folder whose `*.json`
/// files are read in name order (other files, like the README, are
/// ignored). Errors name the file and, where there is one, the case.
pub fn load_cases(path: &Path) -> Result<Vec<Case>, LoadError> {
    if !path.is_dir() {
        return load_file(path);
    }
    let mut cases = Vec::new();
    for file in json_files(path)? {
        cases.extend(load_file(&file)?);
    }
    Ok(cases)
}

fn json_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let entries = fs::read_dir(dir).map_err(|e| LoadError::new(dir, None, e.to_string()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| LoadError::new(dir, None, e.to_string()))?.path();
        if path.extension().is_some_and(|x| x == "json") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads the cases of one `{op, cases: [...]}` file.
pub fn load_file(file: &Path) -> Result<Vec<Case>, LoadError> {
    let text = fs::read_to_string(file).map_err(|e| LoadError::new(file, None, e.to_string()))?;
    parse_file(file, &text)
}

/// Parses the text of one `{op, cases: [...]}` file; `file` is only used to
/// name it in the cases and in errors.
pub fn parse_file(file: &Path, text: &str) -> Result<Vec<Case>, LoadError> {
    let root: Value =
        serde_json::from_str(text).map_err(|e| LoadError::new(file, None, format!("invalid JSON: {e}")))?;
    let file_err = |message: String| LoadError::new(file, None, message);
    let root = as_object(&root, "the top level").map_err(file_err)?;
    let op = as_str(field(root, "op").map_err(file_err)?, "op").map_err(file_err)?;
    let cases = as_array(field(root, "cases").map_err(file_err)?, "cases").map_err(file_err)?;
    cases
        .iter()
        .enumerate()
        .map(|(i, value)| {
            parse_case(op, file, value).map_err(|message| {
                let name = value.get("name").and_then(Value::as_str).map_or_else(|| format!("#{i}"), str::to_string);
                LoadError::new(file, Some(name), message)
            })
        })
        .collect()
}

type Parsed<T> = Result<T, String>;

fn parse_case(op: &str, file: &Path, value: &Value) -> Parsed<Case> {
    let case = as_object(value, "a case")?;
    let graph = as_object(field(case, "graph")?, "graph")?;
    Ok(Case {
        op: op.to_string(),
        name: as_str(field(case, "name")?, "name")?.to_string(),
        file: file.to_path_buf(),
        inputs: parse_named(field(graph, "inputs")?, "graph.inputs", parse_input)?,
        operators: as_array(field(graph, "operators")?, "graph.operators")?
            .iter()
            .map(parse_operator)
            .collect::<Parsed<_>>()?,
        expected: parse_named(field(graph, "expectedOutputs")?, "graph.expectedOutputs", parse_tensor)?,
        tolerance: parse_tolerance(field(case, "tolerance")?)?,
        lossy: case.get("lossy").and_then(Value::as_str).map(str::to_string),
    })
}

fn parse_named<T>(value: &Value, what: &str, parse: fn(&Value) -> Parsed<T>) -> Parsed<BTreeMap<String, T>> {
    as_object(value, what)?
        .iter()
        .map(|(name, v)| parse(v).map(|t| (name.clone(), t)).map_err(|e| format!("{what}.{name}: {e}")))
        .collect()
}

fn parse_input(value: &Value) -> Parsed<CaseInput> {
    let constant = match value.get("constant") {
        None | Some(Value::Null) => false,
        Some(v) => v.as_bool().ok_or("`constant` must be true or false")?,
    };
    Ok(CaseInput { tensor: parse_tensor(value)?, constant })
}

fn parse_tensor(value: &Value) -> Parsed<CaseTensor> {
    let object = as_object(value, "a tensor")?;
    Ok(CaseTensor { desc: parse_descriptor(field(object, "descriptor")?)?, data: parse_data(field(object, "data")?)? })
}

fn parse_descriptor(value: &Value) -> Parsed<OperandDescriptor> {
    let object = as_object(value, "descriptor")?;
    let name = as_str(field(object, "dataType")?, "descriptor.dataType")?;
    let data_type = DataType::from_name(name).ok_or_else(|| format!("unknown data type \"{name}\""))?;
    let dims = as_array(field(object, "shape")?, "descriptor.shape")?
        .iter()
        .map(|d| d.as_u64().and_then(|d| u32::try_from(d).ok()).ok_or_else(|| format!("bad dimension {d}")))
        .collect::<Parsed<Vec<u32>>>()?;
    Ok(OperandDescriptor::new(data_type, Shape::new(dims)))
}

fn parse_data(value: &Value) -> Parsed<Data> {
    match value {
        Value::Array(items) => Ok(Data::List(items.iter().map(parse_element).collect::<Parsed<_>>()?)),
        other => Ok(Data::Fill(parse_element(other)?)),
    }
}

/// One data element; `null` (lost upstream) reads as NaN.
fn parse_element(value: &Value) -> Parsed<Number> {
    match value {
        Value::Null => Ok(Number::Float(f64::NAN)),
        Value::Number(n) => Ok(json_number(n)),
        Value::String(s) => parse_number_str(s).ok_or_else(|| format!("\"{s}\" is not a number")),
        other => Err(format!("{other} is not a number")),
    }
}

/// A JSON number: integers stay exact, anything else is a float.
pub(crate) fn json_number(n: &serde_json::Number) -> Number {
    if let Some(i) = n.as_i64() {
        Number::Int(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        Number::Int(i128::from(u))
    } else {
        Number::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Reads the number spellings the vectors use inside strings: `"NaN"`,
/// `"Infinity"`, `"-Infinity"`, `"-0"` (floats) and decimal integers
/// (exact, for int64/uint64). `None` for any other string.
pub fn parse_number_str(s: &str) -> Option<Number> {
    match s {
        "NaN" => Some(Number::Float(f64::NAN)),
        "Infinity" => Some(Number::Float(f64::INFINITY)),
        "-Infinity" => Some(Number::Float(f64::NEG_INFINITY)),
        "-0" => Some(Number::Float(-0.0)),
        _ => s.parse::<i128>().ok().map(Number::Int),
    }
}

fn parse_operator(value: &Value) -> Parsed<CaseOperator> {
    let object = as_object(value, "an operator")?;
    let name = as_str(field(object, "name")?, "operator name")?.to_string();
    let arguments = as_array(field(object, "arguments")?, "arguments")?
        .iter()
        .map(parse_argument)
        .collect::<Parsed<_>>()
        .map_err(|e| format!("{name}: {e}"))?;
    let outputs = match field(object, "outputs")? {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().map(|v| as_str(v, "outputs").map(str::to_string)).collect::<Parsed<_>>()?,
        other => return Err(format!("{name}: outputs must be a name or a list of names, got {other}")),
    };
    Ok(CaseOperator { name, arguments, outputs })
}

/// One `{argName: value}` entry of `arguments`.
fn parse_argument(value: &Value) -> Parsed<(String, Arg)> {
    let object = as_object(value, "an argument")?;
    let mut entries = object.iter();
    match (entries.next(), entries.next()) {
        (Some((name, v)), None) => Ok((name.clone(), parse_arg(v))),
        _ => Err(format!("an argument must be an object with exactly one key, got {value}")),
    }
}

fn parse_arg(value: &Value) -> Arg {
    match value {
        Value::Null => Arg::Null,
        Value::Bool(b) => Arg::Bool(*b),
        Value::Number(n) => Arg::Number(json_number(n)),
        Value::String(s) => Arg::Str(s.clone()),
        Value::Array(items) => Arg::List(items.iter().map(parse_arg).collect()),
        Value::Object(map) => Arg::Map(map.iter().map(|(k, v)| (k.clone(), parse_arg(v))).collect()),
    }
}

fn parse_tolerance(value: &Value) -> Parsed<Tolerance> {
    let object = as_object(value, "tolerance")?;
    let metric = as_str(field(object, "metricType")?, "tolerance.metricType")?;
    let amount = field(object, "value")?;
    match metric {
        "ULP" => amount
            .as_u64()
            .map(|v| Tolerance::Ulp(u128::from(v)))
            .ok_or_else(|| format!("ULP tolerance must be a non-negative integer, got {amount}")),
        "ATOL" => amount
            .as_f64()
            .filter(|v| *v >= 0.0)
            .map(Tolerance::Atol)
            .ok_or_else(|| format!("ATOL tolerance must be a non-negative number, got {amount}")),
        other => Err(format!("unknown tolerance metric \"{other}\"")),
    }
}

fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Parsed<&'a Value> {
    object.get(key).ok_or_else(|| format!("missing `{key}`"))
}

fn as_object<'a>(value: &'a Value, what: &str) -> Parsed<&'a Map<String, Value>> {
    value.as_object().ok_or_else(|| format!("{what} must be an object"))
}

fn as_array<'a>(value: &'a Value, what: &str) -> Parsed<&'a Vec<Value>> {
    value.as_array().ok_or_else(|| format!("{what} must be an array"))
}

fn as_str<'a>(value: &'a Value, what: &str) -> Parsed<&'a str> {
    value.as_str().ok_or_else(|| format!("{what} must be a string"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{"op": "clamp", "cases": [
      {"name": "clamp int64", "graph": {
         "inputs": {"x": {"descriptor": {"dataType": "int64", "shape": [3]}, "constant": false,
                          "data": ["9223372036854775807", -5, "-0"]}},
         "operators": [{"name": "clamp", "arguments": [{"input": "x"},
                        {"options": {"minValue": "-9223372036854775808", "maxValue": 2.5}}], "outputs": "y"}],
         "expectedOutputs": {"y": {"descriptor": {"dataType": "int64", "shape": [3]}, "data": 0}}},
       "tolerance": {"metricType": "ULP", "value": 0}},
      {"name": "split atol", "lossy": "lost", "graph": {
         "inputs": {"x": {"descriptor": {"dataType": "float32", "shape": [2]}, "data": [null, "NaN"]}},
         "operators": [{"name": "split", "arguments": [{"input": "x"}, {"splits": 2}], "outputs": ["a", "b"]}],
         "expectedOutputs": {}},
       "tolerance": {"metricType": "ATOL", "value": 0.0009765625}}
    ]}"#;

    fn parse(text: &str) -> Result<Vec<Case>, LoadError> {
        parse_file(Path::new("clamp.json"), text)
    }

    #[test]
    fn numbers_in_strings() {
        assert_eq!(parse_number_str("-9223372036854775808"), Some(Number::Int(i64::MIN.into())));
        assert_eq!(parse_number_str("18446744073709551615"), Some(Number::Int(u64::MAX.into())));
        assert!(matches!(parse_number_str("-0"), Some(Number::Float(z)) if z == 0.0 && z.is_sign_negative()));
        assert!(matches!(parse_number_str("NaN"), Some(Number::Float(x)) if x.is_nan()));
        assert_eq!(parse_number_str("Infinity"), Some(Number::Float(f64::INFINITY)));
        assert_eq!(parse_number_str("-Infinity"), Some(Number::Float(f64::NEG_INFINITY)));
        assert_eq!(parse_number_str("float32"), None);
        assert_eq!(parse_number_str("inf"), None);
    }

    #[test]
    fn a_file_parses_into_typed_cases() {
        let cases = parse(FILE).unwrap();
        assert_eq!(cases.len(), 2);
        let c = &cases[0];
        assert_eq!((c.op.as_str(), c.name.as_str(), c.tolerance), ("clamp", "clamp int64", Tolerance::Ulp(0)));
        let x = &c.inputs["x"];
        assert!(!x.constant);
        assert_eq!(x.tensor.desc.to_string(), "i64[3]");
        assert_eq!(x.tensor.data, Data::List(vec![Number::Int(i64::MAX.into()), Number::Int(-5), Number::Float(-0.0)]));
        assert_eq!(c.expected["y"].data, Data::Fill(Number::Int(0)));
        let op = &c.operators[0];
        assert_eq!(op.outputs, vec!["y".to_string()]);
        assert_eq!(op.arguments[0], ("input".to_string(), Arg::Str("x".into())));
        let Arg::Map(options) = &op.arguments[1].1 else { panic!("options must be a map") };
        assert_eq!(options["minValue"], Arg::Str("-9223372036854775808".into()));
        assert_eq!(options["maxValue"], Arg::Number(Number::Float(2.5)));

        let s = &cases[1];
        assert_eq!(s.tolerance, Tolerance::Atol(1.0 / 1024.0));
        assert_eq!(s.lossy.as_deref(), Some("lost"));
        assert_eq!(s.operators[0].outputs, vec!["a".to_string(), "b".to_string()]);
        let Data::List(values) = &s.inputs["x"].tensor.data else { panic!("list data") };
        assert!(values.iter().all(|v| v.as_f64().is_nan()), "null and \"NaN\" read as NaN");
    }

    #[test]
    fn errors_name_the_file_and_the_case() {
        let broken = FILE.replace(r#""dataType": "float32""#, r#""dataType": "float64""#);
        let err = parse(&broken).unwrap_err();
        assert_eq!(err.case.as_deref(), Some("split atol"));
        assert_eq!(err.to_string(), "clamp.json: case \"split atol\": graph.inputs.x: unknown data type \"float64\"");
        let err = parse("{\"op\": \"abs\"}").unwrap_err();
        assert_eq!(err.to_string(), "clamp.json: missing `cases`");
        let err = parse(&FILE.replace("\"ULP\"", "\"RMS\"")).unwrap_err();
        assert_eq!(err.to_string(), "clamp.json: case \"clamp int64\": unknown tolerance metric \"RMS\"");
    }
}
